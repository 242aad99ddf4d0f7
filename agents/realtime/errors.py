"""OpenAI-style ``error`` events: how the broker refuses a client event and goes on."""

from __future__ import annotations

from typing import Any

from koe.ids import random_token


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
