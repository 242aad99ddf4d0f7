"""A real HTTP/1.1 server on loopback that records what it receives and answers as scripted.

Stands in for a tenant's webhook receiver: each request is recorded exactly as it arrived
(method, path, headers, raw body), and answered with the next queued Reply (or the
default one). A reply can be held until the test ends, to make a client time out, or be
sent in chunks without a length. Every accepted TCP connection is counted, so a test can
prove that a refused request never connected.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import socket
from types import TracebackType
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    hold: bool = False  # answer only when the receiver closes (the client gives up first)
    chunked: bool = False  # no Content-Length: the client cannot know the size in advance


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: HttpReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (a refused large body, a timeout) is expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def get_request(self) -> tuple[socket, Any]:
        accepted = super().get_request()
        with self.receiver.lock:
            self.receiver.connections += 1
        return accepted


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        with receiver.lock:
            receiver.requests.append(Received(self.command, self.path, headers, body))
            reply = receiver.replies.popleft() if receiver.replies else receiver.default
        if reply.hold:
            receiver.released.wait(30)
            if receiver.is_closed:
                self.close_connection = True
                return
        content = reply.body.encode() if isinstance(reply.body, str) else reply.body
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for start in range(0, len(content), 4096):
                    piece = content[start : start + 4096]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                self.close_connection = True  # the client stopped reading, as it should
            return
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        try:
            self.wfile.write(content)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer


class HttpReceiver:
    """``with HttpReceiver() as receiver: ... receiver.url("/hook")``."""

    def __init__(self, host: str = "127.0.0.1", default: Reply | None = None) -> None:
        self.host = host
        self.default = default or Reply()
        self.requests: list[Received] = []
        self.replies: deque[Reply] = deque()
        self.connections = 0
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.is_closed = False
        self._server = _Server((host, 0), _Handler)
        self._server.receiver = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def reply(self, *replies: Reply) -> None:
        """Answer the next requests with these, in order (then with the default)."""
        with self.lock:
            self.replies.extend(replies)

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.is_closed = True
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
