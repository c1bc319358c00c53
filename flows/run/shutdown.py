"""How a `newsflow` command ends when it is told to stop: SIGTERM is handled like Ctrl-C, and nothing it
started outlives it.

- SIGTERM raises `Terminated` (a KeyboardInterrupt) in the main thread, so every layer unwinds as on Ctrl-C:
  inside a flow run Prefect's engine records the run as crashed, then hands the signal back to our handler.
- The CLI then prints one line and calls `finish`: the temporary Prefect server is stopped and the process
  exits at once (130 after SIGINT, 143 after SIGTERM), without waiting for threads still blocked in a fetch.
  If unwinding itself takes longer than GRACE_SECONDS, a watchdog thread does the same.
- The temporary Prefect server (Prefect's ephemeral mode, used when PREFECT_API_URL is unset) is started here
  with its stdout and stderr on a log file, not the caller's: a wrapper reading our output to its end is never
  held open by it, and in a session of its own, so Ctrl-C in a terminal (SIGINT to the whole foreground group)
  reaches newsflow and not the server its run still reports to. It also ends on its own when this process is
  gone, even by SIGKILL (which leaves no time to stop it): a thread in the server's process watches its parent pid
  (`_WATCH_PARENT`), as pool workers do (flows/run/workers.py exit_with_parent).

- A run that fails ends the same way, in one line: Prefect's console handler prints its lines for the failed task
  and flow run without their tracebacks (`console_without_tracebacks`, unless --debug).

Why a watching thread and not PR_SET_PDEATHSIG: that signal fires when the *thread* that forked the child ends,
not the process, and it has to be set by `preexec_fn`, which runs between fork and exec in a process that already
has threads (Prefect's, ours): the subprocess docs warn it can deadlock there. A wrapper process between newsflow
and the server would have to forward signals and the server's exit status (Prefect retries another port on exit
code 3); the thread runs in the server's own process, so Prefect's terminate, kill and retry work unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

GRACE_SECONDS = 10.0  # from the signal to the exit, at most, however stuck the unwinding is
EXIT_SIGINT = 130  # 128 + SIGINT, as a shell reports a process Ctrl-C killed
EXIT_SIGTERM = 143  # 128 + SIGTERM
SERVER_LOG = "newsflow-temporary-server.log"  # in PREFECT_HOME
# Run by the temporary server's interpreter (`python -c`, so it needs no `flows` on its path) before uvicorn's main:
# argv[1] is newsflow's pid. Once the server's parent is another process (newsflow gone, the server adopted), it
# asks uvicorn to shut down (SIGTERM, handled by uvicorn) and exits anyway after 5 s. Polling, because the stdlib
# has no parent-death notice; the pid is passed rather than read, so a parent gone before the check is seen.
_WATCH_PARENT = """# uvicorn: Prefect's temporary server for newsflow, ending with its parent
import os, runpy, signal, sys, threading, time
parent = int(sys.argv.pop(1))
def watch():
    while os.getppid() == parent:
        time.sleep(0.25)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    os._exit(1)
threading.Thread(target=watch, name="newsflow-parent-watch", daemon=True).start()
runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)
"""

_finishing = threading.Lock()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Handle SIGTERM like SIGINT for the block (from the main thread only; elsewhere it changes nothing), then
    put the previous handler back: a caller of the CLI in-process (the tests) keeps its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _on_sigterm(signum: int, frame: Any) -> None:
    watchdog = threading.Timer(GRACE_SECONDS, finish, args=(EXIT_SIGTERM, _line(True)))
    watchdog.daemon = True
    watchdog.start()
    raise Terminated


def _line(terminated: bool) -> str:
    # Like Ctrl-C's line; what became of the run is in Prefect (Crashed) and, for its batches, in `status`.
    return "newsflow: terminated (SIGTERM)" if terminated else "newsflow: interrupted"


def interrupted(exc: KeyboardInterrupt) -> int:
    """The CLI's end after Ctrl-C or SIGTERM: one line, the temporary server stopped, then the exit."""
    terminated = isinstance(exc, Terminated)
    finish(EXIT_SIGTERM if terminated else EXIT_SIGINT, _line(terminated))
    return EXIT_SIGTERM if terminated else EXIT_SIGINT  # not reached


def finish(code: int, line: str) -> None:
    """Print `line`, stop the temporary Prefect server, exit with `code` now (once, whoever calls first)."""
    with contextlib.suppress(ValueError):  # a second SIGTERM must not interrupt this (main thread only)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _finishing.acquire()  # a second caller (the watchdog, or the main thread after it) waits for the exit
    try:
        print(line, file=sys.stderr, flush=True)
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    stop_temporary_server()
    # os._exit: threads still in a fetch would hold a normal exit for their timeouts; the run is already
    # recorded (Prefect's engine handled the signal before handing it back), files are closed by the kernel.
    os._exit(code)


@contextmanager
def _stdio_to(path: Path) -> Iterator[None]:
    """File descriptors 1 and 2 on `path` for the block (what a child process started in it inherits)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log):
            os.close(fd)


def start_temporary_server() -> None:
    """Start Prefect's temporary server now, if this process will use one (PREFECT_API_URL unset), with its
    output on PREFECT_HOME/newsflow-temporary-server.log; Prefect's own client then finds it running."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return
    from prefect.server.api.server import SubprocessASGIServer

    existing = SubprocessASGIServer._instances.get(None)
    if existing is not None and existing.running:
        return
    SubprocessASGIServer._instances.pop(None, None)  # not started: ours replaces it (Prefect's client finds ours)
    server = _watched_server()()
    home = Path(settings.home)
    home.mkdir(parents=True, exist_ok=True)
    with _stdio_to(home / SERVER_LOG):
        server.start()


@cache
def _watched_server() -> type:
    """Prefect's temporary server class, its process started with `_WATCH_PARENT` before uvicorn (the arguments
    and environment are Prefect's own, SubprocessASGIServer._run_uvicorn_command of Prefect 3)."""
    import prefect
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    class WatchedServer(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                   "PREFECT__SERVER_FINAL": "1", **get_current_settings().to_environment_variables(exclude_unset=True)}
            return subprocess.Popen(
                [sys.executable, "-c", _WATCH_PARENT, str(os.getpid()),
                 "--app-dir", str(prefect.__module_path__.parent), "--factory", "prefect.server.api.server:create_app",
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
                # Its own session: Ctrl-C in a terminal (SIGINT to the whole foreground group) killed it with
                # newsflow, whose Prefect client then retried the gone API for minutes instead of exiting 130.
                # newsflow stops it (`finish`), and it ends with newsflow anyway (`_WATCH_PARENT`).
                env=env, start_new_session=True)

    return WatchedServer


def stop_temporary_server() -> None:
    """Stop every temporary Prefect server this process started (Prefect stops it at exit only, via atexit)."""
    server_module = sys.modules.get("prefect.server.api.server")
    if server_module is None:
        return
    for server in list(server_module.SubprocessASGIServer._instances.values()):
        try:
            server.stop()
        except Exception:  # ending anyway; stop() itself terminates, then kills, the server
            pass


def _no_traceback(record: logging.LogRecord) -> bool:
    record.exc_info = record.exc_text = record.stack_info = None
    return True


def console_without_tracebacks() -> None:
    """Prefect's engine logs a failed task or flow run with its traceback on the console, where the command then
    says what failed in one line: the traceback stays in the run's log in Prefect (its API handler formats the
    record before the console's, on the run's own logger) and is printed with --debug."""
    import prefect.logging.configuration as prefect_logging
    from prefect.logging.handlers import PrefectConsoleHandler

    if not prefect_logging.PROCESS_LOGGING_CONFIG:  # set up now rather than at the first run: its console handler
        prefect_logging.setup_logging()

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and _no_traceback not in handler.filters:
            handler.addFilter(_no_traceback)
