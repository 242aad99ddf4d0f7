"""Serving Koe: Daphne, with the WebSocket limit and the shutdown a voice platform needs.

``python -m koe.server [daphne's options] [koe.asgi:application]`` takes every option of
the ``daphne`` command and differs in two ways:

- **Oversized frames get the documented error.** Daphne (Autobahn) drops the TCP
  connection, without a close frame, when a client sends a message over its size limit,
  so the caller's call died unexplained. Here the limit is Koe's own
  ``KOE_REALTIME_MAX_FRAME_BYTES`` (one setting for both), and a message over it is read
  and thrown away as it arrives (never buffered), then the consumer answers it with the
  ``frame_too_large`` error event and the call goes on.
- **A heartbeat.** The process records that it is alive (``calls.liveness``), so that if it
  is killed outright its calls are found and ended as ``server_lost`` by the others.
- **Celery beat's schedule** where there is no beat (the embedded default:
  ``koe.embedded_beat``).
- **Admission by load, and a graceful drain** (``calls.load``). The process watches its
  event loop's lag. SIGTERM does not stop it at once: it takes no new call (``/readyz``
  503, new calls refused with close 4013), lets its live calls finish for up to
  ``KOE_DRAIN_SECONDS``, then stops, ending any call left as ``server_shutdown``. It
  stops as soon as its last call ends. A second SIGTERM, or SIGINT (Ctrl-C), stops now.
- **A clean exit.** After Daphne has ended every live call (``server_shutdown``) and its
  reactor has stopped, the process leaves with ``os._exit``: CPython 3.11 could crash
  finalising the interpreter afterwards (SIGSEGV, exit -11), which supervisors and
  Kubernetes count as a crash. Nothing is left to run by then; logs are flushed first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

from foundation.frames import OVERSIZED

logger = logging.getLogger("koe.server")


class KoeWebSocketProtocol(WebSocketProtocol):
    """Daphne's protocol, reading past an oversized message instead of failing the TCP."""

    _oversized = False

    def _max_message_size_exceeded(self, msg_size: int, max_msg_size: int, reason: str) -> None:
        # Autobahn's default fails the connection (by dropping it). Mark the message;
        # its data is discarded below as it arrives.
        self._oversized = True

    def onMessageFrameData(self, payload: bytes) -> None:
        if not self._oversized:
            super().onMessageFrameData(payload)

    def onMessageFrameEnd(self) -> None:
        if self._oversized:
            self.frame_data = None
            return
        super().onMessageFrameEnd()

    def onMessageEnd(self) -> None:
        if not self._oversized:
            super().onMessageEnd()
            return
        self._oversized = False
        size = self.message_data_total_length
        self.message_data = None
        if self.muted or not hasattr(self, "application_queue"):
            return
        self.application_queue.put_nowait({"type": "websocket.receive", OVERSIZED: size})


class KoeServer(Server):  # type: ignore[misc]
    def run(self) -> None:
        from twisted.internet import reactor

        # Daphne turns --fd into an endpoint string Twisted no longer parses; adopt such
        # listening sockets here (a supervisor's, or a test's that must keep its port).
        endpoints: list[str] = self.endpoints  # type: ignore[has-type]
        self._adopted = [int(e.split("=", 1)[1]) for e in endpoints if e.startswith(_FD)]
        self.endpoints = [e for e in endpoints if not e.startswith(_FD)]
        # Startup triggers run when the reactor starts, before it accepts a connection.
        reactor.callWhenRunning(self._start_koe)  # type: ignore[attr-defined]
        super().run()

    def _start_koe(self) -> None:
        from django.conf import settings
        from twisted.internet import reactor

        from calls.liveness import ensure_beating
        from calls.load import ensure_watching

        self.ws_factory.protocol = KoeWebSocketProtocol
        factory = _with_tls(self.http_factory)
        for fileno in self._adopted:
            inherited = socket.socket(fileno=fileno)
            inherited.setblocking(False)  # Twisted's accept loop needs it (else it blocks)
            port = reactor.adoptStreamPort(  # type: ignore[attr-defined]
                fileno, inherited.family, factory
            )
            inherited.close()  # Twisted listens on its own duplicate
            host = port.getHost()
            self.listening_addresses.append((host.host, host.port))
            logger.info("Listening on inherited socket %s:%s", host.host, host.port)
        # This process says it is alive, and ends the calls of processes that died. (The
        # reactor's loop is not running yet while startup triggers run.)
        loop = reactor._asyncioEventloop  # type: ignore[attr-defined]
        ensure_beating(loop)
        ensure_watching(loop)
        # Twisted's own handler (installed before this runs) would stop at once.
        signal.signal(signal.SIGTERM, lambda signum, frame: loop.call_soon_threadsafe(self.drain))
        if settings.KOE_EMBEDDED_BEAT:
            from koe import embedded_beat

            embedded_beat.start(loop)

    def drain(self) -> None:
        """SIGTERM: take no new call, and stop once the live ones have ended or
        KOE_DRAIN_SECONDS have passed; a second SIGTERM stops now."""
        from django.conf import settings

        from calls.load import LOAD

        if LOAD.draining:
            logger.warning("SIGTERM again: ending %d live call(s) now", LOAD.calls)
            self._stop()
            return
        LOAD.drain()
        seconds = settings.KOE_DRAIN_SECONDS
        logger.info("SIGTERM: draining %d live call(s) for up to %g s", LOAD.calls, seconds)
        self._drained(time.monotonic() + seconds)

    def _drained(self, deadline: float) -> None:
        from twisted.internet import reactor

        from calls.load import LOAD

        if LOAD.calls and time.monotonic() < deadline:
            reactor.callLater(0.2, self._drained, deadline)  # type: ignore[attr-defined,arg-type]
            return
        if LOAD.calls:
            logger.warning("Drain timeout: ending %d live call(s)", LOAD.calls)
        self._stop()

    def _stop(self) -> None:
        from twisted.internet import reactor
        from twisted.internet.error import ReactorNotRunning

        with contextlib.suppress(ReactorNotRunning):  # stopping already
            reactor.stop()  # type: ignore[attr-defined,misc]


_FD = "fd:fileno="
WEBSOCKET_CONNECT_TIMEOUT = 30  # seconds; --websocket_connect_timeout changes it


def _with_tls(factory: Any) -> Any:
    """TLS on sockets handed over with --fd, when KOE_TLS_CERT and KOE_TLS_KEY name PEM
    files (a listening address of its own takes Daphne's ``-e ssl:...`` instead)."""
    cert, key = os.environ.get("KOE_TLS_CERT"), os.environ.get("KOE_TLS_KEY")
    if not (cert and key):
        return factory
    from twisted.internet import ssl
    from twisted.protocols.tls import TLSMemoryBIOFactory

    with open(key) as key_file, open(cert) as cert_file:
        certificate = ssl.PrivateCertificate.loadPEM(key_file.read() + cert_file.read())
    return TLSMemoryBIOFactory(certificate.options(), False, factory)


class KoeCommandLine(CommandLineInterface):  # type: ignore[misc]
    server_class = KoeServer

    def run(self, args: list[str]) -> None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koe.settings")
        from django.conf import settings

        limit = settings.KOE_REALTIME_MAX_FRAME_BYTES
        self.parser.set_defaults(
            application="koe.asgi:application",
            websocket_max_message_size=limit,
            websocket_max_frame_size=limit,
            # A call's handshake waits for its provider: the upstream's own handshake (up
            # to its 10 s open timeout) or the built-in voice's models still loading.
            # Daphne's default of 5 s would drop it without a word, before Koe could
            # accept the call or refuse it with a reason.
            websocket_connect_timeout=WEBSOCKET_CONNECT_TIMEOUT,
        )
        super().run(args)


def _application_optional(parser: Any) -> None:
    """``koe.asgi:application`` is the default application (daphne requires one)."""
    for action in parser._actions:
        if action.dest == "application":
            action.nargs = "?"


def main(argv: list[str] | None = None) -> None:
    command_line = KoeCommandLine()
    _application_optional(command_line.parser)
    command_line.run(sys.argv[1:] if argv is None else argv)  # exits 1 if it cannot start
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
