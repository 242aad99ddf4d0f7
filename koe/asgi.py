"""ASGI entry point: HTTP through Django, WebSockets through Channels consumers."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koe.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from foundation.env import env_bool  # noqa: E402
from koe.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

# A process that serves calls loads the local provider's models now, in the background,
# so that its first call does not wait a few seconds for them. Read from the environment
# here, not settings, so the test suite can turn it off before this module is imported.
if env_bool("KOE_LOCAL_WARM_UP", default=True):
    from agents.realtime.providers.local import warm_up_in_background

    warm_up_in_background()
