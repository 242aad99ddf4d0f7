"""WebRTC calls: OpenAI's ``POST /v1/realtime/calls`` on aiortc (see views and peer)."""
