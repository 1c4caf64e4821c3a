"""Transcriptions and translations: an uploaded file in, text in OpenAI's formats out.

The file is decoded lazily in pieces of at most ``chunk_seconds`` (model option, default
600 s), each cut at a quiet point; each piece goes through the engine in turn and its
segment times are shifted by the piece's offset. Language detected on the first piece is
kept for the rest, and the end of the text so far is the prompt of the next piece, as
Whisper itself conditions each window on the previous one.

Decoding runs in worker threads and the model on its own thread: the event loop only
moves results. The first piece is decoded before any response starts, so an undecodable
file is a 400, never a broken stream.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import IO

from openai.types.audio import (
    Transcription,
    TranscriptionSegment,
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    TranscriptionVerbose,
    TranscriptionWord,
    Translation,
    TranslationVerbose,
)
from openai.types.audio.transcription import UsageDuration
from openai.types.audio.transcription_text_done_event import Usage, UsageInputTokenDetails
from openai.types.audio.transcription_verbose import Usage as VerboseUsage

from oasis.audio.decode import AudioChunk, AudioReader, InvalidAudioError
from oasis.engines.base import (
    DetectedLanguage,
    SpeechToTextEngine,
    TranscribedSegment,
    TranscriptionOptions,
)
from oasis.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedError
from oasis.services.audio.languages import language_name
from oasis.services.audio.subtitles import to_srt, to_vtt
from oasis.services.models import ModelManager

Event = DetectedLanguage | TranscribedSegment

MAX_FILE_BYTES = 25 * 1024 * 1024
DEFAULT_CHUNK_SECONDS = 600.0
MIN_AUDIO_SECONDS = 0.1
# Whisper's encoder sees 1500 positions per 30 s window: 50 audio tokens a second.
AUDIO_TOKENS_PER_SECOND = 50
# How much of the text so far conditions the next piece (Whisper keeps ~224 tokens).
_CARRY_CHARS = 600


@dataclass(frozen=True)
class Upload:
    """The uploaded file: a seekable binary file and its size in bytes (if known)."""

    file: IO[bytes]
    size: int | None = None
    filename: str | None = None


@dataclass(frozen=True)
class Segment:
    """A transcribed segment in file time, numbered across pieces."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: tuple[int, ...]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: tuple[TranscriptionWord, ...] = ()


@dataclass
class Transcript:
    """The whole result of one request."""

    task: str
    language: str = ""
    duration: float = 0.0
    prompt_tokens: int = 0
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(segment_deltas(self.segments))

    @property
    def output_tokens(self) -> int:
        return sum(len(s.tokens) for s in self.segments)


def segment_deltas(segments: list[Segment]) -> list[str]:
    """Each segment's contribution to the text: joined, they are exactly the text."""
    out: list[str] = []
    for seg in segments:
        piece = seg.text.rstrip()
        if not out or not "".join(out):
            piece = piece.lstrip()
        out.append(piece)
    return out


@dataclass
class _Run:
    """One prepared request: the engine, the open file and its first decoded piece."""

    engine: SpeechToTextEngine
    reader: AudioReader
    pieces: Iterator[AudioChunk]  # advanced in worker threads
    first: AudioChunk
    options: TranscriptionOptions
    chunk_seconds: float
    transcript: Transcript
    # The first piece's engine job, queued while preparing so that a full queue is a 503
    # even for a stream.
    first_events: AsyncIterator[Event] | None = None


def _next_piece(pieces: Iterator[AudioChunk]) -> AudioChunk | None:
    return next(pieces, None)


class TranscriptionService:
    """Runs speech-to-text requests against the models the manager serves."""

    def __init__(self, models: ModelManager, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.models = models
        self.max_file_bytes = max_file_bytes

    async def _prepare(self, model: str, upload: Upload, options: TranscriptionOptions) -> _Run:
        if upload.size is not None and upload.size > self.max_file_bytes:
            raise PayloadTooLargeError(
                f"The file is {upload.size} bytes; the limit is {self.max_file_bytes} bytes "
                f"({self.max_file_bytes // (1024 * 1024)} MB).",
                param="file",
            )
        resolved, engine = await self.models.get(
            model,
            "speech-to-text",
            SpeechToTextEngine,  # type: ignore[type-abstract]
        )
        if options.language is not None and options.language not in engine.languages:
            raise InvalidRequestError(
                f"Invalid language '{options.language}'. Language parameter must be "
                "specified in ISO-639-1 format.",
                param="language",
                code="invalid_value",
            )
        chunk_seconds = float(resolved.spec.options.get("chunk_seconds", DEFAULT_CHUNK_SECONDS))
        reader = await asyncio.to_thread(AudioReader, upload.file, engine.sample_rate)
        try:
            pieces = reader.chunks(chunk_seconds)
            first = await asyncio.to_thread(_next_piece, pieces)
            if first is None or (
                len(first.samples) < MIN_AUDIO_SECONDS * engine.sample_rate
                and reader.decoded_seconds < MIN_AUDIO_SECONDS
            ):
                raise InvalidAudioError(
                    f"Audio file is too short. Minimum audio length is {MIN_AUDIO_SECONDS} "
                    "seconds.",
                    code="audio_too_short",
                )
        except BaseException:
            reader.close()
            raise
        transcript = Transcript(task=options.task)
        if options.prompt:
            transcript.prompt_tokens = engine.count_tokens(options.prompt)
        run = _Run(engine, reader, pieces, first, options, chunk_seconds, transcript)
        if len(first.samples) >= MIN_AUDIO_SECONDS * engine.sample_rate:
            try:
                run.first_events = engine.transcribe(first.samples, options)
            except BaseException:
                reader.close()
                raise
        return run

    async def _segments(self, run: _Run) -> AsyncIterator[Segment]:
        """Every segment of the file, in order; fills ``run.transcript`` as it goes."""
        transcript = run.transcript
        rate = run.engine.sample_rate
        options = run.options
        piece: AudioChunk | None = run.first
        events, run.first_events = run.first_events, None
        try:
            while piece is not None:
                if len(piece.samples) >= MIN_AUDIO_SECONDS * rate:
                    if events is None:
                        events = run.engine.transcribe(piece.samples, options)
                    async for segment in self._piece(run, piece, events):
                        transcript.segments.append(segment)
                        yield segment
                    # Later pieces keep the language and continue from the text so far.
                    carry = transcript.text[-_CARRY_CHARS:].strip() or options.prompt
                    options = replace(options, language=transcript.language, prompt=carry)
                    events = None
                transcript.duration = run.reader.decoded_seconds
                piece = await asyncio.to_thread(_next_piece, run.pieces)
            transcript.duration = run.reader.decoded_seconds
        finally:
            if events is not None:
                await events.aclose()  # type: ignore[attr-defined]
            run.reader.close()

    async def _piece(
        self, run: _Run, piece: AudioChunk, events: AsyncIterator[Event]
    ) -> AsyncIterator[Segment]:
        transcript = run.transcript
        try:
            async for event in events:
                if isinstance(event, DetectedLanguage):
                    transcript.language = transcript.language or event.language
                    continue
                yield _shift(event, piece.offset, len(transcript.segments))
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    async def create(self, model: str, upload: Upload, options: TranscriptionOptions) -> Transcript:
        """Transcribe (or translate) the whole file."""
        run = await self._prepare(model, upload, options)
        async for _ in self._segments(run):
            pass
        return run.transcript

    async def stream(
        self, model: str, upload: Upload, options: TranscriptionOptions
    ) -> AsyncIterator[TranscriptionTextDeltaEvent | TranscriptionTextDoneEvent]:
        """Prepare now (errors are still statuses), then stream deltas and a done event."""
        run = await self._prepare(model, upload, options)
        return self._stream_events(run)

    async def _stream_events(
        self, run: _Run
    ) -> AsyncIterator[TranscriptionTextDeltaEvent | TranscriptionTextDoneEvent]:
        sent = ""
        async for segment in self._segments(run):
            delta = segment.text.rstrip()
            if not sent:
                delta = delta.lstrip()
            if not delta:
                continue
            sent += delta
            yield TranscriptionTextDeltaEvent(type="transcript.text.delta", delta=delta)
        transcript = run.transcript
        audio_tokens = math.ceil(transcript.duration * AUDIO_TOKENS_PER_SECOND)
        input_tokens = audio_tokens + transcript.prompt_tokens
        yield TranscriptionTextDoneEvent(
            type="transcript.text.done",
            text=sent,
            usage=Usage(
                type="tokens",
                input_tokens=input_tokens,
                output_tokens=transcript.output_tokens,
                total_tokens=input_tokens + transcript.output_tokens,
                input_token_details=UsageInputTokenDetails(
                    audio_tokens=audio_tokens, text_tokens=transcript.prompt_tokens
                ),
            ),
        )


def _shift(segment: TranscribedSegment, offset: float, index: int) -> Segment:
    """A piece's segment in file time (``seek`` is in Whisper's 10 ms frames)."""
    return Segment(
        id=index,
        seek=segment.seek + round(offset * 100),
        start=round(segment.start + offset, 3),
        end=round(segment.end + offset, 3),
        text=segment.text,
        tokens=segment.tokens,
        temperature=segment.temperature,
        avg_logprob=segment.avg_logprob,
        compression_ratio=segment.compression_ratio,
        no_speech_prob=segment.no_speech_prob,
        words=tuple(
            TranscriptionWord(
                word=w.word.strip(), start=round(w.start + offset, 3), end=round(w.end + offset, 3)
            )
            for w in segment.words
        ),
    )


def _segments_out(transcript: Transcript) -> list[TranscriptionSegment]:
    return [
        TranscriptionSegment(
            id=s.id,
            seek=s.seek,
            start=s.start,
            end=s.end,
            text=s.text,
            tokens=list(s.tokens),
            temperature=s.temperature,
            avg_logprob=s.avg_logprob,
            compression_ratio=s.compression_ratio,
            no_speech_prob=s.no_speech_prob,
        )
        for s in transcript.segments
    ]


def check_response_format(response_format: str) -> None:
    """Refuse, before any work, the formats no local model can produce."""
    if response_format == "diarized_json":
        raise UnsupportedError(
            "response_format 'diarized_json' needs a diarization model, which this server "
            "does not have.",
            param="response_format",
        )


def render(
    transcript: Transcript, response_format: str, granularities: Sequence[str] | None = None
) -> Transcription | TranscriptionVerbose | Translation | TranslationVerbose | str:
    """The response body for ``response_format``: an ``openai`` type, or plain text."""
    text = transcript.text
    translate = transcript.task == "translate"
    if response_format == "text":
        return text + "\n"
    if response_format == "srt":
        return to_srt(transcript.segments)
    if response_format == "vtt":
        return to_vtt(transcript.segments)
    if response_format == "verbose_json":
        wanted = set(granularities or ["segment"])
        if translate:
            return TranslationVerbose(
                language="english",
                duration=transcript.duration,
                text=text,
                segments=_segments_out(transcript),
            )
        verbose = TranscriptionVerbose(
            language=language_name(transcript.language),
            duration=transcript.duration,
            text=text,
            usage=VerboseUsage(type="duration", seconds=transcript.duration),
        )
        if "segment" in wanted:
            verbose.segments = _segments_out(transcript)
        if "word" in wanted:
            verbose.words = [w for s in transcript.segments for w in s.words]
        return verbose
    check_response_format(response_format)
    if translate:
        return Translation(text=text)
    return Transcription(
        text=text, usage=UsageDuration(type="duration", seconds=transcript.duration)
    )
