"""End to end: ``POST /v1/images/variations`` on a tiny diffusers pipeline (issue 19, item 8).

A variation is the uploaded picture reworked with no prompt (image to image). The
pipeline is randomly initialised (tests/tiny_diffusion.py), so what is checked is what a
client relies on: counts, sizes, both response formats and the errors, through the
official SDK with strict validation.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types import ImagesResponse
from PIL import Image

pytestmark = pytest.mark.slow


def _png(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _vary(client: OpenAI, **kwargs: Any) -> ImagesResponse:
    # The SDK marks create_variation deprecated (DALL·E 2 is); clients still call it.
    with pytest.deprecated_call():
        return client.images.create_variation(**kwargs)


def test_variations_of_a_picture(
    client: OpenAI, http: httpx.Client, image_models: dict[str, str]
) -> None:
    result = _vary(
        client,
        model=image_models["text_to_image"],
        image=("a.png", _png((64, 64), (200, 30, 30)), "image/png"),
        n=2,
        size="128x128",  # the SDK lists DALL·E 2's sizes only
        response_format="b64_json",
    )
    assert result.data is not None and len(result.data) == 2
    for item in result.data:
        assert item.b64_json is not None
        picture = Image.open(io.BytesIO(base64.b64decode(item.b64_json)))
        assert picture.size == (128, 128)
    assert type(result.created) is int

    linked = _vary(
        client,
        model=image_models["text_to_image"],
        image=("a.png", _png((64, 64), (20, 30, 200)), "image/png"),
        response_format="url",
    )
    assert linked.data is not None and linked.data[0].url is not None
    served = http.get(linked.data[0].url)
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    # Without a size the picture's own shape is kept (fitted to the model).
    assert Image.open(io.BytesIO(served.content)).size == (64, 64)


def test_variation_errors(client: OpenAI, http: httpx.Client, image_models: dict[str, str]) -> None:
    missing = http.post(
        "/v1/images/variations", files={"model": (None, image_models["text_to_image"])}
    )
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "image"
    with pytest.raises(openai.NotFoundError):
        _vary(
            client,
            model="smollm2-135m-instruct",
            image=("a.png", _png((64, 64), (0, 0, 0)), "image/png"),
        )
    with pytest.raises(openai.BadRequestError) as info:
        _vary(
            client,
            model=image_models["text_to_image"],
            image=("a.png", b"not a picture", "image/png"),
        )
    assert info.value.body["param"] == "image"  # type: ignore[index]
