"""`newsflow`: the command line. Every command loads the settings first, so a bad config stops it in one line.

The contract every command keeps: arguments are checked before anything runs; a user error (bad argument,
config, file or query) is one line on stderr, `newsflow: ...`, and exit 2; an unexpected exception is one line
naming its type, and exit 1; `--debug` or NEWSFLOW_DEBUG=1 adds the traceback. No command deletes, migrates
or creates a file that is not a newsflow warehouse; a user's SQL passes the query guard (warehouse/queryguard.py)
and every output path the write guard (warehouse/owned.py) before any work.
"""

from __future__ import annotations

import os

# An offline machine has no one to send analytics to; keep Prefect quiet unless the user says otherwise.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Tracebacks of a unit of work that failed unexpectedly (logged by the stage modules) reach the Prefect run log.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "newsflow")
# Without PREFECT_API_URL, runs use a temporary local Prefect server; on a busy 2-core machine its first start
# (creating its SQLite database) can take longer than Prefect's 20 s default.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
if not os.environ.get("PREFECT_API_URL"):
    os.environ.setdefault("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "true")

# Below the environment defaults, which must be set before anything imports Prefect.
from flows.cli.entry import main

__all__ = ["main"]
