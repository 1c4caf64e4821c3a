"""Token ids in OpenAI's encodings, for requests that name a model by its OpenAI name.

A client that addresses ``text-embedding-3-small`` or ``gpt-3.5-turbo-instruct`` and sends
token ids (LangChain's ``OpenAIEmbeddings`` does by default) means OpenAI's tokens:
cl100k_base or o200k_base ids, not the ids of whichever local model the name reaches. Such
ids are decoded to text here, and that text goes on as if it had been sent. A model's own
id keeps its own token ids.

The ranks come with the ``bpe-openai`` package (embedded in its wheel), so this works
offline; ``tiktoken`` would download them on first use.
"""

from __future__ import annotations

import functools
import warnings
from fnmatch import fnmatchcase
from typing import Any

from oasis.errors import InvalidRequestError
from oasis.models.registry import ResolvedModel

# OpenAI model names (glob patterns, first match wins) → the encoding their tokens use.
ENCODINGS: tuple[tuple[str, str], ...] = (
    ("text-embedding-3-*", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
    ("gpt-3.5-turbo*", "cl100k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-4-*", "cl100k_base"),
    ("davinci-002", "cl100k_base"),
    ("babbage-002", "cl100k_base"),
    ("gpt-4o*", "o200k_base"),
    ("gpt-4.*", "o200k_base"),
    ("gpt-5*", "o200k_base"),
    ("gpt-*", "o200k_base"),  # newer names use the newer encoding
    ("chatgpt-*", "o200k_base"),
    ("o[1-9]", "o200k_base"),
    ("o[1-9]-*", "o200k_base"),
)


def openai_encoding(model: ResolvedModel) -> str | None:
    """The encoding of the OpenAI name the client used, or None when it used the model's
    own id or a name that is not OpenAI's (its token ids are then the model's own)."""
    if model.name == model.spec.id:
        return None
    return next((enc for glob, enc in ENCODINGS if fnmatchcase(model.name, glob)), None)


@functools.cache
def _encoding(name: str) -> Any:
    with warnings.catch_warnings():
        # bpe-openai 0.1.4 reads its ranks with importlib.resources' deprecated API.
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai  # the ranks load once, in about a second

        return bpe_openai.get_encoding(name)


def decode_tokens(tokens: list[int], encoding: str, model: str, param: str) -> str:
    """``tokens`` (ids of ``encoding``) as text; 400 naming ``param`` for an id that is not
    one of its tokens. A token that splits a character decodes to U+FFFD, as tiktoken's."""
    enc = _encoding(encoding)
    bad = next((t for t in tokens if not 0 <= t < enc.n_vocab), None)
    if bad is None:
        try:
            return bytes(enc.decode_bytes(tokens)).decode("utf-8", errors="replace")
        except KeyError:  # an id inside the range that names no token (there are a few)
            bad = next(t for t in tokens if not _defined(enc, t))
    raise InvalidRequestError(
        f"'{param}' holds the token {bad}, which is not a token of {encoding} "
        f"(the encoding of `{model}`).",
        param=param.split("[", 1)[0],
        code="invalid_value",
    )


def _defined(enc: Any, token: int) -> bool:
    try:
        enc.decode_single_token_bytes(token)
    except KeyError:
        return False
    return True
