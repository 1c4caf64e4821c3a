"""Engine-neutral value types: how to sample, what a sampled token carries.

Both sides of the engine boundary use these: the request side builds
:class:`SamplingParams` and reads :class:`GeneratedToken`; an engine does the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OutputConstraint:
    """Constrained decoding: only tokens that keep the output inside ``grammar`` are sampled.

    ``grammar`` is an llguidance grammar (``LLMatcher.grammar_from_lark`` / ``_json_schema``
    output). With ``trigger`` set the constraint is lazy: text is free until the output
    contains ``trigger``; the grammar then governs what follows it, and when it completes
    the text is free again (or generation ends, with ``end_after_match``). Without a
    trigger it governs the whole output and generation ends when it completes.
    """

    grammar: str
    trigger: str | None = None
    end_after_match: bool = False
    # More lazy (trigger, grammar) pairs, for models that open a call in several ways;
    # whichever trigger appears first governs until its grammar completes.
    alternates: tuple[tuple[str, str], ...] = ()


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
    # None: the prompt is not scored. 0..20: before generating, emit one entry per prompt
    # token (``prompt_token=True``) with its logprob given the tokens before it (the
    # first has none) and that many alternatives. The whole prompt is evaluated afresh.
    prompt_logprobs: int | None = None
    # An output constraint (see :class:`OutputConstraint`), or None for free text.
    constraint: OutputConstraint | None = None
    # The request's ``prompt_cache_key``: requests that share one share a long prefix, so
    # an engine with several caches keeps them together (a hint; it changes no output).
    cache_key: str | None = None


@dataclass(frozen=True)
class TokenLogprob:
    token_id: int
    piece: bytes
    logprob: float


@dataclass(frozen=True)
class GeneratedToken:
    """One sampled token. ``piece`` is its raw bytes (may split a UTF-8 character).

    The first token of a generation carries ``cached_prompt_tokens``: how many prompt
    tokens the engine took from its cache instead of evaluating them (reported to clients
    as ``cached_tokens``). Later tokens leave it ``None``.
    """

    token_id: int
    piece: bytes
    end_of_generation: bool
    logprob: float | None = None
    top_logprobs: tuple[TokenLogprob, ...] = ()
    cached_prompt_tokens: int | None = None
    prompt_token: bool = False  # scores a prompt token (``prompt_logprobs``), not generated
