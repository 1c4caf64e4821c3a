"""Split a reasoning model's output into its thinking and its answer.

Models such as Qwen3 and DeepSeek-R1 write ``<think> … </think>`` before the answer
(some templates open the block in the prompt already). Only a block at the very start
counts; a tag later in the answer is ordinary text.
"""

from __future__ import annotations

from oasis.core.text import held_back

OPEN = "<think>"
CLOSE = "</think>"


class ReasoningSplitter:
    """Feed output text in order; get ``(is_reasoning, text)`` pieces back."""

    def __init__(self, *, inside: bool = False) -> None:
        self.inside = inside
        self._opening = not inside  # still at the start, where OPEN may come
        self._held = ""
        self._answer_started = False
        self.reasoning = ""
        self.answer = ""

    def feed(self, text: str) -> list[tuple[bool, str]]:
        """Pieces of ``text`` that are final; a possible partial tag is held back."""
        buffer = self._held + text
        self._held = ""
        pieces: list[tuple[bool, str]] = []
        while buffer:
            if self._opening:
                stripped = buffer.lstrip()
                if stripped.startswith(OPEN):
                    buffer = stripped[len(OPEN) :]
                    self._opening, self.inside = False, True
                    continue
                if stripped and not OPEN.startswith(stripped):
                    self._opening = False  # an answer with no thinking
                    continue
                self._held = buffer  # whitespace or the start of OPEN: wait
                break
            if self.inside:
                at = buffer.find(CLOSE)
                if at >= 0:
                    pieces.append((True, buffer[:at]))
                    buffer = buffer[at + len(CLOSE) :].lstrip()
                    self.inside = False
                    continue
                keep = held_back(buffer, (CLOSE,))
                pieces.append((True, buffer[: len(buffer) - keep]))
                self._held = buffer[len(buffer) - keep :]
                break
            if not self._answer_started:
                buffer = buffer.lstrip()
                if not buffer:
                    break
                self._answer_started = True
            pieces.append((False, buffer))
            break
        return self._record([(kind, piece) for kind, piece in pieces if piece])

    def _record(self, pieces: list[tuple[bool, str]]) -> list[tuple[bool, str]]:
        for is_reasoning, piece in pieces:
            if is_reasoning:
                self.reasoning += piece
            else:
                self.answer += piece
        return pieces

    def flush(self) -> list[tuple[bool, str]]:
        """Whatever is held at the end of generation."""
        held, self._held = self._held, ""
        if not held or (self._opening and not held.strip()):
            return []
        if not self.inside and not self._answer_started:
            held = held.lstrip()
        return self._record([(self.inside, held)] if held else [])
