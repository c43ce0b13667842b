"""A real TCP proxy in front of the API that fails connections on purpose, for the client's
retry tests. Each new connection takes the next action of its plan:
- "503": reads the request and answers 503 with Retry-After: 1 itself (the API never sees it);
- "cut": passes the request to the API, reads the API's whole answer (so the API has done the
  work), then closes the client's connection without a byte of it: an answer lost on the way;
- once the plan is spent, connections are passed through both ways.
It records each connection's first request and, where it read one, the API's answer."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

BUSY = (b'{"detail": "the proxy is busy"}')


@dataclass
class Seen:
    action: str
    request_head: str
    answer_head: str = ""
    answer_body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class FlakyProxy:
    def __init__(self, upstream_port: int, plan: list[str]):
        self.upstream = ("127.0.0.1", upstream_port)
        self.plan = list(plan)
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                action = self.plan.pop(0) if self.plan else "pass"
            threading.Thread(target=self._serve, args=(conn, action), daemon=True).start()

    def _serve(self, conn: socket.socket, action: str) -> None:
        with conn:
            head, body = _read_message(conn)
            seen = Seen(action, head.decode("latin-1"), headers=_headers(head))
            self.seen.append(seen)
            if action == "503":
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BUSY), BUSY))
                return
            with socket.create_connection(self.upstream) as up:
                up.sendall(head + body)
                answer_head, answer_body = _read_message(up)
                seen.answer_head, seen.answer_body = answer_head.decode("latin-1"), answer_body
                if action == "cut":
                    return  # the client's connection closes with nothing sent back
                conn.sendall(answer_head + answer_body)
                _pipe_both_ways(conn, up)


def _read_message(sock: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP/1.1 message with a Content-Length (or none): its head, and its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the peer closed before a whole message head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(_headers(head + b"\r\n\r\n").get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the peer closed before the whole body")
        body += chunk
    return head + b"\r\n\r\n", body


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if ":" in line)}


def _pipe_both_ways(a: socket.socket, b: socket.socket) -> None:
    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    other = threading.Thread(target=copy, args=(b, a), daemon=True)
    other.start()
    copy(a, b)
    other.join(timeout=30)
