"""The small protocols every model runtime implements, one per capability.

An engine owns its runtime: it loads weights, runs model code off the event loop (a worker
thread or process), and translates the runtime's exceptions into :mod:`oasis.errors` at
its boundary. Nothing here knows about HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from oasis.models.specs import ModelSpec


@runtime_checkable
class Engine(Protocol):
    """What every engine has, whatever its capability."""

    spec: ModelSpec

    async def close(self) -> None:
        """Release the runtime (threads, memory). Called once at shutdown."""


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens, in OpenAI's terms. ``seed`` None means a fresh random seed."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    # None: no logprobs. 0..20: the sampled token's logprob plus that many alternatives.
    top_logprobs: int | None = None
    # A constraint in the engine's grammar language (GBNF for llama.cpp), or None.
    grammar: str | None = None


@dataclass(frozen=True)
class TokenLogprob:
    token_id: int
    piece: bytes
    logprob: float


@dataclass(frozen=True)
class GeneratedToken:
    """One sampled token. ``piece`` is its raw bytes (may split a UTF-8 character)."""

    token_id: int
    piece: bytes
    end_of_generation: bool
    logprob: float | None = None
    top_logprobs: tuple[TokenLogprob, ...] = ()


@runtime_checkable
class TextEngine(Engine, Protocol):
    """A causal language model: tokens in, sampled tokens out."""

    context_length: int
    chat_template: str | None
    bos_token: str
    eos_token: str

    def tokenize(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Tokens for ``text``; special-token markup (``<|im_start|>``) is recognised."""

    def detokenize(self, tokens: list[int]) -> str:
        """Text for ``tokens``, special tokens left out."""

    def vocab_size(self) -> int:
        """Number of token ids (valid ids are ``0..vocab_size() - 1``)."""

    def generate(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[GeneratedToken]:
        """Sample tokens after ``prompt`` until end-of-generation or ``max_tokens``.

        Closing the iterator early stops the runtime at its next token: that is how a
        stop sequence or a client that went away ends a generation.
        """
