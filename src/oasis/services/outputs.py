"""Pieces of OpenAI response bodies that Chat, Completions and Responses all build."""

from __future__ import annotations

from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionTokenLogprob
from openai.types.chat.chat_completion_token_logprob import TopLogprob
from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails

from oasis.core.types import GeneratedToken


def token_logprob(token: GeneratedToken) -> ChatCompletionTokenLogprob:
    """One sampled token's logprob entry, as OpenAI spells it."""
    return ChatCompletionTokenLogprob(
        token=token.piece.decode("utf-8", errors="replace"),
        logprob=token.logprob if token.logprob is not None else -9999.0,
        bytes=list(token.piece),
        top_logprobs=[
            TopLogprob(
                token=alt.piece.decode("utf-8", errors="replace"),
                logprob=alt.logprob,
                bytes=list(alt.piece),
            )
            for alt in token.top_logprobs
        ],
    )


def usage(
    prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0, cached_tokens: int = 0
) -> CompletionUsage:
    """``usage`` with every detail the SDK knows; ``cached_tokens`` is part of the prompt."""
    return CompletionUsage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached_tokens, audio_tokens=0),
        completion_tokens_details=CompletionTokensDetails(
            reasoning_tokens=reasoning_tokens,
            audio_tokens=0,
            accepted_prediction_tokens=0,
            rejected_prediction_tokens=0,
        ),
    )
