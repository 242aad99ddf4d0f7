"""The shapes of the Realtime API (GA) client events, checked before any provider sees one.

Written from the official SDK's parameter types (``openai.types.realtime.*_param``) and
OpenAI's API reference: every field a client may send, with its type, enum and range.
A field the API does not know is refused, as the API refuses it (``unknown_parameter``);
a wrong type, value or range names the field in ``param``. Null stands for "not given"
wherever the API marks a field optional, because real clients send nulls (LiveKit sends
``"instructions": null`` with every response.create).

``validate()`` is plain Python over one parsed event, shared by the broker's policy and the
built-in provider, so a malformed event never reaches code that trusts its shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from agents.realtime import events
from agents.realtime.errors import ClientEventRejected


class _Shape(BaseModel):
    # strict: "0.5" is not a number and true is not 1, as in the API's JSON Schema.
    model_config = ConfigDict(extra="forbid", strict=True)


# --- audio -------------------------------------------------------------------------------
class AudioPCM(_Shape):
    type: Literal["audio/pcm"]
    rate: Literal[24000] | None = None


class AudioPCMU(_Shape):
    type: Literal["audio/pcmu"]


class AudioPCMA(_Shape):
    type: Literal["audio/pcma"]


AudioFormat = Annotated[AudioPCM | AudioPCMU | AudioPCMA, Field(discriminator="type")]


class NoiseReduction(_Shape):
    type: Literal["near_field", "far_field"] | None = None
    strength: float | None = Field(default=None, ge=0, le=1)


class Transcription(_Shape):
    model: str | None = None
    language: str | None = Field(default=None, max_length=16)
    languages: list[str] | None = None
    prompt: str | None = None
    keywords: list[str] | None = None
    delay: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None


class ServerVad(_Shape):
    type: Literal["server_vad"]
    threshold: float | None = Field(default=None, ge=0, le=1)
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=10_000)
    silence_duration_ms: int | None = Field(default=None, ge=0, le=10_000)
    idle_timeout_ms: int | None = Field(default=None, ge=0)
    create_response: bool | None = None
    interrupt_response: bool | None = None


class SemanticVad(_Shape):
    type: Literal["semantic_vad"]
    eagerness: Literal["low", "medium", "high", "auto"] | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None


TurnDetection = Annotated[ServerVad | SemanticVad, Field(discriminator="type")]


class AudioInput(_Shape):
    format: AudioFormat | None = None
    noise_reduction: NoiseReduction | None = None
    transcription: Transcription | None = None
    turn_detection: TurnDetection | None = None


class VoiceId(_Shape):
    id: str


class AudioOutput(_Shape):
    format: AudioFormat | None = None
    speed: float | None = Field(default=None, ge=0.25, le=1.5)
    voice: str | VoiceId | None = None


class AudioConfig(_Shape):
    input: AudioInput | None = None
    output: AudioOutput | None = None


class ResponseAudio(_Shape):
    output: AudioOutput | None = None


# --- tools -------------------------------------------------------------------------------
class FunctionTool(_Shape):
    type: Literal["function"] | None = None
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class McpTool(_Shape):
    # Accepted as a shape (the SDK sends it); OpenAI-hosted MCP servers are not Koe's to
    # run, so the policy never lets one through.
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["mcp"]
    server_label: str


def _tool_tag(value: Any) -> str:
    return "mcp" if isinstance(value, dict) and value.get("type") == "mcp" else "function"


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[McpTool, Tag("mcp")],
    Discriminator(_tool_tag),
]


class ToolChoiceFunction(_Shape):
    type: Literal["function"]
    name: str


class ToolChoiceMcp(_Shape):
    type: Literal["mcp"]
    server_label: str
    name: str | None = None


ToolChoice = (
    Literal["auto", "none", "required"]
    | Annotated[ToolChoiceFunction | ToolChoiceMcp, Field(discriminator="type")]
)


class Prompt(_Shape):
    id: str
    version: str | None = None
    variables: dict[str, Any] | None = None


class Reasoning(_Shape):
    effort: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None


class TracingConfiguration(_Shape):
    workflow_name: str | None = None
    group_id: str | None = None
    metadata: Any = None


class RetentionRatio(_Shape):
    type: Literal["retention_ratio"]
    retention_ratio: float = Field(ge=0, le=1)
    token_limits: dict[str, Any] | None = None


MaxOutputTokens = Annotated[int, Field(ge=1, le=4096)] | Literal["inf"]
Modalities = Annotated[list[Literal["text", "audio"]], Field(max_length=1)]


# --- items -------------------------------------------------------------------------------
class ContentPart(_Shape):
    type: Literal["input_text", "input_audio", "input_image", "output_text", "output_audio"]
    text: str | None = None
    audio: str | None = None
    transcript: str | None = None
    image_url: str | None = None
    detail: Literal["auto", "low", "high"] | None = None


# Which content a message of each role may carry (the SDK's per-role Content types).
CONTENT_BY_ROLE = {
    "system": {"input_text"},
    "user": {"input_text", "input_audio", "input_image"},
    "assistant": {"output_text", "output_audio"},
}


class _Item(_Shape):
    id: str | None = Field(default=None, max_length=64)
    object: Literal["realtime.item"] | None = None
    status: Literal["completed", "incomplete", "in_progress"] | None = None


class MessageItem(_Item):
    type: Literal["message"]
    role: Literal["system", "user", "assistant"]
    content: list[ContentPart]


class FunctionCallItem(_Item):
    type: Literal["function_call"]
    call_id: str | None = None
    name: str
    arguments: str


class FunctionCallOutputItem(_Item):
    type: Literal["function_call_output"]
    call_id: str
    output: str


class McpItem(_Item):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["mcp_call", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response"]


Item = Annotated[
    MessageItem | FunctionCallItem | FunctionCallOutputItem | McpItem,
    Field(discriminator="type"),
]


class ItemReference(_Shape):
    type: Literal["item_reference"]
    id: str


def _input_tag(value: Any) -> str:
    return (
        "reference" if isinstance(value, dict) and value.get("type") == "item_reference" else "item"
    )


ResponseInput = Annotated[
    Annotated[Item, Tag("item")] | Annotated[ItemReference, Tag("reference")],
    Discriminator(_input_tag),
]


# --- sessions and responses --------------------------------------------------------------
class Session(_Shape):
    # The API requires it; Koe has always treated a missing type as "realtime".
    type: Literal["realtime"] = "realtime"
    audio: AudioConfig | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None
    instructions: str | None = None
    max_output_tokens: MaxOutputTokens | None = None
    model: str | None = None
    output_modalities: Modalities | None = None
    parallel_tool_calls: bool | None = None
    prompt: Prompt | None = None
    reasoning: Reasoning | None = None
    tool_choice: ToolChoice | None = None
    tools: list[Tool] | None = None
    tracing: Literal["auto"] | TracingConfiguration | None = None
    truncation: Literal["auto", "disabled"] | RetentionRatio | None = None


class ResponseParams(_Shape):
    audio: ResponseAudio | None = None
    conversation: str | None = None
    input: list[ResponseInput] | None = None
    instructions: str | None = None
    max_output_tokens: MaxOutputTokens | None = None
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = None
    output_modalities: Modalities | None = None
    parallel_tool_calls: bool | None = None
    prompt: Prompt | None = None
    reasoning: Reasoning | None = None
    tool_choice: ToolChoice | None = None
    tools: list[Tool] | None = None


# --- the events --------------------------------------------------------------------------
class _Event(_Shape):
    event_id: str | None = Field(default=None, max_length=512)


class SessionUpdate(_Event):
    type: Literal["session.update"]
    session: Session


class InputAudioAppend(_Event):
    type: Literal["input_audio_buffer.append"]
    audio: str


class InputAudioCommit(_Event):
    type: Literal["input_audio_buffer.commit"]


class InputAudioClear(_Event):
    type: Literal["input_audio_buffer.clear"]


class OutputAudioClear(_Event):
    type: Literal["output_audio_buffer.clear"]


class ItemCreate(_Event):
    type: Literal["conversation.item.create"]
    previous_item_id: str | None = None
    item: Item


class ItemTruncate(_Event):
    type: Literal["conversation.item.truncate"]
    item_id: str
    content_index: int = Field(ge=0)
    audio_end_ms: int = Field(ge=0)


class ItemDelete(_Event):
    type: Literal["conversation.item.delete"]
    item_id: str


class ItemRetrieve(_Event):
    type: Literal["conversation.item.retrieve"]
    item_id: str


class ResponseCreate(_Event):
    type: Literal["response.create"]
    response: ResponseParams | None = None


class ResponseCancel(_Event):
    type: Literal["response.cancel"]
    response_id: str | None = None


SHAPES: dict[str, type[_Event]] = {
    events.SESSION_UPDATE: SessionUpdate,
    events.INPUT_AUDIO_APPEND: InputAudioAppend,
    events.INPUT_AUDIO_COMMIT: InputAudioCommit,
    events.INPUT_AUDIO_CLEAR: InputAudioClear,
    events.OUTPUT_AUDIO_CLEAR: OutputAudioClear,
    events.ITEM_CREATE: ItemCreate,
    events.ITEM_TRUNCATE: ItemTruncate,
    events.ITEM_DELETE: ItemDelete,
    events.ITEM_RETRIEVE: ItemRetrieve,
    events.RESPONSE_CREATE: ResponseCreate,
    events.RESPONSE_CANCEL: ResponseCancel,
}
assert SHAPES.keys() == events.CLIENT_EVENTS


def validate(event: dict[str, Any]) -> _Event:
    """Check one client event (already known to be an object with a known type) against
    its GA shape; raises ClientEventRejected naming the first wrong field."""
    event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
    shape = SHAPES[event["type"]]
    try:
        parsed = shape.model_validate(event)
    except ValidationError as invalid:
        raise _rejection(event, invalid, event_id) from None
    for problem in _content_problems(parsed):
        raise ClientEventRejected(problem[1], "invalid_value", event_id=event_id, param=problem[0])
    return parsed


def _content_problems(parsed: _Event) -> list[tuple[str, str]]:
    """Content parts the message's role cannot carry (a user cannot send output_audio)."""
    messages: list[tuple[str, MessageItem]] = []
    if isinstance(parsed, ItemCreate) and isinstance(parsed.item, MessageItem):
        messages.append(("item", parsed.item))
    elif isinstance(parsed, ResponseCreate) and parsed.response and parsed.response.input:
        messages.extend(
            (f"response.input[{index}]", item)
            for index, item in enumerate(parsed.response.input)
            if isinstance(item, MessageItem)
        )
    problems = []
    for where, message in messages:
        allowed = CONTENT_BY_ROLE[message.role]
        for index, part in enumerate(message.content):
            if part.type not in allowed:
                problems.append(
                    (
                        f"{where}.content[{index}].type",
                        f"A {message.role} message cannot carry {part.type!r} content "
                        f"(allowed: {', '.join(sorted(allowed))}).",
                    )
                )
    return problems


def _rejection(
    event: dict[str, Any], invalid: ValidationError, event_id: str | None
) -> ClientEventRejected:
    error = invalid.errors(include_url=False)[0]
    param = _param(event, error["loc"])
    if error["type"] == "extra_forbidden":
        return ClientEventRejected(
            f"Unknown parameter: '{param}'.", "unknown_parameter", event_id=event_id, param=param
        )
    if error["type"] == "missing":
        return ClientEventRejected(
            f"Missing required parameter: '{param}'.",
            "missing_required_parameter",
            event_id=event_id,
            param=param,
        )
    reason = _PLAIN_REASONS.get(error["type"], error["msg"])
    return ClientEventRejected(
        f"Invalid value for '{param}': {reason}.",
        "invalid_value",
        event_id=event_id,
        param=param,
    )


# pydantic's wording names its own classes; a client wants the JSON type.
_PLAIN_REASONS = {
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
    "dict_type": "expected an object",
    "list_type": "expected an array",
}


def _param(event: Any, loc: tuple[int | str, ...]) -> str:
    """The JSON path of an error's location, without pydantic's union tags."""
    path = ""
    current = event
    for position, part in enumerate(loc):
        if isinstance(part, int) and isinstance(current, list) and part < len(current):
            path += f"[{part}]"
            current = current[part]
        elif (
            isinstance(part, str)
            and isinstance(current, dict)
            and (
                part in current or position == len(loc) - 1  # a missing key is named too
            )
        ):
            path += f".{part}" if path else part
            current = current.get(part)
        # anything else is a union tag ("server_vad", "str", "literal[...]"): not in the JSON
    return path
