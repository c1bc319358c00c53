"""`python -m benchmarks.serve ROOT [--304] [--hosts N]`: serve ROOT on 127.0.0.1 and print the base URL
(benchmark helper).

With --304 every feed answers 304 Not Modified to a conditional request (and 200 with an ETag otherwise). With
--hosts N the same folder is served on N loopback addresses, 127.0.0.2 ... 127.0.0.N+1 (all of 127.0.0.0/8 is
loopback on Linux), one base URL a line: N hosts, as politeness sees them.
"""

from __future__ import annotations

import sys
import threading
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from flows.ops.localserver import LocalServer


def feed_304(handler: BaseHTTPRequestHandler) -> None:
    if handler.headers.get("If-None-Match"):
        handler.send_response(304)
        handler.send_header("ETag", '"v1"')
        handler.end_headers()
        return
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>quiet</title></channel></rss>'
    handler.send_response(200)
    handler.send_header("Content-Type", "application/rss+xml")
    handler.send_header("ETag", '"v1"')
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def main() -> None:
    root = Path(sys.argv[1])
    routes = {f"/quiet/{i}.xml": feed_304 for i in range(1000)} if "--304" in sys.argv else None
    hosts = int(sys.argv[sys.argv.index("--hosts") + 1]) if "--hosts" in sys.argv else 0
    addresses = [f"127.0.0.{2 + i}" for i in range(hosts)] or ["127.0.0.1"]
    with ExitStack() as stack:
        servers = [stack.enter_context(LocalServer(root, host=a, routes=routes)) for a in addresses]
        print("\n".join(s.base for s in servers), flush=True)
        threading.Event().wait()  # serve until the parent terminates us


if __name__ == "__main__":
    main()
