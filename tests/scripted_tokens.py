"""A token engine that answers from a script, for formats no packaged model speaks.

No gpt-oss weights can be installed here, so the harmony tests play gpt-oss with this
engine: it is a real :class:`~oasis.engines.base.TextEngine` under the real local chat
backend, installed as a third-party engine is (an ``oasis.engines`` entry point, see
:func:`install_plugin`), and only the sampling is replaced by a script.

The model's path is a JSON file: ``chat_template`` (the template the backend renders
with) and ``replies``, ``{trigger: reply}``. Each request answers the reply whose trigger
occurs latest in the rendered prompt (so a tool's output in a follow-up request picks the
next reply), token by token: a ``<|…|>`` marker is one token (a special token, as in
gpt-oss's vocabulary), other text one byte a token, and the end of the reply is the
end-of-generation token.

A request with a grammar (``SamplingParams.constraint``) is decoded under it with the
core's own :class:`~oasis.core.constraints.ConstraintState`, the way the llama.cpp engine
does: where the script's next token is allowed it comes next; where it is not, the script
skips ahead to its first token the grammar allows, and where none is, the engine picks
from what the grammar allows (its forced bytes first, then what closes a JSON value). So a
script that would write invalid output shows what the grammar makes of it, as a model's
sampling masked by the grammar would.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from oasis.config import Settings
from oasis.core.constraints import ConstraintState
from oasis.core.types import GeneratedToken, SamplingParams
from oasis.engines.local_chat import LocalChatBackend
from oasis.models.specs import LocalSource, ModelSpec

_MARKER = re.compile(r"<\|[a-z_]+\|>")
_EOG = 256  # after the 256 bytes: the end-of-generation token, then the markers
# Where the script offers nothing the grammar allows: what to prefer (closing a string,
# an object, an array; then a digit), before any other allowed token.
_PREFERRED = b'"}]0'


class ScriptedEngine:
    """Bytes as tokens (markers as one token each); sampling by script."""

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
        self._guidance: Any = None

    def tokenize(self, text: str, *, add_bos: bool = False) -> list[int]:
        out: list[int] = []
        at = 0
        for match in _MARKER.finditer(text):
            out.extend(text[at : match.start()].encode())
            if match[0] in self._markers:
                out.append(_EOG + 1 + self._markers.index(match[0]))
            at = match.end()
        out.extend(text[at:].encode())
        return out

    def _bytes(self, token: int) -> bytes:
        if token < _EOG:
            return bytes([token])
        return b"" if token == _EOG else self._markers[token - _EOG - 1].encode()

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(bytes([t]) for t in tokens if t < _EOG).decode(errors="replace")

    def vocab_size(self) -> int:
        return _EOG + 1 + len(self._markers)

    def _guidance_tokenizer(self) -> Any:
        """The llguidance view of this vocabulary: markers and the end are special."""
        if self._guidance is None:
            from llguidance import LLTokenizer, TokenizerWrapper

            engine = self

            class Vocabulary:
                eos_token_id = _EOG
                bos_token_id = None
                tokens = [bytes([b]) for b in range(256)] + [
                    b"\xff" + m.encode() for m in ["<|eog|>", *engine._markers]
                ]
                special_token_ids = list(range(_EOG, engine.vocab_size()))

                def __call__(self, text: bytes) -> list[int]:
                    return list(text)

            self._guidance = LLTokenizer(TokenizerWrapper(Vocabulary()), slices=[])
        return self._guidance

    def _reply(self, prompt: list[int]) -> str:
        text = b"".join(self._bytes(t) for t in prompt).decode(errors="replace")
        found = [(text.rfind(trigger), reply) for trigger, reply in self._replies.items()]
        at, reply = max(found)
        if at < 0:
            raise AssertionError(f"no scripted reply for this prompt:\n{text}")
        return reply

    def generate(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[GeneratedToken]:
        state = None
        if params.constraint is not None:
            tokenizer = self._guidance_tokenizer()
            state = ConstraintState(tokenizer, params.constraint, self.vocab_size())
        return self._play(self.tokenize(self._reply(prompt)), params.max_tokens, state)

    def generate_many(
        self, runs: Sequence[tuple[list[int], SamplingParams]]
    ) -> list[AsyncIterator[GeneratedToken]]:
        return [self.generate(prompt, params) for prompt, params in runs]

    async def _play(
        self, script: list[int], budget: int, state: ConstraintState | None
    ) -> AsyncIterator[GeneratedToken]:
        script = [*script, _EOG]
        for _ in range(budget):
            token, script = _next(script, state)
            if token == _EOG:
                break
            piece = self._bytes(token)
            yield GeneratedToken(token, piece, False)
            if state is not None and state.advance(token, piece):
                break  # the constrained output is complete: nothing may follow it
        yield GeneratedToken(_EOG, b"", True)

    async def close(self) -> None:
        return None


def _next(script: list[int], state: ConstraintState | None) -> tuple[int, list[int]]:
    """The next token, and what remains of the script after it (see the module docstring)."""
    if state is None:
        return script[0], script[1:]
    for at, token in enumerate(script):
        if state.allows(token):
            return token, script[at + 1 :]
    allowed = state.allowed_tokens()
    for byte in _PREFERRED:
        if byte in allowed:
            return byte, script
    printable = [t for t in allowed if 0x21 <= t < 0x7F]  # no whitespace, if it can be helped
    return (printable or allowed)[0], script


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
