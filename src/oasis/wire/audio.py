"""Audio requests: speech (JSON) and transcriptions / translations (multipart form).

Multipart scalars arrive as strings (``"0.2"``, ``"true"``) and pydantic's lax mode turns
them into numbers and booleans; arrays arrive as repeated ``name[]`` fields and objects as
``name[key]`` fields (as the SDK sends them), which ``wire.base.form_fields`` folds back together.

The speech SSE events have no type in the ``openai`` package (the SDK passes the body
through untouched), so they are defined here after the official schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from oasis.wire.base import WireModel

SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
TranscriptFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]
TranslationFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]

MAX_SPEECH_INPUT = 4096


class VoiceRef(WireModel):
    """A custom voice by id (``{"id": "voice_…"}``)."""

    id: str


class SpeechRequest(WireModel):
    """``POST /v1/audio/speech``. A null field means the field was left out."""

    model: str
    input: str = Field(max_length=MAX_SPEECH_INPUT)
    voice: str | VoiceRef
    instructions: str | None = Field(default=None, max_length=MAX_SPEECH_INPUT)
    response_format: SpeechFormat | None = None
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    stream_format: Literal["sse", "audio"] | None = None

    @property
    def voice_name(self) -> str:
        return self.voice if isinstance(self.voice, str) else self.voice.id


class TranslationRequest(WireModel):
    """The scalar fields of ``POST /v1/audio/translations`` (the file travels apart)."""

    model: str
    prompt: str | None = None
    response_format: TranslationFormat | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)


class TranscriptionRequest(WireModel):
    """The scalar fields of ``POST /v1/audio/transcriptions`` (the file travels apart)."""

    model: str
    language: str | None = None
    prompt: str | None = None
    response_format: TranscriptFormat | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    timestamp_granularities: list[Literal["word", "segment"]] | None = None
    stream: bool | None = None
    include: list[str] | None = None
    # Accepted for compatibility; faster-whisper segments the audio itself.
    chunking_strategy: Any = None

    @field_validator("timestamp_granularities", "include", mode="before")
    @classmethod
    def _one_is_a_list(cls, value: Any) -> Any:
        # A client that sends `timestamp_granularities=word` (no brackets) means a list.
        return [value] if isinstance(value, str) else value


class SpeechUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class SpeechAudioDelta(BaseModel):
    """``speech.audio.delta``: a base64 chunk of audio in the requested format."""

    type: Literal["speech.audio.delta"] = "speech.audio.delta"
    audio: str


class SpeechAudioDone(BaseModel):
    """``speech.audio.done``: the last event of a speech stream."""

    type: Literal["speech.audio.done"] = "speech.audio.done"
    usage: SpeechUsage
