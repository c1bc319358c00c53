"""`newsflow`'s `main`: parse the arguments, run one command, and end every error as one line and an exit status
(the contract is in flows/cli/__init__.py's docstring)."""

from __future__ import annotations

import os
import sys
import traceback

from flows.cli import backup_commands, read_commands, run_commands
from flows.cli.arguments import build_parser
from flows.cli.common import CliError
from flows.core.settings import ConfigError
from flows.core.urls import scrub
from flows.run import shutdown
from flows.warehouse import database

# Errors that come from what the user gave (arguments, config, files, SQL): one line and exit 2.
USER_ERRORS: tuple[type[BaseException], ...] = (CliError, ConfigError, database.WarehouseError, ValueError, OSError)


COMMANDS = {**run_commands.COMMANDS, **read_commands.COMMANDS, **backup_commands.COMMANDS}


def main(argv: list[str] | None = None) -> int:
    """Run one command; every error, whichever command raised it, ends as one line and an exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0), or a bad argument already reported in one line (2)
        return exc.code if isinstance(exc.code, int) else 2
    debug = getattr(args, "debug", False) or os.environ.get("NEWSFLOW_DEBUG", "") not in ("", "0")
    if not debug and args.command in run_commands.COMMANDS:
        shutdown.console_without_tracebacks()
    try:
        with shutdown.sigterm_as_interrupt():
            return COMMANDS[args.command](args)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (flows/run/shutdown.py): one line, then exit at once
        return shutdown.interrupted(exc)
    except BrokenPipeError as exc:
        if not _stdout_gone():
            return _fail(exc, debug, 2, f"newsflow: {_one_line(exc)}")
        # The reader of stdout stopped (`newsflow sql ... | head -1`): quiet, with the status of a Unix tool
        # killed by SIGPIPE; stdout goes to /dev/null so the interpreter's last flush meets no closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except USER_ERRORS as exc:
        return _fail(exc, debug, 2, f"newsflow: {_one_line(exc)}")
    except Exception as exc:  # a bug or a broken environment: still one line, but say what it was
        return _fail(exc, debug, 1, f"newsflow: unexpected {type(exc).__name__}: {_one_line(exc)} "
                                    "(run with --debug or NEWSFLOW_DEBUG=1 for the traceback)")


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `yes | head -1`'s yes


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll reports POLLERR on its write end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no real stdout (closed, or replaced by a test's capture)
        return False


def _one_line(exc: BaseException) -> str:
    # Masked here too, whatever raised it: a connection string or URL in an error keeps its password out.
    return scrub(" ".join(database.first_line(exc).split()))


def _fail(exc: BaseException, debug: bool, code: int, line: str) -> int:
    if debug:
        traceback.print_exception(exc)
    print(line, file=sys.stderr)
    return code
