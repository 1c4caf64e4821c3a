"""The hibari text-to-speech engine (ONNX, 24 kHz, English).

hibari splits text into sentences and synthesises them one at a time; each sentence
crosses back to the event loop as soon as it is ready, so speech streams. The model file
of the spec is the default voice; other hibari voices are used only when their files are
already in hibari's cache (``HIBARI_HOME``): this engine never downloads anything.

Options: ``threads`` [1] (onnxruntime threads; hibari runs >100x real time on one).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from oasis.config import Settings
from oasis.engines.base import SynthesizedAudio
from oasis.engines.worker import ModelWorker
from oasis.errors import InvalidRequestError, ModelUnavailableError
from oasis.models.assets import resolve_source
from oasis.models.specs import ModelSpec


def _cached_voices() -> dict[str, str]:
    """hibari voices whose model files are on this machine: name -> path."""
    from hibari.voices import VOICES, voice_path

    found: dict[str, str] = {}
    for name in VOICES:
        try:
            found[name] = voice_path(name, download_missing=False)
        except (FileNotFoundError, ValueError):
            continue
    return found


class HibariEngine:
    """A :class:`~oasis.engines.base.TextToSpeechEngine` over hibari voices."""

    speed_range = (0.5, 2.0)

    def __init__(self, spec: ModelSpec, path: Path, settings: Settings) -> None:
        from hibari import Hibari
        from hibari.voices import DEFAULT

        self.spec = spec
        self._hibari_cls = Hibari
        self._threads = int(spec.options.get("threads", 1))
        default = str(spec.options.get("default_voice", DEFAULT))
        self._paths = _cached_voices()
        self._paths[default] = str(path)  # the spec's file is the default voice
        try:
            first = Hibari(voice=default, model=str(path), threads=self._threads)
        except Exception as exc:  # onnxruntime raises its own error types
            raise ModelUnavailableError(
                f"hibari could not load `{spec.id}` from {path}: {exc}"
            ) from exc
        self._loaded: dict[str, Any] = {default: first}
        self.voices = (default, *sorted(v for v in self._paths if v != default))
        self.sample_rate = int(first.sample_rate)
        self._lock = threading.Lock()
        self._worker: ModelWorker[SynthesizedAudio] = ModelWorker(
            f"hibari-{spec.id}", settings.max_queue
        )

    def _voice(self, name: str) -> Any:
        with self._lock:
            tts = self._loaded.get(name)
            if tts is None:
                tts = self._hibari_cls(voice=name, model=self._paths[name], threads=self._threads)
                self._loaded[name] = tts
            return tts

    def synthesize(self, text: str, *, voice: str, speed: float) -> AsyncIterator[SynthesizedAudio]:
        """See :class:`~oasis.engines.base.TextToSpeechEngine`."""
        if voice not in self._paths:
            raise InvalidRequestError(
                f"Voice `{voice}` is not available; available: {', '.join(self.voices)}.",
                param="voice",
                code="invalid_value",
            )
        low, high = self.speed_range
        speed = min(max(speed, low), high)

        def job(emit: Callable[[SynthesizedAudio], None], cancelled: threading.Event) -> None:
            tts = self._voice(voice)
            # Phonemise sentence by sentence (not the whole text first): the first
            # sentence's audio is then ready after one sentence's work.
            for sentence in tts.split_sentences(text):
                for phonemes in tts.phonemize(sentence):
                    if cancelled.is_set():
                        return
                    ids = tts.ids(phonemes)
                    samples = tts.from_ids(ids, speed)
                    emit(SynthesizedAudio(samples=samples, input_tokens=len(ids)))

        return self._worker.stream(job)

    @property
    def load(self) -> tuple[int, int]:
        """(requests waiting, sequences running) on this model's worker."""
        return self._worker.load

    async def close(self) -> None:
        await self._worker.close()


def create_engine(spec: ModelSpec, settings: Settings) -> HibariEngine:
    return HibariEngine(spec, resolve_source(spec, settings.data_dir), settings)
