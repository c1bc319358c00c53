"""`python -m benchmarks.serve ROOT [--304]`: serve ROOT on 127.0.0.1 and print the base URL (benchmark helper).

With --304 every feed answers 304 Not Modified to a conditional request (and 200 with an ETag otherwise).
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from flows.localserver import LocalServer


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
    with LocalServer(root, routes=routes) as server:
        print(server.base, flush=True)
        threading.Event().wait()  # serve until the parent terminates us


if __name__ == "__main__":
    main()
