"""Serving Koe with uvicorn (uvloop, websockets, httptools): the faster option.

``python -m koe.uvicorn_server [--host H] [--port P | --fd N]``

Koe's default server is Daphne (``koe.server``). On the relay workload uvicorn does
clearly better (docs/performance.md: at 200 concurrent calls on one process, 111 ms
added at p99 against Daphne's 2.5 s, and about 30% less CPU per call), so it is offered
with the same guarantees:

- **The heartbeat** (``calls.liveness``), the event-loop lag watch and admission
  (``calls.load``), and Celery beat's schedule where there is no beat, started with the
  server.
- **The drain**: SIGTERM makes the process take no new call (``/readyz`` 503, new calls
  refused with close 4013), lets live calls go on for up to ``KOE_DRAIN_SECONDS`` and
  stops as soon as the last ends; a second SIGTERM, or SIGINT, stops now. Calls still live
  then are ended as ``server_shutdown``, recorded, before connections close. Exit 0.
- **Frame sizes**: a client message over ``KOE_REALTIME_MAX_FRAME_BYTES`` gets the
  documented ``error`` event from the policy and the call goes on, up to four times the
  limit; past that, uvicorn's WebSocket closes the connection (1009) without buffering it.
- **TLS** from ``KOE_TLS_CERT`` and ``KOE_TLS_KEY``, as ``koe.server``.

Forwarded headers are Koe's to read (``KOE_TRUSTED_PROXIES``), so uvicorn's are off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
from types import FrameType

import uvicorn

FRAME_SLACK = 4  # frames up to this many times Koe's limit reach the policy's error


class KoeUvicorn(uvicorn.Server):
    drain_requested = False
    drain_deadline: float | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        from django.conf import settings

        from calls.liveness import ensure_beating
        from calls.load import ensure_watching

        await super().startup(sockets)
        loop = asyncio.get_running_loop()
        ensure_beating(loop)
        ensure_watching(loop)
        if settings.KOE_EMBEDDED_BEAT:
            from koe import embedded_beat

            embedded_beat.start(loop)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # The first SIGTERM drains (on_tick carries it out); a second, or SIGINT, stops.
        # Not recorded as a captured signal: uvicorn would raise it again on its way out,
        # and a drained process exits 0.
        if sig == signal.SIGTERM and not self.drain_requested:
            self.drain_requested = True
            return
        if sig == signal.SIGTERM:
            self.should_exit = True
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        from django.conf import settings

        from calls.load import LOAD

        if self.drain_requested and self.drain_deadline is None:
            LOAD.drain()
            self.drain_deadline = time.monotonic() + settings.KOE_DRAIN_SECONDS
            uvicorn.server.logger.info(
                "SIGTERM: draining %d live call(s) for up to %g s",
                LOAD.calls,
                settings.KOE_DRAIN_SECONDS,
            )
        if self.drain_deadline is not None and (
            not LOAD.calls or time.monotonic() >= self.drain_deadline
        ):
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        from agents.realtime.shutdown import end_live_calls

        await end_live_calls()  # recorded as server_shutdown, before connections close
        await super().shutdown(sockets)


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m koe.uvicorn_server", description=__doc__)
    parser.add_argument("--host", "-b", default="127.0.0.1")
    parser.add_argument("--port", "-p", type=int, default=8000)
    parser.add_argument("--fd", type=int, help="serve on this listening socket")
    return parser.parse_args(argv)


def config(args: argparse.Namespace) -> uvicorn.Config:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koe.settings")
    import django
    from django.conf import settings

    django.setup()
    tls = bool(os.environ.get("KOE_TLS_CERT") and os.environ.get("KOE_TLS_KEY"))
    return uvicorn.Config(
        "koe.asgi:application",
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets",
        ws_max_size=settings.KOE_REALTIME_MAX_FRAME_BYTES * FRAME_SLACK,
        ws_per_message_deflate=False,  # audio does not compress; the CPU is the calls'
        lifespan="off",
        proxy_headers=False,
        access_log=False,
        log_config=None,  # Django's logging configuration stands
        timeout_graceful_shutdown=5,  # the calls have been ended by then
        ssl_certfile=os.environ["KOE_TLS_CERT"] if tls else None,
        ssl_keyfile=os.environ["KOE_TLS_KEY"] if tls else None,
    )


def main(argv: list[str] | None = None) -> None:
    args = arguments(sys.argv[1:] if argv is None else argv)
    server = KoeUvicorn(config(args))
    # A listening socket handed over (a supervisor's, or a test's that keeps its port):
    # adopted with its own family (uvicorn's --fd takes every descriptor for a Unix one).
    sockets = [socket.socket(fileno=args.fd)] if args.fd is not None else None
    server.run(sockets=sockets)
    sys.exit(0 if server.started else 1)


if __name__ == "__main__":
    main()
