"""WebRTC tests share the broker tests' agent on the openai provider and its upstream."""

from tests.realtime.conftest import openai_agent  # noqa: F401 (fixtures, shared)
from tests.realtime.test_upstream import upstream_settings  # noqa: F401
