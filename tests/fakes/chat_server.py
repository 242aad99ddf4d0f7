"""A protocol-faithful fake of an OpenAI-compatible chat-completions server, for tests.

A real HTTP/1.1 server on loopback (stdlib asyncio streams) that answers
``POST /v1/chat/completions`` as OpenAI does: with ``stream`` a ``text/event-stream`` of
``chat.completion.chunk`` objects in chunked transfer encoding (the first delta carries the
role, tool calls arrive as fragments keyed by ``index``, a last chunk carries
``finish_reason``, then ``data: [DONE]``), without it one ``chat.completion`` object.
It checks ``Authorization: Bearer`` when given a key, and refuses any Authorization
header when not (Koe must not send a key it was not given: a key for one server must
never leak to another), and answers errors with OpenAI's error body. Replies are queued by the test, which can also slow a stream down, hold it, or send
raw events; every request is recorded, and a client that hangs up mid-stream is counted.

The tests read everything it sends with the ``openai`` package, so the shapes stay
faithful to the SDK's ``ChatCompletionChunk`` and ``ChatCompletion`` models.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

CHAT_PATH = "/v1/chat/completions"


@dataclass
class FakeToolCall:
    name: str
    arguments: dict[str, Any] | str  # a str is sent as is, e.g. to send broken JSON
    argument_pieces: int = 3  # how many fragments the arguments are streamed in


@dataclass
class Reply:
    """One scripted answer, used by the next request."""

    # Streamed word by word, or in exactly these pieces when a list.
    text: str | list[str] = ""
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    # A status other than 200 answers with OpenAI's error body carrying error_message.
    status: int = 200
    error_message: str = "The server had an error while processing your request."
    # Sent instead of the generated chunks: each is the data of one event, verbatim.
    raw_events: list[str] | None = None
    chunk_delay: float = 0.0  # seconds between events
    # After this many events the stream stops until release() or the client hangs up.
    hold_after: int | None = None
    line_ending: str = "\n"
    keep_alive_comments: bool = False  # a ": keep-alive" comment before each event


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # the parsed JSON, or None


class FakeChatServer:
    def __init__(self, *, api_key: str = "", default_model: str = "fake-model") -> None:
        self.api_key = api_key
        self.default_model = default_model
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0  # clients that hung up before their stream ended
        self.completed_streams = 0
        self.port = 0
        self._replies: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._released: asyncio.Event | None = None
        self._changed = threading.Condition()

    # --- scripting and inspecting ---------------------------------------------------------
    def queue(self, *replies: Reply) -> FakeChatServer:
        self._replies.extend(replies)
        return self

    @property
    def url(self) -> str:
        """The base URL a client is configured with (it appends /chat/completions)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def bodies(self) -> list[Any]:
        return [request.body for request in self.requests]

    def release(self) -> None:
        """Let streams held by ``hold_after`` go on, now and later; safe from any thread."""
        assert self._loop is not None and self._released is not None
        self._loop.call_soon_threadsafe(self._released.set)

    def wait_for(self, count: int, what: str = "disconnects", timeout: float = 5.0) -> bool:
        """Block until ``disconnects`` (or ``completed_streams``) reaches ``count``.

        From an async test running on the server's own loop, call it through
        ``asyncio.to_thread`` so the server keeps running meanwhile.
        """
        with self._changed:
            return self._changed.wait_for(lambda: getattr(self, what) >= count, timeout)

    # --- running ------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._released = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            # A held stream would otherwise keep its handler waiting forever.
            for handler in list(self._handlers):
                handler.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    async def __aenter__(self) -> FakeChatServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_in_thread(self) -> FakeChatServer:
        """Serve from a daemon thread with its own event loop (for synchronous tests)."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-chat")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> FakeChatServer:
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- HTTP ---------------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            # Keep-alive: requests follow one another on a connection until the client
            # closes it between two of them, which is no disconnect.
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # close() ends held streams this way; the task must still end normally, or
            # asyncio logs the cancellation as an error of the connection callback.
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request_line = await reader.readline()
        if not request_line:
            return False
        method, path, _version = request_line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        raw_body = await reader.readexactly(int(headers.get("content-length", "0")))
        try:
            body = json.loads(raw_body) if raw_body else None
        except json.JSONDecodeError:
            body = None
        self.requests.append(RecordedRequest(method, path.split("?")[0], headers, body))

        if path.split("?")[0] != CHAT_PATH or method != "POST":
            await self._send_error(
                writer,
                HTTPStatus.NOT_FOUND,
                f"Unknown request URL: {method} {path}. Please check the URL for typos.",
                code="unknown_url",
            )
            return True
        if not self.api_key and "authorization" in headers:
            await self._send_error(
                writer,
                HTTPStatus.BAD_REQUEST,
                "This server takes no API key, yet an Authorization header was sent.",
                code="unexpected_authorization",
            )
            return True
        if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
            presented = headers.get("authorization", "").removeprefix("Bearer ")
            message = (
                f"Incorrect API key provided: {presented[:4]}****."
                if presented
                else "You didn't provide an API key."
            )
            await self._send_error(writer, HTTPStatus.UNAUTHORIZED, message, code="invalid_api_key")
            return True
        if not isinstance(body, dict) or "messages" not in body:
            await self._send_error(
                writer, HTTPStatus.BAD_REQUEST, "We could not parse the JSON body of your request."
            )
            return True
        if not self._replies:
            await self._send_error(
                writer,
                HTTPStatus.INTERNAL_SERVER_ERROR,
                "FakeChatServer: no reply queued for this request.",
                error_type="server_error",
            )
            return True
        reply = self._replies.popleft()
        if reply.status != HTTPStatus.OK:
            await self._send_error(
                writer,
                HTTPStatus(reply.status),
                reply.error_message,
                error_type="server_error" if reply.status >= 500 else "invalid_request_error",
            )
            return True
        model = body.get("model") or self.default_model
        if not body.get("stream"):
            await self._send_json(writer, HTTPStatus.OK, self._completion(reply, model))
            return True
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self._stream(reader, writer, reply, model, include_usage)

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        reply: Reply,
        model: str,
        include_usage: bool,
    ) -> bool:
        """Send one event stream; False when the client hung up before its end."""
        writer.write(
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/event-stream; charset=utf-8\r\n"
            b"Cache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n"
            b"\r\n"
        )
        # The client sends nothing more until the response ends, so anything it does
        # now (reading returns end of file) means it has gone.
        gone = asyncio.ensure_future(reader.read(1))
        try:
            if reply.raw_events is not None:
                events = list(reply.raw_events)
            else:
                events = [json.dumps(chunk) for chunk in self._chunks(reply, model, include_usage)]
            events.append("[DONE]")
            for number, data in enumerate(events):
                if (
                    number
                    and reply.chunk_delay
                    and await self._client_left(gone, reply.chunk_delay)
                ):
                    return self._disconnected()
                if number == reply.hold_after and await self._client_left(gone, None):
                    return self._disconnected()
                event = f"data: {data}{reply.line_ending}{reply.line_ending}"
                if reply.keep_alive_comments:
                    event = f": keep-alive{reply.line_ending}{reply.line_ending}" + event
                if gone.done():
                    return self._disconnected()
                try:
                    await self._write_chunk(writer, event.encode())
                except ConnectionError:
                    return self._disconnected()
            await self._write_chunk(writer, b"")
        finally:
            gone.cancel()
            # Only one reader at a time: the next request is read once this one has stopped.
            await asyncio.wait({gone})
        with self._changed:
            self.completed_streams += 1
            self._changed.notify_all()
        return True

    async def _client_left(self, gone: asyncio.Future[bytes], seconds: float | None) -> bool:
        """Wait the seconds, or (None) until release(); True if the client hung up meanwhile."""
        assert self._released is not None
        waiters: set[asyncio.Future[Any]] = {gone}
        released = asyncio.ensure_future(self._released.wait()) if seconds is None else None
        if released is not None:
            waiters.add(released)
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if released is not None:
                released.cancel()
        return gone.done()

    def _disconnected(self) -> bool:
        with self._changed:
            self.disconnects += 1
            self._changed.notify_all()
        return False

    @staticmethod
    async def _write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()

    async def _send_json(self, writer: asyncio.StreamWriter, status: HTTPStatus, body: Any) -> None:
        payload = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status.value} {status.phrase}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "\r\n".encode()
            + payload
        )
        await writer.drain()

    async def _send_error(
        self,
        writer: asyncio.StreamWriter,
        status: HTTPStatus,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:
        error = {"message": message, "type": error_type, "param": None, "code": code}
        await self._send_json(writer, status, {"error": error})

    # --- what a reply looks like on the wire ---------------------------------------------------
    def _chunks(self, reply: Reply, model: str, include_usage: bool) -> list[dict[str, Any]]:
        completion_id = f"chatcmpl-fake{next(self._ids):06d}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
            }

        chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
        pieces = reply.text if isinstance(reply.text, list) else _words(reply.text)
        chunks += [chunk({"content": piece}) for piece in pieces]
        for index, call in enumerate(reply.tool_calls):
            first = {
                "index": index,
                "id": f"call_fake{next(self._ids):06d}",
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            chunks.append(chunk({"tool_calls": [first]}))
            for piece in _split(_arguments_text(call), call.argument_pieces):
                fragment = {"index": index, "function": {"arguments": piece}}
                chunks.append(chunk({"tool_calls": [fragment]}))
        chunks.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
        if include_usage:
            chunks.append(
                {
                    **chunk({}),
                    "choices": [],
                    "usage": _usage(reply),
                }
            )
        return chunks

    def _completion(self, reply: Reply, model: str) -> dict[str, Any]:
        text = "".join(reply.text) if isinstance(reply.text, list) else reply.text
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text or None,
            "refusal": None,
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_fake{next(self._ids):06d}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": _arguments_text(call)},
                }
                for call in reply.tool_calls
            ]
        return {
            "id": f"chatcmpl-fake{next(self._ids):06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": _usage(reply),
        }


def _words(text: str) -> list[str]:
    """Pieces like a tokenizer's: each word with the space before it."""
    return re.findall(r"\s*\S+|\s+$", text)


def _split(text: str, pieces: int) -> list[str]:
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[start : start + size] for start in range(0, len(text), size)]


def _arguments_text(call: FakeToolCall) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


def _usage(reply: Reply) -> dict[str, int]:
    # Deterministic and in proportion: about one token per four characters.
    text = "".join(reply.text) if isinstance(reply.text, list) else reply.text
    completion = max(1, (len(text) + sum(len(_arguments_text(c)) for c in reply.tool_calls)) // 4)
    return {"prompt_tokens": 50, "completion_tokens": completion, "total_tokens": 50 + completion}
