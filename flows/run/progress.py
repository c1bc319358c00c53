"""Progress of one command, shown as it moves: a live rich display on a terminal, plain log lines otherwise.

A `Reporter` holds named counters (done of total) and gauges (a current value). The stages report to
`current()`, which is a silent reporter unless the CLI installed a visible one with `using(...)`. Counters may
be moved from any thread. No Prefect here: flows/run/runprogress.py mirrors the same figures into a Prefect progress
artifact.

    RichReporter   a rich Live display on a TTY; log handlers writing to the terminal print above it
    PlainReporter  one line per stage finished and at most one every `every` seconds in between, no escapes
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

# Set to "rich", "plain" or "off" to override the choice made from the output stream.
ENV = "NEWSFLOW_PROGRESS"


@dataclass
class Counter:
    label: str
    done: int = 0
    total: int | None = None
    started: float | None = None  # when its work became known: the rate counts from here, not the command's start
    last: float | None = None  # the last move: a finished counter's rate stays what it was

    def text(self) -> str:
        return f"{self.done}/{self.total}" if self.total is not None else str(self.done)

    def per_second(self, now: float) -> float | None:
        if self.started is None or not self.done:
            return None
        end = self.last if self.total is not None and self.done >= self.total and self.last is not None else now
        return self.done / max(end - self.started, 1e-3)


def clock_text(seconds: float) -> str:
    """Seconds as h:mm:ss (or m:ss under an hour)."""
    s = int(seconds + 0.5)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class Reporter:
    """Counters and gauges of one command; the base class shows nothing (the default when no CLI is in charge)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.counters: dict[str, Counter] = {}
        self.gauges: dict[str, tuple[str, int]] = {}
        self.main: str | None = None  # the counter whose rate and time left are shown
        self._lock = threading.RLock()

    def add(self, key: str, label: str, total: int | None = None, *, main: bool = False) -> None:
        """Declare (or re-declare, keeping its count) a counter; `main` makes its rate and time left shown."""
        with self._lock:
            c = self.counters.get(key)
            if c is None:
                self.counters[key] = c = Counter(label, 0, total)
            else:
                c.label, c.total = label, total
            if total is not None and c.started is None:
                c.started = self.clock()  # the work is known from here: a first batch done at once is no rate
            if main:
                self.main = key
            self._changed(key)

    def advance(self, key: str, n: int = 1) -> None:
        """Count `n` more done on `key` (declared on first use, without a total)."""
        with self._lock:
            c = self.counters.get(key) or self.counters.setdefault(key, Counter(key.replace("_", " ")))
            c.last = self.clock()
            if c.started is None:
                c.started = c.last
            c.done += n
            self._changed(key)

    def update(self, key: str, label: str, done: int, total: int | None = None, *, main: bool = False) -> None:
        """Set `key`'s count outright (for work that reports "done of total" after each batch)."""
        with self._lock:
            if main:
                self.main = key
            c = self.counters.setdefault(key, Counter(label))
            if c.started is None:
                c.started = self.started  # reported after its first batch: the rate counts from the start
            c.label, c.done, c.total, c.last = label, done, total, self.clock()
            self._changed(key)

    def gauge(self, key: str, label: str, value: int) -> None:
        """Set a value that goes up and down (e.g. batches waiting to load)."""
        with self._lock:
            if self.gauges.get(key) != (label, value):
                self.gauges[key] = (label, value)
                self._changed(key)

    def rate(self) -> tuple[float, float | None] | None:
        """(per second, seconds left or None) of the main counter, once it has moved."""
        c = self.counters.get(self.main or "")
        per_s = c.per_second(self.clock()) if c is not None else None
        if c is None or per_s is None:
            return None
        left = (c.total - c.done) / per_s if c.total is not None and c.total >= c.done else None
        return per_s, left

    def line(self) -> str:
        """Every counter and gauge on one line, with the main counter's rate and time left."""
        with self._lock:
            parts = [f"{c.label} {c.text()}" for c in self.counters.values()]
            parts += [f"{label} {v}" for label, v in self.gauges.values()]
            tail = [f"{clock_text(self.clock() - self.started)} elapsed"]
            r = self.rate()
            if r is not None:
                per_s, left = r
                unit = self.counters[self.main or ""].label.split()[0]
                tail.insert(0, f"{per_s:.1f} {unit}/s" + (f", {clock_text(left)} left" if left is not None else ""))
            return ", ".join(parts) + "; " + ", ".join(tail)

    def _changed(self, key: str) -> None:
        """Called under the lock after `key` moved; subclasses show it."""

    def start(self) -> None:
        """Begin showing progress."""

    def stop(self, ok: bool = True) -> None:
        """Stop showing progress (the last state stays on screen); `ok` False when the command failed."""


class PlainReporter(Reporter):
    """Plain lines for logs and cron mail: one when a counter reaches its total, else at most one per `every` s."""

    def __init__(self, stream: IO[str] | None = None, *, every: float = 15.0, prefix: str = "progress: ",
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        self.stream = stream
        self.every = every
        self.prefix = prefix
        self._last = clock()
        self._finished: set[str] = set()
        self._active = False

    def _emit(self) -> None:
        out = self.stream or sys.stderr
        out.write(self.prefix + self.line() + "\n")
        out.flush()
        self._last = self.clock()

    def _changed(self, key: str) -> None:
        if not self._active:
            return
        c = self.counters.get(key)
        if c is not None and c.started is not None and c.total is not None and c.done >= c.total \
                and key not in self._finished:
            self._finished.add(key)
            self._emit()
        elif self.clock() - self._last >= self.every:
            self._emit()

    def start(self) -> None:
        self._active = True

    def stop(self, ok: bool = True) -> None:
        # A failed command ends with its one error line, not with a progress line after it.
        if self._active and ok and self.counters:
            self.prefix, prefix = "done: ", self.prefix
            self._emit()
            self.prefix = prefix
        self._active = False


class _ToConsole(io.TextIOBase):
    """A file that prints each whole line above a live display (keeping the colours of what wrote it)."""

    def __init__(self, console: Any, tty: bool) -> None:
        from rich.ansi import AnsiDecoder

        self._console, self._tty, self._decoder, self._buf = console, tty, AnsiDecoder(), ""

    def write(self, text: str) -> int:
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._console.print(self._decoder.decode_line(line), soft_wrap=True)
        return len(text)

    def isatty(self) -> bool:
        return self._tty

    def writable(self) -> bool:
        return True


def _terminal_handlers(streams: tuple[Any, ...]) -> list[logging.Handler]:
    """Every logging handler that writes straight to one of `streams` (Prefect's console handler included)."""
    loggers = [logging.getLogger(), *(v for v in logging.root.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger))]
    seen: dict[int, logging.Handler] = {}
    for lg in loggers:
        for h in lg.handlers:
            console = getattr(h, "console", None)
            target = getattr(console, "file", None) if console is not None else getattr(h, "stream", None)
            if any(target is s for s in streams):
                seen[id(h)] = h
    return list(seen.values())


class RichReporter(Reporter):
    """A live rich display: a bar per counter with its rate and time left, the gauges below.

    While it runs, log handlers that write to the terminal (Prefect's console handler is a rich Console of its
    own, bound to sys.stderr) are pointed at a file that prints through the live display's Console, so their
    lines scroll above the bars instead of tearing them.
    """

    def __init__(self, console: Any = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._swapped: list[tuple[logging.Handler, Any]] = []

    def start(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        reporter = self

        class _Live(Progress):
            def get_renderables(self) -> Iterator[Any]:
                yield self.make_tasks_table(self.tasks)
                yield reporter._footer()

        self._progress = _Live(TextColumn("{task.description:<20}"), BarColumn(bar_width=30),
                               TextColumn("{task.fields[count]:>11}"), TextColumn("{task.fields[rate]:>9}"),
                               TimeRemainingColumn(), console=self.console, transient=False,
                               refresh_per_second=4)
        with self._lock:
            for key in self.counters:
                self._changed(key)
        self._route_logs()
        self._progress.start()

    def _footer(self) -> Any:
        from rich.text import Text

        # No lock: the refresh thread holds rich's lock here, and a counter moving holds ours while it takes rich's.
        parts = [f"{label}: {v}" for label, v in list(self.gauges.values())]
        parts.append(f"elapsed {clock_text(self.clock() - self.started)}")
        return Text("  ".join(parts), style="dim")

    def _changed(self, key: str) -> None:
        if self._progress is None or key not in self.counters:
            return
        c = self.counters[key]
        per_s = c.per_second(self.clock())
        rate = "" if per_s is None else f"{per_s:.1f}/s"
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(c.label, total=c.total, count=c.text(), rate=rate)
        self._progress.update(self._tasks[key], description=c.label, total=c.total, completed=c.done,
                              count=c.text(), rate=rate)

    def _route_logs(self) -> None:
        streams = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
        proxy = _ToConsole(self.console, self.console.is_terminal)
        for h in _terminal_handlers(streams):
            console = getattr(h, "console", None)
            if console is not None:
                self._swapped.append((h, console.file))
                console.file = proxy
            elif isinstance(h, logging.StreamHandler):
                self._swapped.append((h, h.setStream(proxy)))

    def stop(self, ok: bool = True) -> None:
        if self._progress is None:
            return
        with self._lock:
            for key in self.counters:
                self._changed(key)
        self._progress.stop()
        self._progress = None
        for h, original in reversed(self._swapped):
            if getattr(h, "console", None) is not None:
                h.console.file = original
            elif isinstance(h, logging.StreamHandler):
                h.setStream(original)
        self._swapped.clear()


_current: Reporter = Reporter()


def current() -> Reporter:
    """The reporter the stages report to: silent unless a command installed one with `using`."""
    return _current


@contextmanager
def using(reporter: Reporter) -> Iterator[Reporter]:
    """Make `reporter` the current one and show it for the duration of the block."""
    global _current
    previous, _current = _current, reporter
    reporter.start()
    ok = False
    try:
        yield reporter
        ok = True
    finally:
        reporter.stop(ok)
        _current = previous


def for_stream(stream: IO[str] | None = None, *, every: float = 15.0) -> Reporter:
    """A rich live display when `stream` (default stderr) is a terminal, plain lines when it is not;
    NEWSFLOW_PROGRESS=rich/plain/off overrides the choice."""
    stream = stream or sys.stderr
    choice = os.environ.get(ENV, "").strip().lower()
    if choice == "off":
        return Reporter()
    tty = stream.isatty() and os.environ.get("TERM") != "dumb"
    if choice == "rich" or (choice != "plain" and tty):
        from rich.console import Console

        return RichReporter(Console(file=stream))
    return PlainReporter(stream, every=every)
