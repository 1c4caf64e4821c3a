"""Counting a remote embeddings model's tokens here, where its tokenizer is not.

Vector stores cut files into chunks counted in the embeddings model's tokens, and cut a
chunk to the model's input limit before it is embedded. A remote model's tokenizer lives
on its server, so the model's ``tokenizer`` option names one to count with here:

* a path to a ``tokenizer.json`` (the Hugging Face ``tokenizers`` format), or to a model
  directory holding one: the remote model's own tokenizer, so counts are exact;
* ``"all-minilm-l6-v2"``: the packaged all-MiniLM-L6-v2 tokenizer.

Without the option, the packaged all-MiniLM-L6-v2 tokenizer (BERT WordPiece, 30,522
words) counts when its package is installed: an approximation, close for English text and
usually above what the large vocabularies of newer models count, so chunks come out no
longer than asked. Without that package (or the ``tokenizers`` library), a text counts
as its UTF-8 bytes divided by 3, rounded up: English runs about 4 bytes per token.

The servers' own ``/tokenize`` routes are not used: vLLM's and llama-server's
``/tokenize`` and llama-cpp-python's ``/extras/tokenize`` take one string per request and
give no offsets, so counting a file word by word would cost a request per word.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

from oasis.engines.base import TextTokens
from oasis.errors import ModelUnavailableError
from oasis.models.assets import locate_part
from oasis.models.catalog import MINILM
from oasis.models.specs import PackagedAsset

BYTES_PER_TOKEN = 3


class HuggingFaceTokens:
    """A ``tokenizers`` tokenizer, loaded from its ``tokenizer.json``."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self.name = str(path)
        self._tokenizer = Tokenizer.from_file(str(path))
        # A tokenizer.json may pad or truncate every text (the packaged one pads to 128).
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        # One tokenizer is not meant to encode from two threads at once.
        self._lock = threading.Lock()

    def _encode(self, texts: list[str]) -> list[Any]:
        if not texts:
            return []
        with self._lock:
            return list(self._tokenizer.encode_batch(texts, add_special_tokens=False))

    def count(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._encode(texts)]

    def cut(self, text: str, limit: int) -> str:
        encoded = self._encode([text])[0]
        if len(encoded.ids) <= limit:
            return text
        if limit <= 0:
            return ""
        return text[: encoded.offsets[limit - 1][1]]


class ByteTokens:
    """UTF-8 bytes divided by :data:`BYTES_PER_TOKEN`: when no tokenizer is at hand."""

    name = f"UTF-8 bytes / {BYTES_PER_TOKEN}"

    def count(self, texts: list[str]) -> list[int]:
        return [math.ceil(len(t.encode("utf-8")) / BYTES_PER_TOKEN) for t in texts]

    def cut(self, text: str, limit: int) -> str:
        raw = text.encode("utf-8")[: max(limit, 0) * BYTES_PER_TOKEN]
        return raw.decode("utf-8", errors="ignore")  # a character cut in two is dropped


def _packaged_tokenizer_json() -> Path:
    assert isinstance(MINILM.source, PackagedAsset) and MINILM.source.directory is not None
    return locate_part(MINILM.source.directory) / "tokenizer.json"


def _tokenizer_json(named: str) -> Path:
    if named == MINILM.id:
        return _packaged_tokenizer_json()
    path = Path(named).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise ModelUnavailableError(
            f"The `tokenizer` option names {named}, which is neither a tokenizer.json, a "
            f"directory holding one, nor `{MINILM.id}`."
        )
    return path


def text_tokens(model_id: str, named: str | None) -> TextTokens:
    """What counts ``model_id``'s tokens: the ``tokenizer`` option's, else the fallback
    described above."""
    if named is not None:
        try:
            return HuggingFaceTokens(_tokenizer_json(str(named)))
        except ImportError as exc:
            raise ModelUnavailableError(
                f"The `tokenizer` option of `{model_id}` needs the `tokenizers` library "
                "(pip install 'oasis[embeddings]')."
            ) from exc
        except Exception as exc:  # a file the library cannot read
            if isinstance(exc, ModelUnavailableError):
                raise
            raise ModelUnavailableError(
                f"The `tokenizer` option of `{model_id}` names {named}, which cannot be "
                f"loaded: {exc}"
            ) from exc
    try:
        return HuggingFaceTokens(_packaged_tokenizer_json())
    except (ImportError, ModelUnavailableError, OSError):
        return ByteTokens()
