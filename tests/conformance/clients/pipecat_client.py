"""Conformance client: a Pipecat pipeline with OpenAIRealtimeLLMService, against Koe.

Pipecat builds its URL as ``<base_url>?model=<model>`` and sends only a bearer key, so a
query string of Koe's own (``consent=``) cannot ride along: the tenant's backend mints
an ephemeral key carrying the caller's consent (POST /v1/realtime/client_secrets, as
OpenAI's docs show for clients that should not hold the secret key), and the pipeline
uses it as its api_key. Pipecat treats every ``error`` event as fatal, which is why the
policy must reconcile its session.update rather than refuse it.

The pipeline is Pipecat's documented shape (context aggregators around the service),
with a recorder in place of a transport's output. Prints one JSON object: what it saw.
Usage: python pipecat_client.py <http_base> <agent_id> <secret_key> <speech.pcm>
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request

from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    FunctionCallsStartedFrame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMRunFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
from pipecat.workers.runner import WorkerRunner

base, agent_id, secret, speech_path = sys.argv[1:5]
speech = open(speech_path, "rb").read()  # noqa: SIM115  (a short file, read once)
seen: dict[str, list] = {"types": [], "errors": [], "transcripts": [], "statuses": [], "notes": []}


class Recorder(FrameProcessor):
    """Where a transport's output would be: notes each spoken response's words."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self.responses = asyncio.Queue[str]()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSTextFrame):
            self.words.append(frame.text)
        elif isinstance(frame, FunctionCallsStartedFrame):
            seen["types"].append("function_call")
        elif isinstance(frame, LLMFullResponseEndFrame):
            said = "".join(self.words)
            self.words.clear()
            seen["transcripts"].append(said)
            await self.responses.put(said)
        await self.push_frame(frame, direction)


async def next_response(recorder: Recorder, words: str) -> str:
    async with asyncio.timeout(60):
        while True:
            said = await recorder.responses.get()
            if words in said:
                return said


async def main() -> None:
    body = {"session": {"type": "realtime", "model": agent_id}, "consent": "transcript"}
    request = urllib.request.Request(
        f"{base}/v1/realtime/client_secrets",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as minted:
        ephemeral_key = json.load(minted)["value"]
    llm = OpenAIRealtimeLLMService(
        api_key=ephemeral_key,
        base_url=base.replace("http", "ws") + "/v1/realtime",
        settings=OpenAIRealtimeLLMService.Settings(model=agent_id),
    )
    context = LLMContext([{"role": "user", "content": "When are you open?"}])
    aggregators = LLMContextAggregatorPair(context)
    recorder = Recorder()
    # No assistant aggregator: it would add the greeting to the context, and Pipecat
    # sends a context of more than one message packed into one "previously saved
    # conversation" text, which the built-in voice does not parse into a question.
    pipeline = Pipeline([aggregators.user(), llm, recorder])
    worker = PipelineWorker(
        pipeline, params=PipelineParams(audio_in_sample_rate=24000), idle_timeout_secs=None
    )

    @worker.event_handler("on_pipeline_error")
    async def on_pipeline_error(worker: PipelineWorker, frame: ErrorFrame) -> None:
        seen["errors"].append(frame.error)

    running = asyncio.create_task(WorkerRunner(handle_sigint=False).run(worker))
    try:
        # The agent greets first. Pipecat drops a run asked for while a response it did
        # not ask for plays, so its documented "run on connect" waits for the greeting.
        await next_response(recorder, "")
        # The typed turn: the context's message, then a response.
        await worker.queue_frames([LLMRunFrame()])
        await next_response(recorder, "noon")
        # The spoken turn, as a transport's input would bring it (40 ms frames).
        for start in range(0, len(speech), 1920):
            chunk = speech[start : start + 1920]
            await worker.queue_frame(InputAudioRawFrame(chunk, sample_rate=24000, num_channels=1))
            await asyncio.sleep(0.002)
        await next_response(recorder, "booked")
        # The caller barges in while the confirmation still plays (it arrives faster than
        # it is heard): Pipecat truncates the item where playback stopped.
        await worker.queue_frame(InterruptionFrame())
        await asyncio.sleep(1)
        seen["notes"].append("interrupted")
    finally:
        await worker.cancel()
        await running
    seen["notes"].append("closed")
    print(json.dumps(seen))


asyncio.run(main())
