"""The broker's scripted provider and agent, for driving a real call's flushes."""

from tests.realtime.conftest import openai_agent, scripted_provider

__all__ = ["openai_agent", "scripted_provider"]
