"""The audio capability: speech synthesis, transcription and translation."""

from oasis.services.audio.speech import SpeechService
from oasis.services.audio.transcription import TranscriptionService

__all__ = ["SpeechService", "TranscriptionService"]
