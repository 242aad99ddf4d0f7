"""Realtime API (GA) event type names: the one list Koe's broker and providers use."""

from __future__ import annotations

# Client -> server
SESSION_UPDATE = "session.update"
INPUT_AUDIO_APPEND = "input_audio_buffer.append"
INPUT_AUDIO_COMMIT = "input_audio_buffer.commit"
INPUT_AUDIO_CLEAR = "input_audio_buffer.clear"
OUTPUT_AUDIO_CLEAR = "output_audio_buffer.clear"
ITEM_CREATE = "conversation.item.create"
ITEM_TRUNCATE = "conversation.item.truncate"
ITEM_DELETE = "conversation.item.delete"
ITEM_RETRIEVE = "conversation.item.retrieve"
RESPONSE_CREATE = "response.create"
RESPONSE_CANCEL = "response.cancel"

CLIENT_EVENTS = frozenset(
    {
        SESSION_UPDATE,
        INPUT_AUDIO_APPEND,
        INPUT_AUDIO_COMMIT,
        INPUT_AUDIO_CLEAR,
        OUTPUT_AUDIO_CLEAR,
        ITEM_CREATE,
        ITEM_TRUNCATE,
        ITEM_DELETE,
        ITEM_RETRIEVE,
        RESPONSE_CREATE,
        RESPONSE_CANCEL,
    }
)

# Server -> client
ERROR = "error"
SESSION_CREATED = "session.created"
SESSION_UPDATED = "session.updated"
SPEECH_STARTED = "input_audio_buffer.speech_started"
SPEECH_STOPPED = "input_audio_buffer.speech_stopped"
INPUT_AUDIO_COMMITTED = "input_audio_buffer.committed"
INPUT_TRANSCRIPTION_COMPLETED = "conversation.item.input_audio_transcription.completed"
ITEM_ADDED = "conversation.item.added"
ITEM_DONE = "conversation.item.done"
ITEM_TRUNCATED = "conversation.item.truncated"
RESPONSE_CREATED = "response.created"
RESPONSE_DONE = "response.done"
OUTPUT_ITEM_ADDED = "response.output_item.added"
OUTPUT_ITEM_DONE = "response.output_item.done"
OUTPUT_AUDIO_DELTA = "response.output_audio.delta"
OUTPUT_AUDIO_DONE = "response.output_audio.done"
OUTPUT_AUDIO_TRANSCRIPT_DELTA = "response.output_audio_transcript.delta"
OUTPUT_AUDIO_TRANSCRIPT_DONE = "response.output_audio_transcript.done"
OUTPUT_TEXT_DONE = "response.output_text.done"
FUNCTION_CALL_ARGUMENTS_DONE = "response.function_call_arguments.done"
