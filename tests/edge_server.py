"""A tiny HTTP server on 127.0.0.1 whose answers the test scripts: loops, trickles, bombs.

Each route is a function of the request handler; it writes whatever the test needs (a redirect,
a body one byte at a time, a gzip bomb, HTML on a 200). ``calls`` records every request line.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Route = Callable[[BaseHTTPRequestHandler], None]


class EdgeServer:
    """Routes ``(method, path)`` to a function; anything else is a 404."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.calls: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _dispatch(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length) if length else b""
                server.calls.append((self.command, self.path))
                route = server.routes.get((self.command, urlsplit(self.path).path))
                try:
                    if route is None:
                        send(self, 404, {"errors": [{"detail": "no route"}]})
                    else:
                        route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the tap hung up (a deadline or a cap): that is the point

            do_GET = do_POST = _dispatch  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> EdgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: Any = None,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer with a JSON payload (or raw ``body``) and the given headers."""
    data = body if body is not None else json.dumps(payload).encode()
    handler.send_response(status)
    all_headers = {"Content-Type": "application/vnd.api+json", **(headers or {})}
    for name, value in all_headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def trickle(handler: BaseHTTPRequestHandler, data: bytes, every: float) -> None:
    """Send ``data`` one byte per ``every`` seconds (headers at once, Content-Length honest)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/vnd.api+json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.flush()
    for byte in data:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(every)


def segments_page(ids: list[str], next_url: str | None) -> dict[str, Any]:
    """One GET /api/segments page in Klaviyo's JSON:API shape."""
    return {
        "data": [
            {
                "type": "segment",
                "id": sid,
                "attributes": {"name": f"Segment {sid}", "is_active": True},
            }
            for sid in ids
        ],
        "links": {"self": "x", "next": next_url},
    }
