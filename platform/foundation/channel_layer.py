"""The Redis channel layer, with its blocking receive's wait as a setting.

channels_redis waits up to 5 s (a class attribute) in each blocking receive of a
consumer's channel before asking again. Here it is ``receive_timeout`` in the layer's
CONFIG, so tests can check a quiet call outlives many such waits without waiting
seconds for each. The socket timeout must stay longer than it (see settings).
"""

from __future__ import annotations

from typing import Any

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer


class RedisChannelLayer(BaseRedisChannelLayer):  # type: ignore[misc]
    def __init__(self, *args: Any, receive_timeout: float = 5.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.brpop_timeout = receive_timeout
