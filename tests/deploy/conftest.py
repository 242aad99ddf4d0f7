"""The deploy drills call an agent on OpenAI's protocol, as the broker tests do."""

from tests.realtime.conftest import openai_agent  # noqa: F401 (a fixture, shared)
