"""Progress: the plain reporter's lines, a real `newsflow demo` without and with a terminal (a real pseudo-terminal
read by a terminal emulator), and the ingest run's Prefect progress artifact.

Covers: flows.run.progress, flows.run.runprogress
"""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flows.core.settings import PROJECT_ROOT
from flows.ops.demo import DEMO_DATA, demo_config
from flows.ops.localserver import LocalServer
from flows.run import progress

ESC = "\x1b"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_plain_lines_per_stage_and_every_n_seconds_not_per_item() -> None:
    clock, out = Clock(), io.StringIO()
    r = progress.PlainReporter(out, every=10.0, clock=clock)
    with progress.using(r):
        assert progress.current() is r
        r.add("feeds", "feeds fetched", 2)
        r.add("loaded", "articles loaded", 100, main=True)
        r.advance("feeds")
        r.advance("feeds")  # the stage is done: one line
        for _ in range(40):  # 40 articles in 8 s: no line until 10 s have passed
            clock.t += 0.2
            r.advance("loaded")
        r.gauge("waiting", "batches waiting", 2)
        clock.t += 2.0
        r.advance("loaded", 10)  # 10 s after the last line: one line
    assert progress.current() is not r
    lines = out.getvalue().splitlines()
    assert lines == [
        "progress: feeds fetched 2/2, articles loaded 0/100; 0:00 elapsed",
        "progress: feeds fetched 2/2, articles loaded 50/100, batches waiting 2; 5.0 articles/s, 0:10 left, "
        "0:10 elapsed",
        "done: feeds fetched 2/2, articles loaded 50/100, batches waiting 2; 5.0 articles/s, 0:10 left, 0:10 elapsed",
    ]


def test_a_failed_command_ends_with_its_error_not_a_progress_line() -> None:
    out = io.StringIO()
    with pytest.raises(ValueError), progress.using(progress.PlainReporter(out)) as r:
        r.add("feeds", "feeds fetched", 3)
        raise ValueError("boom")
    assert out.getvalue() == ""


def test_the_choice_follows_the_stream_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)
    assert type(progress.for_stream(io.StringIO())) is progress.PlainReporter
    monkeypatch.setenv(progress.ENV, "off")
    assert type(progress.for_stream(io.StringIO())) is progress.Reporter
    monkeypatch.setenv(progress.ENV, "rich")
    assert type(progress.for_stream(io.StringIO())) is progress.RichReporter


def _newsflow_env(tmp_path: Path) -> dict[str, str]:
    """The session's Prefect API (no temporary server per command) and a clean NEWSFLOW_* environment."""
    from prefect.settings import get_current_settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    return {**env, "PREFECT_API_URL": str(get_current_settings().api.url), "NEWSFLOW_PIPELINE__WORKERS": "1",
            "PYTHONPATH": str(PROJECT_ROOT)}


def test_demo_without_a_terminal_prints_plain_progress_lines(prefect_harness: None, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "demo", "--port", "0", "--warehouse",
                           str(tmp_path / "demo.duckdb")], capture_output=True, text=True, timeout=240,
                          cwd=tmp_path, env=_newsflow_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(("progress: ", "done: "))]
    assert ESC not in proc.stderr + proc.stdout
    assert any("feeds fetched 7/7" in ln for ln in lines), proc.stderr
    final = lines[-1]
    assert final.startswith("done: ")
    for part in ("feeds fetched 7/7", "pages downloaded 21/21", "articles extracted 21/21", "articles loaded 21/21",
                 "batches waiting to load 0", "articles/s"):
        assert part in final, final
    assert int(re.search(r"articles tagged (\d+)", final).group(1)) > 0
    assert len(lines) <= 10  # per stage, not per article


def _run_in_terminal(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> tuple[int, bytes]:
    """Run `argv` on a real pseudo-terminal of 150x50; its exit status and every byte it wrote to the terminal."""
    import fcntl
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        os.chdir(cwd)
        os.execve(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 150, 0, 0))
    out, deadline = bytearray(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            out += data
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), bytes(out)


def test_demo_on_a_terminal_shows_a_live_display_that_logs_do_not_tear(prefect_harness: None, tmp_path: Path
                                                                       ) -> None:
    import pyte

    env = {**_newsflow_env(tmp_path), "TERM": "xterm-256color", "COLUMNS": "150", "LINES": "50"}
    code, raw = _run_in_terminal([sys.executable, "-m", "flows.cli", "demo", "--port", "0", "--warehouse",
                                  str(tmp_path / "demo.duckdb")], env, tmp_path, timeout=240)
    assert code == 0, raw[-3000:].decode(errors="replace")
    assert b"\x1b[" in raw  # a live display redraws in place: cursor movement, not plain lines
    screen = pyte.Screen(150, 50)
    pyte.ByteStream(screen).feed(raw)
    rows = [row.rstrip() for row in screen.display]
    text = "\n".join(rows)
    assert "progress: " not in text  # the terminal gets the live display, not the log lines
    counters = {r.split()[0] + " " + r.split()[1]: r for r in rows
                if r.startswith(("feeds fetched", "pages downloaded", "articles extracted", "articles loaded"))}
    assert len(counters) == 4, text  # each bar once on the final screen: no torn or repeated frames
    assert "7/7" in counters["feeds fetched"] and "21/21" in counters["pages downloaded"], text
    assert "21/21" in counters["articles extracted"] and "21/21" in counters["articles loaded"], text
    assert "batches waiting to load: 0" in text
    # Prefect's log lines went through the same console: whole, above the display, never inside a bar's row.
    logs = [r for r in rows if " | INFO    | " in r]
    assert any("Finished in state Completed()" in r for r in logs), text
    assert all(r.index(" | INFO") == 12 for r in logs), text
    assert rows.index(counters["feeds fetched"]) > max(i for i, r in enumerate(rows) if "Beginning flow run" in r)
    assert "run " in text and ": completed" in text


def test_the_ingest_progress_artifact_reaches_100(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    from flows.run.ingest import ingest

    with LocalServer(DEMO_DATA) as server:
        config = demo_config(server, tmp_path / "wh" / "demo.duckdb", tmp_path)
        summary: dict[str, Any] = ingest(config=str(config), feeds=["Harbour Herald"])
    assert summary["status"] == "completed", summary
    with get_client(sync_client=True) as client:
        (art,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["ingest-progress"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[summary["run_id"]])))
    assert art.type == "progress"
    assert float(art.data) == 100.0


def test_the_stages_report_each_feed_page_extraction_and_tagging(demo_settings: Any) -> None:
    """The callbacks of collect.fetch_feeds and stream.articles count every unit once, whatever the batching."""
    from collections import Counter as Tally

    from flows.core.stats import RunStats
    from flows.run import collect, stream
    from flows.run.workers import InlineExecutor
    from flows.warehouse import database

    database.ensure_ready(demo_settings.warehouse)
    seen: Tally[str] = Tally()
    out = collect.fetch_feeds(demo_settings, list(demo_settings.feeds), {}, "run-1", RunStats(),
                              progress=lambda event, n: seen.update({event: n}))
    assert seen == {"feed": len(demo_settings.feeds)}
    new = collect.select_new(demo_settings, out.entries, out.fetch_rows, 100)
    ready = list(stream.articles(demo_settings, InlineExecutor(), new, batch_size=5,
                                 progress=lambda event, n: seen.update({event: n})))
    assert seen["downloaded"] == seen["extracted"] == len(new) > 6
    assert seen["tagged"] == sum(1 for r in ready for d in r.docs if d.ner_pipeline) > 0


def test_the_progress_artifact_counts_this_runs_articles_when_runs_share_a_reporter(prefect_harness: None) -> None:
    """Without a CLI, every flow run in a process reports to the same silent reporter, whose counters add up
    across runs: the artifact must move by this run's own loads (a second run's bar passed 100 %)."""
    from flows.run.progress import Reporter
    from flows.run.runprogress import IngestProgress

    shared = Reporter()
    for _ in range(2):
        run = IngestProgress(shared, dry_run=False)
        run.articles(4)
        run.queued("b1", 2)
        run.stored("b1")
        run.checkpoint()
        assert run.shown == pytest.approx(10.0 + 85.0 * 2 / 4)
        run.queued("b2", 2)
        run.stored("b2")
        run.checkpoint()
        assert run.shown == pytest.approx(95.0)
    assert shared.counters["loaded"].done == 8  # the shared count did add up
