"""A fault-injecting HTTP proxy in front of an S3 server: the store reached through a door that
can be closed (connections refused, as when the server is down) or slowed down (uploads or
downloads whose key matches a pattern wait before they are forwarded). `checkerless soak`
stops its store with it; the fault tests slow and stop theirs."""

from __future__ import annotations

import http.client
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A connection cut by `down()` or by its client is what a door does, not an error to print."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class StoreProxy:
    def __init__(self, upstream: str):
        target = urlsplit(upstream)
        self.upstream = (target.hostname, target.port)
        self.slow: dict[str, float] = {}  # key fragment -> seconds each PUT of it waits
        self.puts: deque[str] = deque(maxlen=10_000)  # paths of the latest PUTs forwarded, in order (a soak's run long)
        self.slow_get: dict[str, float] = {}  # key fragment -> seconds each GET of it waits
        self._server: ThreadingHTTPServer | None = None
        self._open: set[socket.socket] = set()  # client connections (kept alive between requests)
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                proxy._open.add(self.connection)

            def finish(self) -> None:
                proxy._open.discard(self.connection)
                super().finish()

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command == "PUT":
                    for fragment, seconds in list(proxy.slow.items()):
                        if fragment in self.path:
                            time.sleep(seconds)
                    proxy.puts.append(self.path)
                elif self.command == "GET":
                    for fragment, seconds in list(proxy.slow_get.items()):
                        if fragment in self.path:
                            time.sleep(seconds)
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", response.getheader("content-length", str(len(data)))
                                 if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        server = _QuietServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def down(self) -> None:
        """Stop listening: every new connection is refused until `up()`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for conn in list(self._open):  # and the connections already open are cut
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.down()
