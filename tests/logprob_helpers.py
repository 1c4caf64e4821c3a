"""Checks on logprob entries that hold for any tokenizer."""

from __future__ import annotations

from collections.abc import Iterable


def spelled(byte_runs: Iterable[list[int] | None]) -> str:
    """The text a run of logprob entries spells, from their ``bytes``.

    A byte-level tokenizer may split one UTF-8 character (an emoji, say) over two tokens;
    each token's ``token`` string then shows U+FFFD, so only the bytes add up to the text.
    The bytes are decoded as the server decodes its output: when ``max_tokens`` cuts a
    character in half, the text ends in U+FFFD, and so does this.
    """
    return b"".join(bytes(run or []) for run in byte_runs).decode("utf-8", errors="replace")
