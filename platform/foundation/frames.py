"""What Koe's server (``koe.server``) tells a WebSocket application beyond plain ASGI.

Kept apart from ``koe.server`` so that applications can read it without importing Daphne
(which installs Twisted's reactor when imported).
"""

# The key of a ``websocket.receive`` message that stands for a frame over the size limit,
# read and discarded by the server; its value is the size read. No "text" or "bytes".
OVERSIZED = "koe.oversized_bytes"
