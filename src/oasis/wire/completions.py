"""Request body of the legacy ``POST /v1/completions`` (text in, text out, no template)."""

from __future__ import annotations

from typing import cast

from pydantic import Field

from oasis.wire.sampling import SamplingRequest

# A prompt: one text, several texts, one token array or several token arrays.
Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(SamplingRequest):
    prompt: Prompt | None  # required, but null (like "") means "start a new document"
    max_tokens: int | None = Field(default=None, ge=0)  # OpenAI's default is 16
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1, le=20)

    @property
    def prompts(self) -> list[str | list[int]]:
        """Every prompt of the request, in order."""
        prompt = self.prompt
        if prompt is None:
            return [""]
        if isinstance(prompt, str):
            return [prompt]
        if prompt and isinstance(prompt[0], int):
            return [prompt]
        return cast(list[str | list[int]], prompt)
