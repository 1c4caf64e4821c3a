"""Unit: how the llama.cpp engine reads its model options into context settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from oasis.engines.llamacpp import _flash_attention
from oasis.errors import ModelUnavailableError
from oasis.models.specs import LocalSource, ModelSpec


def spec(**options: Any) -> ModelSpec:
    source = LocalSource(Path("m.gguf"))
    return ModelSpec(id="m", kind="chat", engine="llama.cpp", source=source, options=options)


def test_flash_attention_follows_llama_cpp_unless_the_model_says() -> None:
    assert _flash_attention(spec(), llama_cpp) == llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
    assert _flash_attention(spec(flash_attention="auto"), llama_cpp) == (
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
    )
    assert _flash_attention(spec(flash_attention=True), llama_cpp) == (
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    )
    assert _flash_attention(spec(flash_attention=False), llama_cpp) == (
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )


def test_a_flash_attention_value_it_cannot_read_names_the_option() -> None:
    with pytest.raises(ModelUnavailableError, match="flash_attention"):
        _flash_attention(spec(flash_attention="yes"), llama_cpp)
