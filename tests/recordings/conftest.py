"""Recordings tests reuse the broker tests' scripted provider."""

from tests.broker.conftest import scripted_provider

__all__ = ["scripted_provider"]
