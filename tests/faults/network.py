"""A TCP proxy a test can cut: a service outage as the application sees one.

Koe's server is pointed at the proxy instead of PostgreSQL or Redis. ``cut()`` resets
every open connection and refuses new ones (each accepted connection is reset at once,
so clients see the service go away, not hang); ``restore()`` lets connections through
again. The proxy keeps its own listening port for the whole test, so nothing else can
take it meanwhile.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a crashed server's kernel would answer.

    shutdown(SHUT_RD) first: it wakes a pump thread blocked reading this socket (sending
    nothing), so the close is the socket's last and the RST goes out at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port: int = self.listener.getsockname()[1]
        self.refusing = False
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.accepted = 0
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True, name="tcp-proxy")

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def cut(self) -> None:
        """The service goes away: open connections reset, new ones refused."""
        with self.lock:
            self.refusing = True
            doomed, self.connections = self.connections, set()
        for sock in doomed:
            _reset(sock)

    def restore(self) -> None:
        with self.lock:
            self.refusing = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self.listener.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- forwarding ------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                refusing = self.refusing
            if refusing:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self.lock:
                self.accepted += 1
                self.connections.update((client, upstream))
            for source, destination in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, destination), daemon=True).start()

    def _pump(self, source: socket.socket, destination: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                destination.sendall(data)
        except OSError:
            pass
        finally:
            with self.lock:
                self.connections.discard(source)
                self.connections.discard(destination)
            _reset(source)
            _reset(destination)
