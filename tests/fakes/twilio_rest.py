"""A fake of Twilio's Calls REST API for tests: place calls and change live ones, on loopback.

https://www.twilio.com/docs/voice/api/call-resource. The voice webhook, Media Streams and
signatures are in ``tests.fakes.twilio``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.loopback_http import LoopbackHttp, QuietServer
from tests.fakes.twilio import API_VERSION, new_sid

# --- the REST API ------------------------------------------------------------------------


@dataclass(frozen=True)
class RestRequest:
    method: str
    path: str
    form: dict[str, str]  # the last value of each field
    form_lists: dict[str, list[str]]  # every value (StatusCallbackEvent may repeat)
    auth: tuple[str, str] | None  # (username, password) of HTTP Basic auth
    headers: dict[str, str]  # names in lower case


@dataclass
class ScriptedError:
    """An error the fake answers with instead of handling a request."""

    status: int
    code: int
    message: str
    method: str | None = None  # only requests with this method …
    path_contains: str | None = None  # … and this in their path


@dataclass
class FakeCall:
    sid: str
    account_sid: str
    to: str
    from_: str
    status: str = "queued"
    direction: str = "outbound-api"
    parameters: dict[str, str] = field(default_factory=dict)  # the create request's form
    twiml: str | None = None
    url: str | None = None
    updates: list[dict[str, str]] = field(default_factory=list)
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))
    date_updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    start_time: datetime | None = None
    end_time: datetime | None = None
    answered_by: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The Call resource's representation (https://www.twilio.com/docs/voice/api/call-resource):
        dates in RFC 2822, duration a string of seconds, null where not known yet."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        duration = None
        if self.start_time and self.end_time:
            duration = str(int((self.end_time - self.start_time).total_seconds()))
        subresources = [
            "user_defined_message_subscriptions",
            "notifications",
            "recordings",
            "streams",
            "payments",
            "user_defined_messages",
            "siprec",
            "events",
            "transcriptions",
        ]

        def camel(name: str) -> str:
            return "".join(part.capitalize() for part in name.split("_"))

        return {
            "date_updated": _rfc2822(self.date_updated),
            "price_unit": "USD",
            "parent_call_sid": None,
            "caller_name": None,
            "duration": duration,
            "from": self.from_,
            "to": self.to,
            "annotation": None,
            "answered_by": self.answered_by,
            "sid": self.sid,
            "queue_time": "0",
            "price": None,
            "api_version": API_VERSION,
            "status": self.status,
            "direction": self.direction,
            "start_time": _rfc2822(self.start_time),
            "date_created": _rfc2822(self.date_created),
            "from_formatted": self.from_,
            "group_sid": None,
            "trunk_sid": None,
            "forwarded_from": None,
            "uri": f"{uri}.json",
            "account_sid": self.account_sid,
            "end_time": _rfc2822(self.end_time),
            "to_formatted": self.to,
            "phone_number_sid": None,
            "subresource_uris": {name: f"{uri}/{camel(name)}.json" for name in subresources},
        }


def _rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment) if moment is not None else None


_LIVE = {"queued", "ringing", "in-progress"}
_CALLS = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Calls\.json$")
_CALL = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Calls/(?P<call>[^/]+)\.json$")


def twilio_error(status: int, code: int, message: str, **more: Any) -> dict[str, Any]:
    """Twilio's JSON error body: code, message, more_info, status
    (https://www.twilio.com/docs/usage/twilios-response)."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    } | more


class _RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: QuietServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        form_lists: dict[str, list[str]] = {}
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form_lists = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        path = self.path.split("?", 1)[0]
        request = RestRequest(
            method=self.command,
            path=path,
            form={name: values[-1] for name, values in form_lists.items()},
            form_lists=form_lists,
            auth=_basic_auth(headers.get("authorization", "")),
            headers=headers,
        )
        status, answer, extra_headers = self.server.fake._answer(request)
        content = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in extra_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        try:
            self.wfile.write(content)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _handle


def _basic_auth(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, ValueError):
        return None
    return username, password


class FakeTwilioRest(LoopbackHttp):
    """The Calls resource on loopback: ``with FakeTwilioRest(sid, token) as twilio: twilio.base_url``.

    https://www.twilio.com/docs/voice/api/call-resource:
    ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` creates a call (To, From, and
    one of Url, Twiml or ApplicationSid; answered 201, status ``queued``, direction
    ``outbound-api``); ``POST …/Calls/{CallSid}.json`` updates a live one (Twiml or Url
    redirects it; Status ``completed`` hangs it up even in progress, ``canceled`` only
    while queued or ringing); ``GET …/Calls/{CallSid}.json`` fetches it. HTTP Basic auth
    with the Account SID and auth token (or an API key SID and secret).
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_keys: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_keys = dict(api_keys or {})
        self.host = host
        self.calls: dict[str, FakeCall] = {}
        self.requests: list[RestRequest] = []
        self.errors: deque[ScriptedError] = deque()
        self.lock = threading.Lock()
        self.serve(_RestHandler, host, "fake-twilio-rest")

    @property
    def base_url(self) -> str:
        """Stands for ``https://api.twilio.com``."""
        return f"http://{self.host}:{self.port}"

    def calls_url(self) -> str:
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Calls.json"

    def call_url(self, call_sid: str) -> str:
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Calls/{call_sid}.json"

    # --- running -----------------------------------------------------------------------

    # --- scripting ---------------------------------------------------------------------
    def fail_next(self, *errors: ScriptedError) -> None:
        """Answer the next matching requests (after authentication) with these errors."""
        with self.lock:
            self.errors.extend(errors)

    def register_call(
        self,
        call_sid: str,
        *,
        to_number: str,
        from_number: str,
        direction: str = "inbound",
        status: str = "in-progress",
    ) -> FakeCall:
        """Make a call known that did not start here (an inbound one, from ``ring``)."""
        now = datetime.now(UTC)
        call = FakeCall(
            sid=call_sid,
            account_sid=self.account_sid,
            to=to_number,
            from_=from_number,
            status=status,
            direction=direction,
            start_time=now if status == "in-progress" else None,
        )
        with self.lock:
            self.calls[call_sid] = call
        return call

    def answer(self, call_sid: str, answered_by: str | None = None) -> FakeCall:
        """The callee picks up: the call goes ``in-progress``."""
        with self.lock:
            call = self.calls[call_sid]
            call.status = "in-progress"
            call.start_time = call.date_updated = datetime.now(UTC)
            call.answered_by = answered_by
            return call

    def set_status(self, call_sid: str, status: str) -> FakeCall:
        with self.lock:
            call = self.calls[call_sid]
            call.status = status
            call.date_updated = datetime.now(UTC)
            if status not in _LIVE and call.end_time is None:
                call.end_time = call.date_updated
            return call

    # --- answering ---------------------------------------------------------------------
    def _answer(self, request: RestRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            self.requests.append(request)
            return self._route(request)

    def _authenticated(self, request: RestRequest) -> bool:
        if request.auth is None:
            return False
        username, password = request.auth
        if username == self.account_sid:
            return hmac.compare_digest(password, self.auth_token)
        secret = self.api_keys.get(username)
        return secret is not None and hmac.compare_digest(password, secret)

    def _not_found(self, request: RestRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        return (
            404,
            twilio_error(404, 20404, f"The requested resource {request.path} was not found"),
            {},
        )

    def _route(self, request: RestRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        calls_match = _CALLS.match(request.path)
        call_match = _CALL.match(request.path)
        match = calls_match or call_match
        if match is None:
            return self._not_found(request)
        if not self._authenticated(request):
            # 20003 "Authenticate"; the challenge lets a client retry with credentials.
            message = (
                "Authentication Error - No credentials provided"
                if request.auth is None
                else "Authentication Error - invalid username"
            )
            return (
                401,
                twilio_error(
                    401, 20003, message, detail="Your AccountSid or AuthToken was incorrect."
                ),
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        if match.group("account") != self.account_sid:
            return self._not_found(request)
        for index, error in enumerate(self.errors):
            if (error.method is None or error.method == request.method) and (
                error.path_contains is None or error.path_contains in request.path
            ):
                del self.errors[index]
                return error.status, twilio_error(error.status, error.code, error.message), {}
        if calls_match is not None and request.method == "POST":
            return self._create(request)
        if call_match is not None:
            call = self.calls.get(call_match.group("call"))
            if call is None:
                return self._not_found(request)
            if request.method == "GET":
                return 200, call.as_json(), {}
            if request.method == "POST":
                return self._update(call, request)
        return 405, twilio_error(405, 20004, "Method not allowed"), {}

    def _create(self, request: RestRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        form = request.form
        # Required parameters (call-resource, "Create a Call resource"). 21201 for a
        # missing To is documented with this message in the old REST response docs
        # (https://www.twilio.com/docs/api/2008-08-01/rest/response); 21213 (From) and
        # 21205 (Url) are Twilio's codes as remembered, not checked against a page here.
        if not form.get("To"):
            return 400, twilio_error(400, 21201, "No 'To' number is specified"), {}
        if not form.get("From"):
            return 400, twilio_error(400, 21213, "No 'From' number is specified"), {}
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            return 400, twilio_error(400, 21205, "Url parameter is required."), {}
        call = FakeCall(
            sid=new_sid("CA"),
            account_sid=self.account_sid,
            to=form["To"],
            from_=form["From"],
            parameters=dict(form),
            twiml=form.get("Twiml"),
            url=form.get("Url"),
        )
        self.calls[call.sid] = call
        return 201, call.as_json(), {}

    def _update(
        self, call: FakeCall, request: RestRequest
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        form = request.form
        now = datetime.now(UTC)
        status = form.get("Status")
        if status is not None and status not in {"completed", "canceled"}:
            return 400, twilio_error(400, 20001, f"Invalid Status: {status}"), {}
        redirect = form.get("Twiml") is not None or form.get("Url") is not None
        if redirect and call.status not in _LIVE:
            # Only a live call can be redirected (21220 "Invalid call state"; the code is
            # remembered, not checked against a page here).
            return (
                400,
                twilio_error(400, 21220, "Call is not in-progress. Cannot redirect."),
                {},
            )
        call.updates.append(dict(form))
        if form.get("Twiml") is not None:
            call.twiml, call.url = form["Twiml"], None
        elif form.get("Url") is not None:
            call.url, call.twiml = form["Url"], None
        if status == "completed" and call.status in _LIVE:
            # "completed will attempt to hang up a call even if it's already in progress"
            call.status = "completed"
            call.end_time = now
        elif status == "canceled" and call.status in {"queued", "ringing"}:
            # "canceled will attempt to hang up calls that are queued or ringing; however,
            # it will not affect calls already in progress"
            call.status = "canceled"
            call.end_time = now
        call.date_updated = now
        return 200, call.as_json(), {}
