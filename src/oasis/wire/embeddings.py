"""Request body of ``POST /v1/embeddings``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, StrictInt

from oasis.errors import InvalidRequestError
from oasis.wire.base import WireModel

_SHAPES = (
    "a string, an array of strings, an array of integers (one token array) or an array of "
    "token arrays"
)


@dataclass(frozen=True)
class EmbeddingInputs:
    """``input`` in one of its two spellings: texts, or token arrays (never both)."""

    texts: list[str] | None = None
    token_arrays: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.texts if self.texts is not None else self.token_arrays or [])


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class EmbeddingRequest(WireModel):
    # ``Any`` so that the shape check below can name the exact item that is wrong.
    input: Any
    model: str
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: StrictInt | None = Field(default=None, ge=1)
    user: str | None = None

    def inputs(self) -> EmbeddingInputs:
        """``input`` as texts or token arrays; 400 naming ``input`` for any other shape."""
        value = self.input
        if isinstance(value, str):
            return EmbeddingInputs(texts=[value])
        if not isinstance(value, list):
            raise InvalidRequestError(
                f"Invalid type for 'input': expected {_SHAPES}.", param="input", code="invalid_type"
            )
        if not value:
            raise InvalidRequestError(
                "'input' must not be an empty array.", param="input", code="empty_array"
            )
        if all(isinstance(item, str) for item in value):
            return EmbeddingInputs(texts=list(value))
        if all(_is_token(item) for item in value):
            return EmbeddingInputs(token_arrays=[list(value)])
        if all(isinstance(item, list) for item in value):
            for i, item in enumerate(value):
                if not all(_is_token(token) for token in item):
                    raise InvalidRequestError(
                        f"Invalid type for 'input[{i}]': a token array holds only integers.",
                        param="input",
                        code="invalid_type",
                    )
            return EmbeddingInputs(token_arrays=[list(item) for item in value])
        raise InvalidRequestError(
            f"Invalid type for 'input': expected {_SHAPES}, not a mix of them.",
            param="input",
            code="invalid_type",
        )
