"""Text to speech: OpenAI voices mapped to local ones, audio encoded as it is synthesised.

Every OpenAI voice name is accepted. A model's ``voices`` option maps names to the engine's
local voices (``{"alloy": "heart", ...}``); a name it does not map is used as a local voice
if the engine has one by that name, and any other OpenAI voice gets the engine's default.

Speeds the engine does natively are passed to it; the rest of OpenAI's 0.25–4.0 range is
made with a pitch-preserving tempo filter on top. ``instructions`` is accepted and has no
effect: the packaged engine has no style control.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

import numpy as np
from pydantic import TypeAdapter, ValidationError

from oasis.audio.encode import OUTPUT_FORMATS, AudioEncoder, TempoStretcher
from oasis.caller import UsageEntry, record_usage
from oasis.engines.base import (
    RelayedAnswer,
    SynthesizedAudio,
    TextToSpeechEngine,
    TextToSpeechRelay,
)
from oasis.errors import EngineUnreachableError, InvalidRequestError, ModelUnavailableError
from oasis.services.audio.relayed import relay_fields
from oasis.services.models import ModelManager
from oasis.wire.audio import SpeechAudioDelta, SpeechAudioDone, SpeechRequest, SpeechUsage

OPENAI_VOICES = frozenset(
    {
        "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx",
        "nova", "sage", "shimmer", "verse", "marin", "cedar",
    }
)  # fmt: skip
_SPEECH_EVENT: TypeAdapter[SpeechAudioDelta | SpeechAudioDone] = TypeAdapter(
    SpeechAudioDelta | SpeechAudioDone
)
# Output tokens of a speech stream: audio frames of 12.5 ms (80 a second).
FRAMES_PER_SECOND = 80


@dataclass
class SpeechJob:
    """A validated speech request, ready to synthesise."""

    engine: TextToSpeechEngine
    text: str
    voice: str
    response_format: str
    model_speed: float
    tempo: float  # the part of the speed the tempo filter makes (1.0: none)
    input_tokens: int = 0
    samples_out: int = 0

    @property
    def media_type(self) -> str:
        return OUTPUT_FORMATS[self.response_format].media_type

    @property
    def usage(self) -> SpeechUsage:
        output = math.ceil(self.samples_out * FRAMES_PER_SECOND / self.engine.sample_rate)
        return SpeechUsage(
            input_tokens=self.input_tokens,
            output_tokens=output,
            total_tokens=self.input_tokens + output,
        )


def local_voice(name: str, mapping: dict[str, str], available: tuple[str, ...]) -> str:
    """The engine voice for the requested ``name`` (see the module docstring)."""
    if name in mapping:
        return mapping[name]
    if name in available:
        return name
    if name in OPENAI_VOICES:
        return available[0]
    choices = ", ".join(sorted(OPENAI_VOICES | set(available)))
    raise InvalidRequestError(
        f"Invalid value for 'voice': '{name}' is not a voice. Use one of: {choices}.",
        param="voice",
        code="invalid_value",
    )


class _Pipeline:
    """Tempo filter (if any) and encoder for one request; runs in worker threads."""

    def __init__(self, job: SpeechJob) -> None:
        rate = job.engine.sample_rate
        self.encoder = AudioEncoder(job.response_format, rate)
        self.stretcher = TempoStretcher(job.tempo, rate) if job.tempo != 1.0 else None
        self.job = job

    def feed(self, samples: np.ndarray) -> bytes:
        if self.stretcher is not None:
            samples = self.stretcher.process(samples)
        self.job.samples_out += len(samples)
        return self.encoder.encode(samples)

    def finish(self) -> bytes:
        data = b""
        if self.stretcher is not None:
            tail = self.stretcher.finish()
            self.job.samples_out += len(tail)
            data = self.encoder.encode(tail)
        return data + self.encoder.finish()


@dataclass
class RelayedSpeech:
    """A speech request sent to the model's server; its answer is on the way."""

    model_id: str
    answer: RelayedAnswer
    response_format: str
    characters: int

    @property
    def media_type(self) -> str:
        return OUTPUT_FORMATS[self.response_format].media_type


class SpeechService:
    """Runs speech requests against the text-to-speech models the manager serves."""

    def __init__(self, models: ModelManager) -> None:
        self.models = models

    async def prepare(self, request: SpeechRequest) -> SpeechJob | RelayedSpeech:
        """Validate ``request`` and load its model (or send it to the model's server);
        errors here are still HTTP statuses."""
        if not request.input.strip():
            raise InvalidRequestError(
                "Invalid value for 'input': it must contain text to speak.",
                param="input",
                code="invalid_value",
            )
        resolved, engine = await self.models.get_either(
            request.model,
            "text-to-speech",
            TextToSpeechEngine,  # type: ignore[type-abstract]
            TextToSpeechRelay,  # type: ignore[type-abstract]
        )
        mapping = {str(k): str(v) for k, v in resolved.spec.options.get("voices", {}).items()}
        if isinstance(engine, TextToSpeechRelay):
            # The server knows its voices and speeds; a name the operator mapped goes as
            # the server's own name for it.
            fields = relay_fields(request)
            if request.voice_name in mapping:
                fields["voice"] = mapping[request.voice_name]
            return RelayedSpeech(
                resolved.spec.id,
                await engine.speak(fields),
                request.response_format or "mp3",
                len(request.input),
            )
        voice = local_voice(request.voice_name, mapping, engine.voices)
        if voice not in engine.voices:
            raise ModelUnavailableError(
                f"Voice `{request.voice_name}` is configured to use the local voice `{voice}` "
                f"of `{resolved.spec.id}`, which is not installed. Available: "
                f"{', '.join(engine.voices)}."
            )
        speed = 1.0 if request.speed is None else request.speed
        low, high = engine.speed_range
        model_speed = min(max(speed, low), high)
        tempo = speed / model_speed
        return SpeechJob(
            engine=engine,
            text=request.input,
            voice=voice,
            response_format=request.response_format or "mp3",
            model_speed=model_speed,
            tempo=1.0 if abs(tempo - 1.0) < 1e-6 else tempo,
        )

    def audio(self, job: SpeechJob | RelayedSpeech) -> AsyncGenerator[bytes, None]:
        """The encoded audio, a piece per sentence as soon as each is synthesised.

        Synthesis is queued now, so a full queue is a 503 before the response starts.
        """
        if isinstance(job, RelayedSpeech):
            return self._relayed_audio(job)
        pieces = job.engine.synthesize(job.text, voice=job.voice, speed=job.model_speed)
        return self._encoded(job, pieces)

    async def _encoded(
        self, job: SpeechJob, pieces: AsyncIterator[SynthesizedAudio]
    ) -> AsyncGenerator[bytes, None]:
        try:
            pipeline = await asyncio.to_thread(_Pipeline, job)
            async for piece in pieces:
                data = await asyncio.to_thread(self._feed, pipeline, piece)
                if data:
                    yield data
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]
        tail = await asyncio.to_thread(pipeline.finish)
        if tail:
            yield tail
        usage = job.usage
        await record_usage(
            UsageEntry(
                "audio_speeches",
                job.engine.spec.id,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                characters=len(job.text),
            )
        )

    @staticmethod
    def _feed(pipeline: _Pipeline, piece: SynthesizedAudio) -> bytes:
        pipeline.job.input_tokens += piece.input_tokens
        return pipeline.feed(piece.samples)

    def events(
        self, job: SpeechJob | RelayedSpeech
    ) -> AsyncIterator[SpeechAudioDelta | SpeechAudioDone]:
        """``stream_format: "sse"``: the same audio as base64 deltas, then usage."""
        if isinstance(job, RelayedSpeech):
            return self._relayed_events(job)
        return self._events(job, self.audio(job))

    async def _relayed_audio(self, job: RelayedSpeech) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in job.answer.chunks():
                yield chunk
        finally:
            await job.answer.aclose()
        await record_usage(UsageEntry("audio_speeches", job.model_id, characters=job.characters))

    async def _relayed_events(
        self, job: RelayedSpeech
    ) -> AsyncIterator[SpeechAudioDelta | SpeechAudioDone]:
        try:
            async for payload in job.answer.events():
                try:
                    event = _SPEECH_EVENT.validate_python(payload)
                except ValidationError as exc:
                    raise EngineUnreachableError(
                        f"The engine of `{job.model_id}` sent a speech event that does not "
                        f"read as one: {exc.errors()[0]['msg']}."
                    ) from exc
                if isinstance(event, SpeechAudioDone):
                    await record_usage(
                        UsageEntry(
                            "audio_speeches",
                            job.model_id,
                            input_tokens=event.usage.input_tokens,
                            output_tokens=event.usage.output_tokens,
                            characters=job.characters,
                        )
                    )
                yield event
        finally:
            await job.answer.aclose()

    async def _events(
        self, job: SpeechJob, audio: AsyncGenerator[bytes, None]
    ) -> AsyncIterator[SpeechAudioDelta | SpeechAudioDone]:
        async with aclosing(audio) as chunks:
            async for data in chunks:
                yield SpeechAudioDelta(
                    type="speech.audio.delta", audio=base64.b64encode(data).decode("ascii")
                )
        yield SpeechAudioDone(type="speech.audio.done", usage=job.usage)
