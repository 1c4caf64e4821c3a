"""A request's sampling fields as the engine's ``SamplingParams``, one set per choice."""

from __future__ import annotations

from dataclasses import replace

from oasis.core.types import SamplingParams
from oasis.errors import InvalidRequestError
from oasis.wire.sampling import SamplingRequest


def checked_logit_bias(vocab: int | None, bias: dict[str, float] | None) -> dict[int, float]:
    """``logit_bias`` with token ids checked against the model's vocabulary (of ``vocab``
    ids; None when the backend does not know it, and the ids go through unchecked)."""
    checked: dict[int, float] = {}
    for key, value in (bias or {}).items():
        token = int(key)
        if vocab is not None and not 0 <= token < vocab:
            raise InvalidRequestError(
                f"Invalid key in 'logit_bias': {key} is not a token id of this model "
                f"(0..{vocab - 1}).",
                param="logit_bias",
            )
        checked[token] = value
    return checked


def choice_params(
    request: SamplingRequest,
    vocab: int | None,
    max_tokens: int,
    top_logprobs: int | None,
    count: int,
) -> list[SamplingParams]:
    """``count`` parameter sets; choice ``i`` gets ``seed + i`` so choices differ but repeat."""
    base = SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        logit_bias=checked_logit_bias(vocab, request.logit_bias),
        top_logprobs=top_logprobs,
        cache_key=request.prompt_cache_key,
    )
    return [
        replace(base, seed=None if request.seed is None else request.seed + i) for i in range(count)
    ]
