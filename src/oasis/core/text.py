"""Small text helpers the incremental parsers share."""

from __future__ import annotations

from collections.abc import Iterable


def held_back(text: str, markers: Iterable[str]) -> int:
    """How many trailing characters of ``text`` to hold back: the longest suffix that is
    a proper prefix of one of ``markers``, so a marker split across chunks is still seen."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best
