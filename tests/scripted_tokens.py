"""A token engine that answers from a script, for formats no packaged model speaks.

No gpt-oss weights can be installed here, so the harmony tests play gpt-oss with this
engine: it is a real :class:`~oasis.engines.base.TextEngine` under the real local chat
backend, installed as a third-party engine is (an ``oasis.engines`` entry point, see
:func:`install_plugin`), and only the sampling is replaced by a script.

The model's path is a JSON file: ``chat_template`` (the template the backend renders
with) and ``replies``, ``{trigger: reply}``. Each request answers the reply whose trigger
occurs latest in the rendered prompt (so a tool's output in a follow-up request picks the
next reply), token by token: a ``<|…|>`` marker is one token, other text one character a
token, and the end of the reply is the end-of-generation token.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from oasis.config import Settings
from oasis.core.types import GeneratedToken, SamplingParams
from oasis.engines.local_chat import LocalChatBackend
from oasis.models.specs import LocalSource, ModelSpec

_MARKER = re.compile(r"<\|[a-z_]+\|>")
_EOG = 0x110000  # one past the code points: the end-of-generation token


class ScriptedEngine:
    """Characters as tokens (markers as one token each); sampling by script."""

    bos_token = ""
    eos_token = "<|return|>"
    max_token_bytes = None

    def __init__(self, spec: ModelSpec, script: dict[str, Any]) -> None:
        self.spec = spec
        self.chat_template: str | None = script["chat_template"]
        self.context_length = 8192
        self._replies: dict[str, str] = script["replies"]
        self._markers = sorted(
            {m for reply in self._replies.values() for m in _MARKER.findall(reply)}
            | set(_MARKER.findall(self.chat_template or ""))
        )

    def _pieces(self, text: str) -> list[str]:
        out: list[str] = []
        at = 0
        for match in _MARKER.finditer(text):
            out.extend(text[at : match.start()])
            out.append(match[0])
            at = match.end()
        out.extend(text[at:])
        return out

    def _id(self, piece: str) -> int:
        if len(piece) == 1:
            return ord(piece)
        return _EOG + 1 + self._markers.index(piece)

    def _piece(self, token: int) -> str:
        return chr(token) if token < _EOG else self._markers[token - _EOG - 1]

    def tokenize(self, text: str, *, add_bos: bool = False) -> list[int]:
        return [self._id(p) for p in self._pieces(text) if len(p) == 1 or p in self._markers]

    def detokenize(self, tokens: list[int]) -> str:
        return "".join(self._piece(t) for t in tokens if t < _EOG)

    def vocab_size(self) -> int:
        return _EOG + 1 + len(self._markers)

    def _reply(self, prompt: list[int]) -> str:
        text = "".join(self._piece(t) for t in prompt if t != _EOG)
        found = [(text.rfind(trigger), reply) for trigger, reply in self._replies.items()]
        at, reply = max(found)
        if at < 0:
            raise AssertionError(f"no scripted reply for this prompt:\n{text}")
        return reply

    def generate(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[GeneratedToken]:
        return self._play(self._reply(prompt), params.max_tokens)

    def generate_many(
        self, runs: Sequence[tuple[list[int], SamplingParams]]
    ) -> list[AsyncIterator[GeneratedToken]]:
        return [self.generate(prompt, params) for prompt, params in runs]

    async def _play(self, reply: str, budget: int) -> AsyncIterator[GeneratedToken]:
        for piece in self._pieces(reply)[:budget]:
            yield GeneratedToken(self._id(piece), piece.encode(), False)
        yield GeneratedToken(_EOG, b"", True)

    async def close(self) -> None:
        return None


def create_engine(spec: ModelSpec, settings: Settings) -> LocalChatBackend:
    """The entry point's factory: the script is the model's ``path``."""
    assert isinstance(spec.source, LocalSource)
    script = json.loads(Path(spec.source.path).read_text())
    return LocalChatBackend(ScriptedEngine(spec, script))


def install_plugin(site: Path) -> Path:
    """Make ``site`` a directory that, on ``PYTHONPATH``, installs this engine as
    ``scripted-tokens`` through the ``oasis.engines`` entry-point group; returns ``site``."""
    dist = site / "oasis_scripted_tokens-0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: oasis-scripted-tokens\nVersion: 0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[oasis.engines]\nscripted-tokens = tests.scripted_tokens:create_engine\n"
    )
    return site
