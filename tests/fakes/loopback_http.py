"""A fake's HTTP API on loopback: a threaded server on a port the kernel chose, started
and stopped with the fake (``with Fake(...) as fake:``)."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class QuietServer(ThreadingHTTPServer):
    """Serves each request on its own thread; a client hanging up is not an error."""

    daemon_threads = True
    fake: Any  # the fake whose handler answers (``self.server.fake`` in the handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackHttp:
    """Base of a fake served over HTTP: call ``serve`` in ``__init__``."""

    host: str
    port: int

    def serve(self, handler: type[BaseHTTPRequestHandler], host: str, name: str) -> None:
        self.host = host
        self._server = QuietServer((host, 0), handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=name,
        )
        self._started = False

    def start(self) -> Self:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._started:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
