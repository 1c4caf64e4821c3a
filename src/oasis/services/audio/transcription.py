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
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import IO, TypeVar

from openai.types.audio import (
    Transcription,
    TranscriptionSegment,
    TranscriptionStreamEvent,
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
from pydantic import BaseModel

from oasis.audio.decode import AudioChunk, AudioReader, InvalidAudioError
from oasis.caller import UsageEntry, record_usage
from oasis.engines.base import (
    AudioFile,
    DetectedLanguage,
    SpeechToTextEngine,
    SpeechToTextRelay,
    TranscribedSegment,
    TranscriptionOptions,
)
from oasis.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedError
from oasis.services.audio.languages import language_name
from oasis.services.audio.relayed import read_upload, relayed_events, relayed_transcript
from oasis.services.audio.subtitles import to_srt, to_vtt
from oasis.services.models import ModelManager
from oasis.wire.audio import TranscriptionRequest, TranslationRequest

log = logging.getLogger(__name__)

Event = DetectedLanguage | TranscribedSegment
SpeechToTextRequest = TranscriptionRequest | TranslationRequest
T = TypeVar("T")

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
    """An engine's segment placed in the file: numbered across pieces, and its times
    shifted by the start (``offset``, seconds) of the piece it was decoded from."""

    id: int
    offset: float
    decoded: TranscribedSegment

    @property
    def seek(self) -> int:
        return self.decoded.seek + round(self.offset * 100)  # Whisper's 10 ms frames

    @property
    def start(self) -> float:
        return round(self.decoded.start + self.offset, 3)

    @property
    def end(self) -> float:
        return round(self.decoded.end + self.offset, 3)

    @property
    def text(self) -> str:
        return self.decoded.text

    @property
    def tokens(self) -> tuple[int, ...]:
        return self.decoded.tokens

    @property
    def words(self) -> list[TranscriptionWord]:
        return [
            TranscriptionWord(
                word=w.word.strip(),
                start=round(w.start + self.offset, 3),
                end=round(w.end + self.offset, 3),
            )
            for w in self.decoded.words
        ]


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
    decoder: _Decoder
    reader: AudioReader  # read only for how much it has decoded
    first: AudioChunk
    options: TranscriptionOptions
    chunk_seconds: float
    transcript: Transcript
    # The first piece's engine job, queued while preparing so that a full queue is a 503
    # even for a stream.
    first_events: AsyncIterator[Event] | None = None


class _Decoder:
    """One upload's :class:`AudioReader`, driven by a thread of its own.

    ffmpeg must not close a container while another thread is decoding from it (that can
    crash the process), and a request can be cancelled (client gone) while a decode is in
    flight. So every step, opening and closing included, runs on this one thread in the
    order asked: :meth:`close` queues the close behind any decode still running and never
    blocks the event loop. Awaiting what it returns waits for that close, so the caller
    may then close the uploaded file itself (a cancelled request must, before its form's
    temporary file goes away under a decode still reading it).
    """

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="audio-decode")
        self._reader: AudioReader | None = None
        self._pieces: Iterator[AudioChunk] | None = None
        self._closed: asyncio.Future[None] | None = None

    async def _call(self, fn: Callable[[], T]) -> T:
        # Cancelling the await leaves a running call running; the close queued after it
        # then waits for it on the decode thread.
        return await asyncio.wrap_future(self._thread.submit(fn))

    async def open(self, file: IO[bytes], sample_rate: int, chunk_seconds: float) -> AudioReader:
        def open_reader() -> AudioReader:
            self._reader = AudioReader(file, sample_rate)
            self._pieces = self._reader.chunks(chunk_seconds)
            return self._reader

        return await self._call(open_reader)

    async def next_piece(self) -> AudioChunk | None:
        """The next piece of audio, or None at the end."""
        pieces = self._pieces
        assert pieces is not None
        return await self._call(lambda: next(pieces, None))

    def close(self) -> asyncio.Future[None]:
        """Close the reader after any decode in flight; returns at once, with a future
        that is done once the decode thread has let go of the file."""
        if self._closed is not None:
            return self._closed

        def close_reader() -> None:
            if self._reader is not None:
                try:
                    self._reader.close()
                except Exception:  # the request is over either way; keep its own error
                    log.exception("closing an audio reader failed")

        self._closed = asyncio.wrap_future(self._thread.submit(close_reader))
        self._thread.shutdown(wait=False)
        return self._closed


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
        decoder = _Decoder()
        try:
            reader = await decoder.open(upload.file, engine.sample_rate, chunk_seconds)
            first = await decoder.next_piece()
            if first is None or (
                len(first.samples) < MIN_AUDIO_SECONDS * engine.sample_rate
                and reader.decoded_seconds < MIN_AUDIO_SECONDS
            ):
                raise InvalidAudioError(
                    f"Audio file is too short. Minimum audio length is {MIN_AUDIO_SECONDS} "
                    "seconds.",
                    code="audio_too_short",
                )
            transcript = Transcript(task=options.task)
            if options.prompt:
                transcript.prompt_tokens = engine.count_tokens(options.prompt)
            run = _Run(engine, decoder, reader, first, options, chunk_seconds, transcript)
            if len(first.samples) >= MIN_AUDIO_SECONDS * engine.sample_rate:
                run.first_events = engine.transcribe(first.samples, options)
        except BaseException:
            await decoder.close()
            raise
        return run

    async def _segments(self, run: _Run) -> AsyncGenerator[Segment, None]:
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
                piece = await run.decoder.next_piece()
            transcript.duration = run.reader.decoded_seconds
            await record_usage(
                UsageEntry(
                    "audio_transcriptions",
                    run.engine.spec.id,
                    input_tokens=math.ceil(transcript.duration * AUDIO_TOKENS_PER_SECOND)
                    + transcript.prompt_tokens,
                    output_tokens=transcript.output_tokens,
                    seconds=transcript.duration,
                )
            )
        finally:
            closed = run.decoder.close()  # queued first, behind any decode still running
            if events is not None:
                await events.aclose()  # type: ignore[attr-defined]
            await closed  # the upload's file may be closed once this is done

    async def _piece(
        self, run: _Run, piece: AudioChunk, events: AsyncIterator[Event]
    ) -> AsyncIterator[Segment]:
        transcript = run.transcript
        try:
            async for event in events:
                if isinstance(event, DetectedLanguage):
                    transcript.language = transcript.language or event.language
                    continue
                yield Segment(len(transcript.segments), piece.offset, event)
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    async def _relay(self, model: str) -> SpeechToTextRelay | None:
        """The model's relay when another server runs it, else None (it runs here)."""
        _, engine = await self.models.get_either(
            model,
            "speech-to-text",
            SpeechToTextEngine,  # type: ignore[type-abstract]
            SpeechToTextRelay,  # type: ignore[type-abstract]
        )
        return engine if isinstance(engine, SpeechToTextRelay) else None

    async def _audio_file(self, upload: Upload) -> AudioFile:
        return await asyncio.to_thread(
            read_upload, upload.file, upload.size, upload.filename, self.max_file_bytes
        )

    async def answer(self, request: SpeechToTextRequest, upload: Upload) -> BaseModel | str:
        """The response body for ``request``: an ``openai`` type, or plain text."""
        relay = await self._relay(request.model)
        if relay is not None:
            return await relayed_transcript(relay, request, await self._audio_file(upload))
        transcript = await self.create(request, upload)
        granularities = (
            request.timestamp_granularities if isinstance(request, TranscriptionRequest) else None
        )
        return render(transcript, request.response_format or "json", granularities)

    async def create(self, request: SpeechToTextRequest, upload: Upload) -> Transcript:
        """Transcribe (or translate) the whole file."""
        run = await self._prepare(request.model, upload, engine_options(request))
        # aclosing: a cancelled request releases the file and the engine job right away.
        async with aclosing(self._segments(run)) as segments:
            async for _ in segments:
                pass
        return run.transcript

    async def stream(
        self, request: TranscriptionRequest, upload: Upload
    ) -> AsyncIterator[TranscriptionStreamEvent]:
        """Prepare now (errors are still statuses), then stream deltas and a done event."""
        relay = await self._relay(request.model)
        if relay is not None:
            return await relayed_events(relay, request, await self._audio_file(upload))
        run = await self._prepare(request.model, upload, engine_options(request))
        return self._stream_events(run)

    async def _stream_events(
        self, run: _Run
    ) -> AsyncIterator[TranscriptionTextDeltaEvent | TranscriptionTextDoneEvent]:
        sent = ""
        # aclosing: a client gone mid-stream releases the file and the engine job now.
        async with aclosing(self._segments(run)) as segments:
            async for segment in segments:
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


def engine_options(request: SpeechToTextRequest) -> TranscriptionOptions:
    """What the engine is asked to do for ``request``; refuses unsupported formats first."""
    if isinstance(request, TranslationRequest):
        return TranscriptionOptions(
            task="translate", prompt=request.prompt or None, temperature=request.temperature or 0.0
        )
    response_format = request.response_format or "json"
    check_response_format(response_format)
    return TranscriptionOptions(
        task="transcribe",
        language=request.language or None,
        prompt=request.prompt or None,
        temperature=request.temperature or 0.0,
        word_timestamps=response_format == "verbose_json"
        and "word" in (request.timestamp_granularities or ()),
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
            temperature=s.decoded.temperature,
            avg_logprob=s.decoded.avg_logprob,
            compression_ratio=s.decoded.compression_ratio,
            no_speech_prob=s.decoded.no_speech_prob,
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
