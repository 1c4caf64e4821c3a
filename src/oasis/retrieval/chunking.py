"""Cut text into overlapping chunks, counted in the embedding model's tokens.

The text is split into words (each with the whitespace after it); the tokenizer counts
every word's tokens in one batched call, and windows of whole words are taken greedily.
With the word-level tokenizers of embedding models (WordPiece, byte-level BPE), a
window's token count is the sum of its words' counts. A word longer than a whole chunk
(a base64 blob, a URL) is cut into pieces first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# The API's bounds and its ``auto`` strategy.
MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096
AUTO_CHUNK_TOKENS = 800
AUTO_OVERLAP_TOKENS = 400

_WORD = re.compile(r"\S+\s*")

CountTokens = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class Chunk:
    text: str
    tokens: int


def chunk_text(text: str, count: CountTokens, max_tokens: int, overlap: int) -> list[Chunk]:
    """Chunks of at most ``max_tokens`` tokens; each repeats up to ``overlap`` tokens of
    the end of the one before it. ``count`` gives the token count of each string."""
    words = _WORD.findall(text)
    if not words:
        return []
    lead = text[: len(text) - len(text.lstrip())]
    words[0] = lead + words[0]
    counts = count(words)
    words, counts = _split_long(words, counts, count, max_tokens)
    chunks: list[Chunk] = []
    start = 0
    while start < len(words):
        end, total = start, 0
        while end < len(words) and (end == start or total + counts[end] <= max_tokens):
            total += counts[end]
            end += 1
        chunks.append(Chunk("".join(words[start:end]).strip(), total))
        if end == len(words):
            break
        # The next chunk starts as far back as the overlap allows, always moving forward.
        back, kept = end, 0
        while back - 1 > start and kept + counts[back - 1] <= overlap:
            back -= 1
            kept += counts[back]
        start = back
    return [c for c in chunks if c.text]


def _split_long(
    words: list[str], counts: list[int], count: CountTokens, max_tokens: int
) -> tuple[list[str], list[int]]:
    if all(n <= max_tokens for n in counts):
        return words, counts
    out_words: list[str] = []
    out_counts: list[int] = []
    for word, n in zip(words, counts, strict=True):
        if n <= max_tokens:
            out_words.append(word)
            out_counts.append(n)
            continue
        # Pieces of about half a chunk each (in characters), then counted for real.
        size = max(1, len(word) * max_tokens // (2 * n))
        pieces = [word[i : i + size] for i in range(0, len(word), size)]
        out_words += pieces
        out_counts += [min(c, max_tokens) for c in count(pieces)]
    return out_words, out_counts
