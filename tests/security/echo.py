"""A misbehaving upstream for failing sends: every request answers 500 with the request echoed back.

Real proxies and vendor error pages do this; whatever we sent (tokens in headers or body) is then
in the error text we keep and show, unless the desk redacts it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def echo_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _echo(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            echoed = f"{self.requestline}\n{self.headers}".encode() + body
            self.send_response(500)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(echoed)))
            self.end_headers()
            self.wfile.write(echoed)

        do_GET = do_POST = do_PUT = do_DELETE = _echo

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
