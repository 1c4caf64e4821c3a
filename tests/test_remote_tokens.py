"""Counting a remote embeddings model's tokens here: the ``tokenizer`` option and the
fallbacks (see ``oasis.engines.remote.tokens``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oasis.engines.remote.tokens import ByteTokens, HuggingFaceTokens, text_tokens
from oasis.errors import ModelUnavailableError

LONG = "Mount Kilimanjaro is a dormant volcano in Tanzania. " * 20


def test_the_packaged_tokenizer_counts_and_cuts_at_token_edges() -> None:
    tokens = text_tokens("remote", "all-minilm-l6-v2")
    assert isinstance(tokens, HuggingFaceTokens)
    assert tokens.count(["hello world", "Kilimanjaro", ""]) == [2, 5, 0]
    cut = tokens.cut(LONG, 7)
    assert LONG.startswith(cut) and tokens.count([cut]) == [7]
    assert cut == "Mount Kilimanjaro is"  # kilimanjaro is four word pieces
    assert tokens.cut("short", 7) == "short"


def test_a_tokenizer_json_or_its_directory_can_be_named(tmp_path: Path) -> None:
    packaged = text_tokens("remote", "all-minilm-l6-v2")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes(Path(packaged.name).read_bytes())
    for named in (str(folder), str(folder / "tokenizer.json")):
        assert text_tokens("remote", named).count([LONG]) == packaged.count([LONG])


def test_a_wrong_tokenizer_fails_the_model_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="tokenizer"):
        text_tokens("remote", str(tmp_path / "missing"))
    broken = tmp_path / "tokenizer.json"
    broken.write_text("{not json")
    with pytest.raises(ModelUnavailableError, match="cannot be loaded"):
        text_tokens("remote", str(broken))


def test_without_the_option_the_packaged_tokenizer_counts() -> None:
    tokens = text_tokens("remote", None)
    assert isinstance(tokens, HuggingFaceTokens)
    assert tokens.name.endswith("tokenizer.json")


def test_bytes_over_three_when_no_tokenizer_is_at_hand() -> None:
    tokens = ByteTokens()
    assert tokens.count(["abcdef", "abcdefg", "", "héllo"]) == [2, 3, 0, 2]
    assert tokens.cut("abcdefgh", 2) == "abcdef"
    assert tokens.cut("héllo", 1) == "hé"  # 3 bytes: h and é's two
    assert tokens.cut("aéllo", 1) == "aé"
    assert tokens.cut("aaé", 1) == "aa"  # é cut in two is dropped
