"""Koe's offline voice as a pipeline of stages, usable outside Koe: no Django, no Koe app.

    caller audio --> VAD (vad) --> speech to text (stt) --> response engine --> text to
    speech (tts) --> agent audio

- ``vad``: silero-vad's speech probabilities (``VoiceActivity``, a ``SpeechDetector``)
  and the turn detector that turns them into speech started / stopped.
- ``stt``: Whisper tiny.en (``transcribe``, a ``Transcribe``).
- ``engine``: the ``ResponseEngine`` interface; ``scripted`` (intents, slots, ``when``
  for dates and times, ``words``) and ``llm`` (an OpenAI-compatible chat server).
- ``tts``: Piper or espeak-ng (``Voice``).
- ``runtime``: the models, loaded once per process from installed packages, and the
  bounded CPU pool they run in; ``audio`` and ``text``: conversions and sentence splitting;
  ``g711``: the phone's μ-law and A-law.

Each stage is tested alone (tests/local) and replaceable: Koe's local provider
(``agents.realtime.providers.local``) speaks the Realtime protocol over them and takes
each stage as an argument.
"""
