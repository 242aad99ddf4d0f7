"""OpenAI-style ``error`` events, and the WebSocket close codes that end a call.

A server may close a WebSocket only with 1000 or a code from 3000 to 4999 (RFC 6455
section 7.4.2; Autobahn, under Daphne, refuses to send anything else, so a 1011 never
reaches the client and the socket stays open): every code Koe closes with is one of those.
"""

from __future__ import annotations

from typing import Any

from foundation.ids import random_token

CLOSE_NORMAL = 1000
CLOSE_INVALID_REQUEST = 4000
CLOSE_AUTHENTICATION = 4001
CLOSE_RATE_LIMITED = 4029  # the tenant's call cap, its budget
CLOSE_SERVER_ERROR = 4500  # a fault in Koe ended the call
CLOSE_PROVIDER_ERROR = 4502  # the speech provider failed or closed mid-call
CLOSE_UNAVAILABLE = 4503  # the provider or Koe's database could not be reached at set-up
# This process takes no new call now (at capacity, or shutting down): try again, another
# process will take it. WebSocket's own 1013 (Try Again Later), in the range a server sends.
CLOSE_TRY_AGAIN = 4013

# By the error type of the event sent before closing.
CLOSE_CODES = {
    "invalid_request_error": CLOSE_INVALID_REQUEST,
    "authentication_error": CLOSE_AUTHENTICATION,
    "rate_limit_error": CLOSE_RATE_LIMITED,
    "server_error": CLOSE_SERVER_ERROR,
}


class ClientEventRejected(Exception):
    """A client event the policy does not let through; the session continues."""

    def __init__(
        self,
        message: str,
        code: str,
        *,
        event_id: str | None = None,
        param: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.event_id = event_id
        self.param = param
        self.error_type = error_type

    def to_event(self) -> dict[str, Any]:
        return error_event(
            self.message,
            self.code,
            error_type=self.error_type,
            param=self.param,
            client_event_id=self.event_id,
        )


def error_event(
    message: str,
    code: str,
    *,
    error_type: str = "invalid_request_error",
    param: str | None = None,
    client_event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "error",
        "event_id": "event_" + random_token(20),
        "error": {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }
