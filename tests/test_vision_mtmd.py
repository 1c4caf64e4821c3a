"""Images through llama.cpp's multimodal projector (libmtmd), end to end.

The model is the packaged SmolLM2-135M (real weights) with a tiny random-weight projector
(``tests/tiny_mmproj.py``) named in its ``mmproj`` option, configured as a user would
configure a vision GGUF. Its answers are garbage, but greedy decoding makes them
deterministic, and the picture steers them: so these tests check that images are
tokenized by mtmd (the prompt grows by the image's positions), encoded and evaluated into
the sequence (two pictures, two answers; one picture, one answer), and that the KV cells
of an image are reused as a prefix by a later request that shows it at the same place.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from oasis.models.assets import locate_part
from oasis.models.catalog import SMOLLM2
from oasis.models.specs import PackagedAsset
from tests.server import Server, sdk_for, start_server
from tests.tiny_mmproj import IMAGE_TOKENS, write_mmproj

VLM = "tiny-vlm"
_SMOLLM2_EMBEDDING = 576  # SmolLM2-135M's hidden size, which the projector must match


def drawing(shape: str) -> bytes:
    """A PNG of a red square or a blue circle on white."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (96, 96), "white")
    pen = ImageDraw.Draw(canvas)
    if shape == "red square":
        pen.rectangle((20, 20, 76, 76), fill=(220, 20, 20))
    else:
        pen.ellipse((16, 16, 80, 80), fill=(20, 40, 220))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def vlm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SmolLM2 with the tiny projector, configured by path as a user's own vision GGUF."""
    root = tmp_path_factory.mktemp("vlm")
    assert isinstance(SMOLLM2.source, PackagedAsset)
    model = locate_part(SMOLLM2.source.parts[0])
    mmproj = write_mmproj(root / "mmproj-tiny.gguf", _SMOLLM2_EMBEDDING)
    server = start_server(
        root / "data",
        config={
            "models": [
                {
                    "id": VLM,
                    "kind": "chat",
                    "path": str(model),
                    "options": {"mmproj": str(mmproj), "parallel": 2},
                }
            ]
        },
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vlm(vlm_server: Server) -> OpenAI:
    return sdk_for(vlm_server, "sk-test")


def _ask(client: OpenAI, image: bytes | None, **extra: Any) -> Any:
    content: list[Any] = [{"type": "text", "text": "What is in this picture?"}]
    if image is not None:
        content.append({"type": "image_url", "image_url": {"url": data_url(image)}})
    return client.chat.completions.create(
        model=VLM,
        messages=[{"role": "user", "content": content}],
        temperature=0,
        max_tokens=8,
        **extra,
    )


def test_an_image_takes_its_positions_in_the_prompt(vlm: OpenAI) -> None:
    text_only = _ask(vlm, None)
    with_image = _ask(vlm, drawing("red square"))
    assert text_only.usage is not None and with_image.usage is not None
    # The image's positions plus the text mtmd wraps it in (gemma3's begin/end markers,
    # tokenized by SmolLM2) and the marker's own spacing.
    grown = with_image.usage.prompt_tokens - text_only.usage.prompt_tokens
    assert IMAGE_TOKENS <= grown <= IMAGE_TOKENS + 30


def test_the_picture_steers_a_greedy_answer(vlm: OpenAI) -> None:
    square = _ask(vlm, drawing("red square"), logprobs=True, top_logprobs=5)
    circle = _ask(vlm, drawing("blue circle"), logprobs=True, top_logprobs=5)
    square_again = _ask(vlm, drawing("red square"), logprobs=True, top_logprobs=5)

    def first_scores(completion: Any) -> list[tuple[str, float]]:
        content = completion.choices[0].logprobs.content
        return [(t.token, round(t.logprob, 3)) for t in content[0].top_logprobs]

    assert first_scores(square) == first_scores(square_again)
    assert square.choices[0].message.content == square_again.choices[0].message.content
    assert first_scores(square) != first_scores(circle)
