"""Subtitle renderings of a transcript: SubRip (``srt``) and WebVTT (``vtt``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Cue(Protocol):
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def text(self) -> str: ...


def timestamp(seconds: float, separator: str) -> str:
    """``HH:MM:SS<separator>mmm`` for ``seconds`` (``,`` for SRT, ``.`` for VTT)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    """Numbered cues separated by blank lines."""
    blocks = [
        f"{i}\n{timestamp(c.start, ',')} --> {timestamp(c.end, ',')}\n{c.text.strip()}\n"
        for i, c in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(cues: Sequence[Cue]) -> str:
    """A ``WEBVTT`` header, then one cue per segment."""
    blocks = [
        f"{timestamp(c.start, '.')} --> {timestamp(c.end, '.')}\n{c.text.strip()}\n" for c in cues
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)
