"""Liveness and readiness probes, and the metrics: answered first of all.

- ``/healthz`` (liveness): the process answers. Restart it when it does not.
- ``/readyz`` (readiness): whether this process takes new calls now (``calls.load``): 503
  while it is at capacity, its event loop lags, or it drains after SIGTERM, so a load
  balancer or Kubernetes sends new calls elsewhere; its live calls go on.
- ``/metrics``: Prometheus' scrape (``foundation.metrics``, behind its bearer token).

A middleware, first in the chain, rather than views: probes and scrapes come from load
balancers, kubelets and Prometheus, which address the process by its IP, which
``ALLOWED_HOSTS`` rightly refuses
everywhere else (CommonMiddleware reads the Host header on every request), and they must
not wait behind the session, CSRF and authentication work that no probe needs. Under ASGI
it answers on the event loop it reports on, without a hop to a worker thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import sync_and_async_middleware

from calls.load import LOAD
from foundation.metrics import metrics


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    report = LOAD.report()
    return JsonResponse(report, status=200 if report["status"] == "ready" else 503)


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics,
}


def _probe(request: HttpRequest) -> HttpResponse | None:
    probe = PROBES.get(request.path_info)
    if probe is None or request.method not in {"GET", "HEAD"}:
        return None
    return probe(request)


@sync_and_async_middleware
def probe_middleware(
    get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]],
) -> Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]:
    if iscoroutinefunction(get_response):

        async def answer_async(request: HttpRequest) -> HttpResponse:
            return _probe(request) or await get_response(request)  # type: ignore[misc]

        return answer_async

    def answer(request: HttpRequest) -> HttpResponse:
        return _probe(request) or get_response(request)  # type: ignore[return-value]

    return answer
