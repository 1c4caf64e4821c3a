"""Turn sampled token bytes into text deltas, honouring stop sequences.

Text that might be the start of a stop sequence is held back until it is clear either way,
so a stop sequence never leaks into the output, even split across tokens. UTF-8 characters
split across tokens are joined before they are released.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from oasis.core.text import held_back
from oasis.core.types import GeneratedToken


@dataclass
class DecodedChunk:
    text: str
    tokens: list[GeneratedToken] = field(default_factory=list)


class StopDecoder:
    """Feed tokens in order; get back the text that is safe to show."""

    def __init__(self, stop: list[str] | None = None) -> None:
        self._stop = [s for s in (stop or []) if s]
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""  # decoded text not yet released
        # Held tokens with the length of text each one added to ``_held``.
        self._held_tokens: list[tuple[GeneratedToken, int]] = []
        self.stopped = False
        self.text = ""  # everything released so far

    def feed(self, token: GeneratedToken) -> DecodedChunk:
        """Add one token; returns the newly released text (possibly empty)."""
        if self.stopped:
            return DecodedChunk("")
        text = self._utf8.decode(token.piece)
        self._held += text
        self._held_tokens.append((token, len(text)))
        for stop in self._stop:
            at = self._held.find(stop)
            if at >= 0:
                self.stopped = True
                return self._release(self._held[:at], keep="", stopped=True)
        keep = held_back(self._held, self._stop)
        if keep:
            return self._release(self._held[:-keep], keep=self._held[-keep:])
        return self._release(self._held, keep="")

    def flush(self) -> DecodedChunk:
        """Release whatever is held (at the end of generation)."""
        if self.stopped:
            return DecodedChunk("")
        self._held += self._utf8.decode(b"", final=True)
        return self._release(self._held, keep="")

    def _release(self, text: str, keep: str, stopped: bool = False) -> DecodedChunk:
        """Release ``text`` and the tokens that produced it; hold ``keep`` back."""
        released: list[GeneratedToken] = []
        budget = len(text)
        while self._held_tokens:
            token, length = self._held_tokens[0]
            if length > budget:
                if stopped and budget > 0:
                    released.append(token)  # it began before the stop sequence
                elif budget > 0:
                    # Part of this token's text is out; it is released with the rest.
                    self._held_tokens[0] = (token, length - budget)
                break
            self._held_tokens.pop(0)
            budget -= length
            released.append(token)
        if stopped:
            self._held_tokens = []
        self._held = keep
        self.text += text
        return DecodedChunk(text, released)
