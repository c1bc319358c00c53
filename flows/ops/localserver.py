"""A small threaded HTTP server on 127.0.0.1 that serves a folder of feeds and pages.

Used by `newsflow demo` and by the tests: `{{BASE}}` in any served .xml/.html/.toml file becomes the server's
own http://127.0.0.1:PORT, so the snapshot's links point back at it.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

Route = Callable[[BaseHTTPRequestHandler], None]
_TEXT = (".xml", ".html", ".htm", ".toml", ".txt", ".json", ".atom", ".rss")
_TYPES = {".xml": "application/rss+xml", ".atom": "application/atom+xml", ".html": "text/html; charset=utf-8"}


class LocalServer:
    """Serve `root` on 127.0.0.1; extra `routes` (path -> handler) take precedence over files."""

    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 0,
                 routes: dict[str, Route] | None = None) -> None:
        self.root = root.resolve()
        self.routes = dict(routes or {})
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet: tests and demo read rows
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                with server._lock:
                    server.hits[path] = server.hits.get(path, 0) + 1
                route = server.routes.get(path)
                if route:
                    route(self)
                    return
                server._serve_file(self, path)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hangs up early (a size cap, a timeout) is expected here

        self._lock = threading.Lock()
        self.httpd = Server((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def render(self, data: bytes, suffix: str) -> bytes:
        return data.replace(b"{{BASE}}", self.base.encode()) if suffix in _TEXT else data

    def _serve_file(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        file = (self.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(self.root) or not file.is_file():
            body = b"<html><body><h1>404 Not Found</h1></body></html>"
            handler.send_response(404)
            handler.send_header("Content-Type", "text/html")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        body = self.render(file.read_bytes(), file.suffix)
        ctype = _TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        handler.send_response(200)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
