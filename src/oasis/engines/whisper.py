"""The faster-whisper speech-to-text engine (CTranslate2 Whisper models).

One ``WhisperModel`` per model, driven by one worker thread. faster-whisper decodes lazily:
segments are produced as its 30-second windows are decoded, and each one crosses back to
the event loop as soon as it exists, which is what streaming transcription sends.

Options (``[[models]] options`` in the config): ``compute_type`` [int8], ``threads``
[settings.threads], ``beam_size`` [1], ``best_of`` [1].
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from oasis.config import Settings
from oasis.engines.base import (
    DetectedLanguage,
    TranscribedSegment,
    TranscribedWord,
    TranscriptionOptions,
)
from oasis.engines.worker import ModelWorker
from oasis.errors import InvalidRequestError, ModelUnavailableError
from oasis.models.assets import resolve_source
from oasis.models.specs import ModelSpec

# Temperatures tried in turn when a window's decoding fails the quality checks (OpenAI's
# "temperature 0 means automatic fallback", as in Whisper's reference decoder).
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

Event = DetectedLanguage | TranscribedSegment


class FasterWhisperEngine:
    """A :class:`~oasis.engines.base.SpeechToTextEngine` over one faster-whisper model."""

    sample_rate = 16_000

    def __init__(self, spec: ModelSpec, path: Path, settings: Settings) -> None:
        from faster_whisper import WhisperModel

        self.spec = spec
        options = spec.options
        try:
            self._model = WhisperModel(
                str(path),
                device="cpu",
                compute_type=str(options.get("compute_type", "int8")),
                cpu_threads=int(options.get("threads", settings.threads)),
                num_workers=1,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelUnavailableError(
                f"faster-whisper could not load `{spec.id}` from {path}: {exc}"
            ) from exc
        self.languages = frozenset(self._model.supported_languages)
        self.multilingual = bool(self._model.model.is_multilingual)
        self._beam_size = int(options.get("beam_size", 1))
        self._best_of = int(options.get("best_of", 1))
        self._worker: ModelWorker[Event] = ModelWorker(f"whisper-{spec.id}", settings.max_queue)

    def count_tokens(self, text: str) -> int:
        """Text tokens as Whisper's tokenizer counts them."""
        return len(self._model.hf_tokenizer.encode(text, add_special_tokens=False).ids)

    def transcribe(self, audio: Any, options: TranscriptionOptions) -> AsyncIterator[Event]:
        """See :class:`~oasis.engines.base.SpeechToTextEngine`."""
        if options.task == "translate" and not self.multilingual:
            raise InvalidRequestError(
                f"The model `{self.spec.id}` is English-only and cannot translate.",
                param="model",
                code="unsupported_value",
            )

        def job(emit: Callable[[Event], None], cancelled: threading.Event) -> None:
            self._run(audio, options, emit, cancelled)

        return self._worker.stream(job)

    def _run(
        self,
        audio: Any,
        options: TranscriptionOptions,
        emit: Callable[[Event], None],
        cancelled: threading.Event,
    ) -> None:
        temperature: float | tuple[float, ...] = (
            FALLBACK_TEMPERATURES if options.temperature <= 0 else options.temperature
        )
        try:
            segments, info = self._model.transcribe(
                audio,
                language=options.language,
                task=options.task,
                initial_prompt=options.prompt or None,
                temperature=temperature,
                beam_size=self._beam_size,
                best_of=self._best_of,
                word_timestamps=options.word_timestamps,
                condition_on_previous_text=True,
                vad_filter=False,
            )
        except ValueError as exc:  # e.g. a language code the tokenizer does not know
            raise InvalidRequestError(str(exc), param="language", code="invalid_value") from exc
        emit(DetectedLanguage(str(info.language), float(info.language_probability)))
        for seg in segments:  # decoding happens as this generator is advanced
            if cancelled.is_set():
                return
            emit(
                TranscribedSegment(
                    seek=int(seg.seek),
                    start=float(seg.start),
                    end=float(seg.end),
                    text=seg.text,
                    tokens=tuple(int(t) for t in seg.tokens),
                    temperature=float(seg.temperature or 0.0),
                    avg_logprob=float(seg.avg_logprob),
                    compression_ratio=float(seg.compression_ratio),
                    no_speech_prob=float(seg.no_speech_prob),
                    words=tuple(
                        TranscribedWord(w.word, float(w.start), float(w.end), float(w.probability))
                        for w in seg.words or ()
                    ),
                )
            )

    @property
    def load(self) -> tuple[int, int]:
        """(requests waiting, sequences running) on this model's worker."""
        return self._worker.load

    async def close(self) -> None:
        await self._worker.close()


def create_engine(spec: ModelSpec, settings: Settings) -> FasterWhisperEngine:
    return FasterWhisperEngine(spec, resolve_source(spec, settings.data_dir), settings)
