"""Tool tests drive live calls too: the broker's scripted provider fixture, shared."""

from tests.realtime.conftest import scripted_provider

__all__ = ["scripted_provider"]
