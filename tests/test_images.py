"""Images: ``/v1/images/generations`` and ``/v1/images/edits`` on tiny diffusers pipelines.

The pipelines are randomly initialised (tests/tiny_diffusion.py), so their pictures are
noise; what is checked is everything a client relies on: shapes, sizes, counts, formats,
masks, stream events, URLs, reproducibility and errors, through the official SDK with
strict validation and through raw HTTP.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image

from tests.conftest import STRICT_KEYS
from tests.server import Server, start_server
from tests.tiny_diffusion import NO_INPAINTING, TEXT_TO_IMAGE_ALIAS

pytestmark = pytest.mark.slow


def decode(b64: str | None) -> Image.Image:
    assert b64 is not None
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def png_bytes(size: tuple[int, int], color: tuple[int, ...], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def mask_bytes(size: tuple[int, int], hole: tuple[int, int, int, int]) -> bytes:
    """An opaque RGBA mask with a fully transparent rectangle (the area to edit)."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), hole)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def sse_events(response: httpx.Response) -> list[tuple[str | None, dict[str, Any]]]:
    """(event name, data) pairs of a raw SSE body."""
    events = []
    for block in response.text.strip().split("\n\n"):
        name = None
        data = None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
        assert data is not None, block
        events.append((name, json.loads(data)))
    return events


# --- generations ---------------------------------------------------------------------------


def test_generation_shape_and_usage(client: OpenAI, image_models: dict[str, str]) -> None:
    result = client.images.generate(model=image_models["text_to_image"], prompt="a red fox")
    assert result.created > 0
    assert result.data is not None and len(result.data) == 1
    image = decode(result.data[0].b64_json)
    assert image.format == "PNG" and image.mode == "RGB"
    assert image.size == (64, 64)  # size=auto: the UNet's native size
    assert result.size == "64x64"
    assert result.output_format == "png"
    assert result.background == "opaque"
    assert result.quality == "medium"
    assert result.data[0].url is None
    usage = result.usage
    assert usage is not None and usage.output_tokens_details is not None
    assert usage.output_tokens == usage.output_tokens_details.image_tokens == 16  # 4x4 patches
    assert usage.input_tokens_details.image_tokens == 0
    assert usage.input_tokens == usage.input_tokens_details.text_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


@pytest.mark.parametrize(
    ("size", "expected"),
    [("128x64", (128, 64)), ("64x128", (64, 128)), ("256x256", (256, 256)), ("auto", (64, 64))],
)
def test_generation_sizes(
    client: OpenAI, image_models: dict[str, str], size: str, expected: tuple[int, int]
) -> None:
    result = client.images.generate(model=image_models["text_to_image"], prompt="x", size=size)
    assert result.data is not None
    assert decode(result.data[0].b64_json).size == expected
    assert result.size == f"{expected[0]}x{expected[1]}"


def test_generation_n_gives_distinct_pictures(client: OpenAI, image_models: dict[str, str]) -> None:
    result = client.images.generate(model=image_models["text_to_image"], prompt="boats", n=5)
    assert result.data is not None and len(result.data) == 5
    payloads = {item.b64_json for item in result.data}
    assert len(payloads) == 5  # one seed per picture
    assert result.usage is not None and result.usage.output_tokens == 5 * 16


@pytest.mark.parametrize(
    ("fmt", "pil_format"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")]
)
def test_output_formats(
    client: OpenAI, image_models: dict[str, str], fmt: Any, pil_format: str
) -> None:
    result = client.images.generate(
        model=image_models["text_to_image"], prompt="x", output_format=fmt
    )
    assert result.output_format == fmt
    assert result.data is not None
    assert decode(result.data[0].b64_json).format == pil_format


def test_output_compression_shrinks_jpeg(client: OpenAI, image_models: dict[str, str]) -> None:
    sizes = []
    for compression in (100, 10):
        result = client.images.generate(
            model=image_models["text_to_image"],
            prompt="same",
            size="128x128",
            output_format="jpeg",
            output_compression=compression,
        )
        assert result.data is not None and result.data[0].b64_json is not None
        sizes.append(len(result.data[0].b64_json))
    assert sizes[1] < sizes[0]


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparent_background(client: OpenAI, image_models: dict[str, str], fmt: Any) -> None:
    result = client.images.generate(
        model=image_models["text_to_image"],
        prompt="a cup",
        background="transparent",
        output_format=fmt,
        size="128x128",
    )
    assert result.background == "transparent"
    assert result.data is not None
    image = decode(result.data[0].b64_json)
    assert image.mode == "RGBA"
    alpha_min, alpha_max = image.getchannel("A").getextrema()
    # The border's backdrop always starts a cleared region, whatever the picture shows.
    assert alpha_min == 0 and alpha_max == 255


def test_quality_and_reproducible_seed(client: OpenAI, image_models: dict[str, str]) -> None:
    """The tiny-sd model has `seed` in its config options: same request, same pictures."""
    model = image_models["text_to_image"]
    first = client.images.generate(model=model, prompt="a lighthouse", quality="low")
    second = client.images.generate(model=model, prompt="a lighthouse", quality="low")
    high = client.images.generate(model=model, prompt="a lighthouse", quality="high")
    assert first.quality == "low" and high.quality == "high"
    assert first.data is not None and second.data is not None and high.data is not None
    assert first.data[0].b64_json == second.data[0].b64_json
    assert high.data[0].b64_json != first.data[0].b64_json  # more steps, another picture


def test_unseeded_model_varies_unless_the_request_has_a_seed(
    client: OpenAI, image_models: dict[str, str]
) -> None:
    model = image_models["inpainting"]  # no `seed` option
    a = client.images.generate(model=model, prompt="dunes")
    b = client.images.generate(model=model, prompt="dunes")
    assert a.data is not None and b.data is not None
    assert a.data[0].b64_json != b.data[0].b64_json
    seeded = [
        client.images.generate(model=model, prompt="dunes", extra_body={"seed": 42})
        for _ in range(2)
    ]
    assert seeded[0].data is not None and seeded[1].data is not None
    assert seeded[0].data[0].b64_json == seeded[1].data[0].b64_json


def test_alias_user_and_legacy_fields(client: OpenAI, image_models: dict[str, str]) -> None:
    result = client.images.generate(
        model=TEXT_TO_IMAGE_ALIAS,
        prompt="x",
        user="user-1234",
        style="vivid",
        moderation="low",
        quality="hd",
    )
    assert result.quality == "high"
    assert result.safety_identifier == "user-1234"


@pytest.fixture(scope="module")
def keyed_image_server(
    tmp_path_factory: pytest.TempPathFactory,
    session_config: dict[str, Any],
    image_models: dict[str, str],
) -> Iterator[Server]:
    """API keys required, serving the tiny text-to-image model (the strict server has no
    image model, and the session server no keys)."""
    model = next(m for m in session_config["models"] if m["id"] == image_models["text_to_image"])
    srv = start_server(
        tmp_path_factory.mktemp("oasis-keyed-images"),
        config={"preload": [], "models": [model]},
        env={"OASIS_API_KEYS": STRICT_KEYS[0]},
    )
    yield srv
    srv.stop()


def raw_get(server: Server, path: str) -> int:
    """GET ``path`` exactly as written (httpx would resolve `..`), without a key."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_url_response_format_is_served_without_a_key(
    keyed_image_server: Server, image_models: dict[str, str]
) -> None:
    srv = keyed_image_server
    sdk = OpenAI(base_url=srv.api_url, api_key=STRICT_KEYS[0], max_retries=0, timeout=120)
    result = sdk.images.generate(
        model=image_models["text_to_image"], prompt="x", response_format="url", output_format="webp"
    )
    assert result.data is not None and result.data[0].b64_json is None
    url = result.data[0].url
    assert url is not None and url.startswith(srv.base_url + "/v1/images/files/img_")
    # The server does require keys: the same request without one is refused.
    assert httpx.post(srv.api_url + "/images/generations", json={"prompt": "x"}).status_code == 401
    fetched = httpx.get(url)  # no Authorization header, as an <img src> fetch
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(fetched.content)).size == (64, 64)
    missing = httpx.get(srv.base_url + "/v1/images/files/img_" + "A" * 43 + ".png")
    assert missing.status_code == 404 and error_of(missing)["type"] == "invalid_request_error"
    # Only the file route is open: nothing else is reachable through its prefix.
    name = url.rsplit("/", 1)[1]
    for path in (
        "/v1/images/files/../../v1/models",
        "/v1/images/files/..%2F..%2Fv1%2Fmodels",
        "/v1/images/files/%2e%2e/%2e%2e/v1/models",
        "/v1/images/filesX",
        f"/v1/images/files{name}",
        "/v1/images/files/..%2Fserver.log",
        "/v1/images/files/",
        "/v1/models",
    ):
        assert raw_get(srv, path) in (401, 404), path
    assert raw_get(srv, f"/v1/images/files/{name}") == 200


def test_concurrent_requests_queue_per_model(client: OpenAI, image_models: dict[str, str]) -> None:
    def one(i: int) -> tuple[int, int]:
        result = client.images.generate(
            model=image_models["text_to_image"], prompt=f"tile {i}", size="64x128"
        )
        assert result.data is not None
        size: tuple[int, int] = decode(result.data[0].b64_json).size
        return size

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(one, range(6))) == [(64, 128)] * 6


# --- streaming -----------------------------------------------------------------------------


def test_generation_stream_partials_then_completed(
    client: OpenAI, image_models: dict[str, str]
) -> None:
    events = list(
        client.images.generate(
            model=image_models["text_to_image"],
            prompt="a river",
            stream=True,
            partial_images=2,
            size="128x64",
        )
    )
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    partials = [e for e in events if e.type == "image_generation.partial_image"]
    assert [e.partial_image_index for e in partials] == [0, 1]
    for event in events:
        assert decode(event.b64_json).size == (128, 64)
        assert event.size == "128x64" and event.output_format == "png"
        assert event.background == "opaque" and event.quality == "medium"
    done = events[-1]
    assert done.type == "image_generation.completed"
    assert done.usage.output_tokens == 32
    assert done.usage.total_tokens == done.usage.input_tokens + 32


def test_generation_stream_without_partials_and_with_n(
    client: OpenAI, image_models: dict[str, str]
) -> None:
    events = list(
        client.images.generate(model=image_models["text_to_image"], prompt="x", stream=True, n=2)
    )
    assert [e.type for e in events] == ["image_generation.completed"] * 2
    assert events[0].b64_json != events[1].b64_json


def test_generation_stream_framing(http: httpx.Client, image_models: dict[str, str]) -> None:
    response = http.post(
        "/v1/images/generations",
        json={
            "model": image_models["text_to_image"],
            "prompt": "x",
            "stream": True,
            "partial_images": 3,
            "output_format": "jpeg",
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in response.text
    events = sse_events(response)
    for name, data in events:
        assert name == data["type"]  # the `event:` line names the data's type
    assert [d["type"] for _, d in events] == ["image_generation.partial_image"] * 3 + [
        "image_generation.completed"
    ]
    assert decode(events[-1][1]["b64_json"]).format == "JPEG"


# --- edits ---------------------------------------------------------------------------------


def test_edit_with_mask_changes_only_the_transparent_area(
    client: OpenAI, image_models: dict[str, str]
) -> None:
    source = png_bytes((96, 64), (200, 30, 30))
    result = client.images.edit(
        model=image_models["inpainting"],
        image=("photo.png", source, "image/png"),
        mask=("mask.png", mask_bytes((96, 64), (0, 0, 48, 32)), "image/png"),
        prompt="a blue square",
    )
    assert result.data is not None and len(result.data) == 1
    image = decode(result.data[0].b64_json).convert("RGB")
    assert image.size == (96, 64) and result.size == "96x64"  # size=auto keeps the picture's
    kept = [image.getpixel((x, y)) for x in range(48, 96) for y in range(0, 64, 4)]
    assert set(kept) == {(200, 30, 30)}  # opaque in the mask: untouched
    edited = [image.getpixel((x, y)) for x in range(0, 48) for y in range(0, 32)]
    assert any(pixel != (200, 30, 30) for pixel in edited)
    usage = result.usage
    assert usage is not None
    assert usage.input_tokens_details.image_tokens == 6 * 4  # the 96x64 input picture
    assert usage.input_tokens == usage.input_tokens_details.text_tokens + 24


def test_edit_mask_steers_the_result(client: OpenAI, image_models: dict[str, str]) -> None:
    """The inpainting UNet sees the mask: another mask, another picture (same seed)."""
    source = png_bytes((64, 64), (40, 160, 40))

    def edit(hole: tuple[int, int, int, int]) -> str | None:
        result = client.images.edit(
            model=image_models["inpainting"],
            image=("a.png", source, "image/png"),
            mask=("m.png", mask_bytes((64, 64), hole), "image/png"),
            prompt="x",
            extra_body={"seed": 7},
        )
        assert result.data is not None
        return result.data[0].b64_json

    assert edit((0, 0, 64, 32)) == edit((0, 0, 64, 32))
    assert edit((0, 0, 64, 32)) != edit((0, 32, 64, 64))


def test_edit_auto_size_fits_the_model_limit(client: OpenAI, image_models: dict[str, str]) -> None:
    """The inpainting model allows 256x256 pixels: a larger picture is scaled to fit."""
    result = client.images.edit(
        model=image_models["inpainting"],
        image=("big.png", png_bytes((512, 256), (70, 70, 70)), "image/png"),
        prompt="x",
    )
    assert result.data is not None
    width, height = decode(result.data[0].b64_json).size
    assert result.size == f"{width}x{height}"
    assert width * height <= 256 * 256 and width % 8 == 0 and height % 8 == 0
    assert abs(width / height - 2) < 0.1  # the picture's shape is kept


def test_edit_without_mask_on_a_text_to_image_model(
    client: OpenAI, image_models: dict[str, str]
) -> None:
    source = png_bytes((64, 64), (10, 10, 10))
    result = client.images.edit(
        model=image_models["text_to_image"],
        image=[("a.png", source, "image/png")],  # sent as image[]
        prompt="brighter",
        size="128x128",
        output_format="webp",
        n=2,
    )
    assert result.data is not None and len(result.data) == 2
    assert all(decode(item.b64_json).size == (128, 128) for item in result.data)
    assert result.output_format == "webp"


def test_edit_inpaints_a_text_to_image_model_and_uses_image_alpha(
    client: OpenAI, image_models: dict[str, str]
) -> None:
    """No mask, but the picture has transparent pixels: they are the area to edit."""
    picture = Image.new("RGBA", (64, 64), (0, 0, 255, 255))
    picture.paste((0, 0, 0, 0), (0, 0, 32, 64))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    result = client.images.edit(
        model=image_models["text_to_image"],
        image=("a.png", buffer.getvalue(), "image/png"),
        prompt="x",
    )
    assert result.data is not None
    image = decode(result.data[0].b64_json).convert("RGB")
    assert {image.getpixel((x, 10)) for x in range(32, 64)} == {(0, 0, 255)}


def test_edit_stream_events(client: OpenAI, image_models: dict[str, str]) -> None:
    events = list(
        client.images.edit(
            model=image_models["text_to_image"],
            image=("a.png", png_bytes((64, 64), (1, 2, 3)), "image/png"),
            prompt="x",
            stream=True,
            partial_images=1,
        )
    )
    assert [e.type for e in events][-1] == "image_edit.completed"
    assert all(e.type == "image_edit.partial_image" for e in events[:-1])
    assert decode(events[-1].b64_json).size == (64, 64)


def test_edit_json_body_with_a_data_url(http: httpx.Client, image_models: dict[str, str]) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes((64, 64), (9, 9, 9))).decode()
    response = http.post(
        "/v1/images/edits",
        json={
            "model": image_models["text_to_image"],
            "prompt": "x",
            "images": [{"image_url": data_url}],
        },
    )
    assert response.status_code == 200, response.text
    assert decode(response.json()["data"][0]["b64_json"]).size == (64, 64)
    remote = http.post(
        "/v1/images/edits",
        json={
            "model": image_models["text_to_image"],
            "prompt": "x",
            "images": [{"image_url": "https://example.com/a.png"}],
        },
    )
    assert remote.status_code == 400 and error_of(remote)["param"] == "images[0].image_url"


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"size": "100x100"}, "size", "invalid_value"),
        ({"size": "big"}, "size", "invalid_value"),
        ({"size": "1024x64"}, "size", "invalid_value"),  # aspect past 3:1
        ({"size": "4096x4096"}, "size", "invalid_value"),  # past the pixel limit
        ({"n": 11}, "n", "integer_above_max_value"),
        ({"n": 0}, "n", "integer_below_min_value"),
        ({"quality": "ultra"}, "quality", "invalid_value"),
        ({"output_format": "gif"}, "output_format", "unsupported_value"),
        ({"output_format": "bmp"}, "output_format", "invalid_value"),
        ({"output_compression": 101}, "output_compression", "integer_above_max_value"),
        ({"background": "transparent", "output_format": "jpeg"}, "background", "invalid_value"),
        ({"partial_images": 4, "stream": True}, "partial_images", "integer_above_max_value"),
        ({"prompt": ""}, "prompt", "string_below_min_length"),
        ({"prompt": None}, "prompt", None),
    ],
)
def test_generation_errors(
    http: httpx.Client,
    image_models: dict[str, str],
    body: dict[str, Any],
    param: str,
    code: str | None,
) -> None:
    payload = {"model": image_models["text_to_image"], "prompt": "x", **body}
    if payload["prompt"] is None:
        del payload["prompt"]
        code = "missing_required_parameter"
    response = http.post("/v1/images/generations", json=payload)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["param"] == param and error["code"] == code
    assert error["type"] == "invalid_request_error"


def test_unknown_and_wrong_kind_models(client: OpenAI, image_models: dict[str, str]) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.images.generate(model="no-such-painter", prompt="x")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as chat_model:
        client.images.generate(model="smollm2-135m-instruct", prompt="x")
    assert chat_model.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.images.edit(
            model="no-such-painter", image=("a.png", png_bytes((64, 64), (0, 0, 0)), "image/png"),
            prompt="x",
        )  # fmt: skip


def test_models_list_has_the_configured_image_models(
    client: OpenAI, image_models: dict[str, str]
) -> None:
    ids = {m.id for m in client.models.list()}
    assert {image_models["text_to_image"], image_models["inpainting"], TEXT_TO_IMAGE_ALIAS} <= ids
    assert client.models.retrieve(image_models["inpainting"]).owned_by == "user"


def edit_request(
    http: httpx.Client, files: list[tuple[str, tuple[str, bytes, str]]], **fields: str
) -> httpx.Response:
    return http.post("/v1/images/edits", data={"prompt": "x", **fields}, files=files)


def test_edit_errors(http: httpx.Client, image_models: dict[str, str]) -> None:
    model = image_models["inpainting"]
    picture = ("image", ("a.png", png_bytes((64, 64), (5, 5, 5)), "image/png"))

    missing = http.post("/v1/images/edits", data={"prompt": "x", "model": model})
    assert missing.status_code == 400
    assert error_of(missing)["param"] == "image"
    assert error_of(missing)["code"] == "missing_required_parameter"

    wrong_size = edit_request(
        http, [picture, ("mask", ("m.png", mask_bytes((32, 32), (0, 0, 8, 8)), "image/png"))],
        model=model,
    )  # fmt: skip
    assert wrong_size.status_code == 400 and error_of(wrong_size)["param"] == "mask"

    no_alpha = edit_request(
        http, [picture, ("mask", ("m.png", png_bytes((64, 64), (0, 0, 0)), "image/png"))],
        model=model,
    )  # fmt: skip
    assert no_alpha.status_code == 400 and error_of(no_alpha)["param"] == "mask"

    not_an_image = edit_request(
        http, [("image", ("a.png", b"not a picture", "image/png"))], model=model
    )
    assert not_an_image.status_code == 400
    assert error_of(not_an_image) | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": "image",
        "code": "invalid_image_format",
    }

    two = edit_request(http, [("image[]", picture[1]), ("image[]", picture[1])], model=model)
    assert two.status_code == 400 and error_of(two)["param"] == "image"

    bad_n = edit_request(http, [picture], model=model, n="twelve")
    assert bad_n.status_code == 400 and error_of(bad_n)["param"] == "n"

    bad_size = edit_request(http, [picture], model=model, size="70x70")
    assert bad_size.status_code == 400 and error_of(bad_size)["param"] == "size"

    no_prompt = http.post("/v1/images/edits", data={"model": model}, files=[picture])
    assert no_prompt.status_code == 400 and error_of(no_prompt)["param"] == "prompt"


@pytest.mark.parametrize("stream", [True, False])
def test_masked_edit_on_a_model_without_inpainting_is_a_400(
    http: httpx.Client, image_models: dict[str, str], stream: bool
) -> None:
    """tiny-lcm has no inpainting pipeline: refused with a status, not an error frame."""
    picture = ("image", ("a.png", png_bytes((64, 64), (5, 5, 5)), "image/png"))
    mask = ("mask", ("m.png", mask_bytes((64, 64), (0, 0, 32, 32)), "image/png"))
    fields = {"model": NO_INPAINTING, "stream": str(stream).lower(), "partial_images": "1"}
    response = edit_request(http, [picture, mask], **fields)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert error_of(response)["param"] == "mask"
    # A picture with transparent pixels is its own mask: refused the same way, naming it.
    see_through = Image.new("RGBA", (64, 64), (0, 0, 255, 255))
    see_through.paste((0, 0, 0, 0), (0, 0, 32, 64))
    buffer = io.BytesIO()
    see_through.save(buffer, format="PNG")
    own_mask = edit_request(http, [("image", ("a.png", buffer.getvalue(), "image/png"))], **fields)
    assert own_mask.status_code == 400 and error_of(own_mask)["param"] == "image"
    # Without a mask the same model edits (image to image).
    fine = edit_request(http, [picture], model=NO_INPAINTING)
    assert fine.status_code == 200, fine.text


def test_stream_error_before_first_byte_is_a_status(
    http: httpx.Client, image_models: dict[str, str]
) -> None:
    response = http.post(
        "/v1/images/generations",
        json={"model": image_models["text_to_image"], "prompt": "x", "stream": True, "size": "9x9"},
    )
    assert response.status_code == 400 and error_of(response)["param"] == "size"


def test_no_image_model_configured(strict_server: Server) -> None:
    """The strict server configures no image model: 404 saying how to add one."""
    sdk = OpenAI(base_url=strict_server.api_url, api_key=STRICT_KEYS[0], max_retries=0)
    for model in ("gpt-image-1", None):
        with pytest.raises(openai.NotFoundError) as info:
            if model is None:
                sdk.images.generate(prompt="x")
            else:
                sdk.images.generate(prompt="x", model=model)
        assert info.value.code == "model_not_found"
        assert 'kind = "images"' in str(info.value.message)
    assert not [m for m in sdk.models.list() if m.id.startswith("gpt-image")]


def test_image_urls_expire(tmp_path: Any) -> None:
    """Unit: the URL store refuses and sweeps files older than its time to live."""
    import os

    from oasis.errors import NotFoundError
    from oasis.services.image_files import ImageFileStore
    from oasis.store.blobs import BlobStore

    store = ImageFileStore(BlobStore(tmp_path), ttl=3600)
    fresh = store.save(b"fresh", "png")
    stale = store.save(b"stale", "webp")
    assert store.path(fresh).read_bytes() == b"fresh"
    hour_ago = store.path(stale).stat().st_mtime - 3601
    os.utime(tmp_path / stale, (hour_ago, hour_ago))
    with pytest.raises(NotFoundError):
        store.path(stale)
    with pytest.raises(NotFoundError):
        store.path("../" + fresh)
    store.save(b"another", "jpeg")  # saving sweeps expired files
    assert not (tmp_path / stale).exists() and (tmp_path / fresh).exists()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but holds almost no data: what a
    decompression bomb looks like before it is decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("param", ["image", "mask"])
def test_huge_pictures_are_refused_before_decoding(param: str) -> None:
    """Unit: the size in the header is checked before any pixel is decoded."""
    from oasis.errors import InvalidRequestError
    from oasis.services.imaging import MAX_INPUT_PIXELS, read_image

    side = int(MAX_INPUT_PIXELS**0.5) + 1
    for width, height in ((side, side), (30_000, 30_000)):  # ours, then past Pillow's own
        with pytest.raises(InvalidRequestError) as info:
            read_image(png_claiming(width, height), param)
        assert info.value.param == param and info.value.code == "image_too_large"
    # Just under the limit the same file is read (and found truncated, not too large).
    with pytest.raises(InvalidRequestError) as small:
        read_image(png_claiming(64, 64), param)
    assert small.value.code == "invalid_image_format"


@pytest.mark.parametrize("fmt", ["BMP", "GIF", "TIFF", "EPS"])
def test_only_png_jpeg_and_webp_are_decoded(fmt: str) -> None:
    """Unit: other formats Pillow knows (EPS would run Ghostscript) are refused."""
    from oasis.errors import InvalidRequestError
    from oasis.services.imaging import read_image

    if fmt == "EPS":
        data = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n%%EOF\n"
    else:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format=fmt)
        data = buffer.getvalue()
        Image.open(io.BytesIO(data)).load()  # a valid file of its format
    with pytest.raises(InvalidRequestError) as info:
        read_image(data, "image")
    assert info.value.param == "image" and info.value.code == "invalid_image_format"
    for ok in ("PNG", "JPEG", "WEBP"):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format=ok)
        assert read_image(buffer.getvalue(), "image").size == (8, 8)


def test_huge_upload_is_a_400_naming_the_field(
    http: httpx.Client, image_models: dict[str, str]
) -> None:
    picture = ("image", ("a.png", png_bytes((64, 64), (5, 5, 5)), "image/png"))
    huge = png_claiming(20_000, 20_000)
    for files, param in (
        ([("image", ("a.png", huge, "image/png"))], "image"),
        ([picture, ("mask", ("m.png", huge, "image/png"))], "mask"),
    ):
        response = edit_request(http, files, model=image_models["inpainting"])
        assert response.status_code == 400, response.text
        assert error_of(response)["param"] == param
        assert error_of(response)["code"] == "image_too_large"


def test_edit_body_shapes(http: httpx.Client, image_models: dict[str, str]) -> None:
    """A JSON edit body that is not an object is the standard 400; a multipart one folds
    `a[k]` objects and `image[]` lists as every multipart endpoint does."""
    for body in ([1, 2], "x", 3):
        response = http.post("/v1/images/edits", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["message"] == "The request body must be a JSON object."
    bad_field = http.post(
        "/v1/images/edits",
        json={"model": image_models["text_to_image"], "prompt": "x", "images": "nope"},
    )
    assert bad_field.status_code == 400 and error_of(bad_field)["param"] == "images"
    picture = ("image[]", ("a.png", png_bytes((64, 64), (5, 5, 5)), "image/png"))
    folded = edit_request(
        http,
        [picture],
        model=image_models["text_to_image"],
        **{"svg[model]": "ignored", "partial_images": "0"},
    )
    assert folded.status_code == 200, folded.text
