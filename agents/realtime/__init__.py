"""The realtime session broker: an OpenAI-Realtime-compatible endpoint per tenant agent."""
