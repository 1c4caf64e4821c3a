"""The ``image_generation`` tool of Responses: the default chat model writes the prompt
(forced ``tool_choice``, under the call grammar), the session's tiny diffusers pipeline
draws it through the images service (tests/tiny_diffusion.py: pictures are noise, kept
at 64x64 so each takes a moment).
"""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from openai import OpenAI
from PIL import Image

from tests.conftest import STRICT_KEYS
from tests.responses_helpers import MODEL, check_order, sse_events
from tests.server import Server

pytestmark = pytest.mark.slow

TOOL: dict[str, Any] = {
    "type": "image_generation",
    "size": "64x64",
    "quality": "low",
    "output_format": "png",
}
DRAW = {"type": "image_generation"}


def _picture(b64: str | None) -> Image.Image:
    assert b64 is not None
    picture = Image.open(io.BytesIO(base64.b64decode(b64)))
    picture.load()
    return picture


def test_forced_call_draws_and_later_turns_read_the_prompt(
    client: OpenAI, image_models: dict[str, str]
) -> None:
    first = client.responses.create(
        model=MODEL,
        input="Draw a red fox in the snow.",
        tools=[TOOL],  # type: ignore[list-item]
        tool_choice=DRAW,  # type: ignore[arg-type]
        max_tool_calls=1,
        temperature=0,
        max_output_tokens=150,
    )
    calls = [item for item in first.output if item.type == "image_generation_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.status == "completed"
    assert call.revised_prompt
    picture = _picture(call.result)
    assert (picture.format, picture.size) == ("PNG", (64, 64))
    assert (call.size, call.quality, call.output_format) == ("64x64", "low", "png")
    # The tiny model's prompt may spend the whole budget: an answer may or may not follow.
    assert first.status in {"completed", "incomplete"}
    assert first.tool_choice.type == "image_generation"  # type: ignore[union-attr]
    echoed = first.tools[0]
    assert echoed.type == "image_generation" and echoed.size == "64x64"

    # The stored call replays as its prompt: the picture's base64 (thousands of tokens)
    # never reaches the model.
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input="Thanks!",
        tools=[TOOL],  # type: ignore[list-item]
        tool_choice="none",
        temperature=0,
        max_output_tokens=8,
    )
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens < 1000
    assert len(call.result or "") > 4 * second.usage.input_tokens


def _previews_drawn(server: Server) -> float:
    """How many preview images the server's image models have drawn (``/metrics``)."""
    text = httpx.get(f"{server.base_url}/metrics", timeout=30).text
    assert "# TYPE oasis_image_previews_total counter" in text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("oasis_image_previews_total{")
    )


def test_stream_helper_sees_partial_images_then_the_picture(
    client: OpenAI, server: Server, image_models: dict[str, str]
) -> None:
    drawn = _previews_drawn(server)
    with client.responses.stream(
        model=MODEL,
        input="Draw a lighthouse.",
        # Default quality: "low" takes fewer steps than two previews need.
        tools=[{**TOOL, "quality": "auto", "partial_images": 2, "output_format": "webp"}],  # type: ignore[list-item]
        tool_choice=DRAW,  # type: ignore[arg-type]
        max_tool_calls=1,
        temperature=0,
        max_output_tokens=150,
    ) as stream:
        events = list(stream)
    # The terminal event's response (the tiny model may spend the budget: incomplete).
    final = events[-1].response  # type: ignore[union-attr]
    kinds = [e.type for e in events if e.type.startswith("response.image_generation_call.")]
    assert kinds == [
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.completed",
    ]
    partials = [e for e in events if e.type == "response.image_generation_call.partial_image"]
    assert [e.partial_image_index for e in partials] == [0, 1]
    assert all(_picture(e.partial_image_b64).format == "WEBP" for e in partials)
    call = next(item for item in final.output if item.type == "image_generation_call")
    assert all(e.item_id == call.id for e in partials)
    assert _picture(call.result).format == "WEBP"
    assert _previews_drawn(server) == drawn + 2


def test_previews_are_not_drawn_for_a_response_that_is_not_streamed(
    client: OpenAI, server: Server, image_models: dict[str, str]
) -> None:
    drawn = _previews_drawn(server)
    response = client.responses.create(
        model=MODEL,
        input="Draw a lighthouse.",
        tools=[{**TOOL, "quality": "auto", "partial_images": 2}],  # type: ignore[list-item]
        tool_choice=DRAW,  # type: ignore[arg-type]
        max_tool_calls=1,
        temperature=0,
        max_output_tokens=150,
    )
    call = next(item for item in response.output if item.type == "image_generation_call")
    assert call.status == "completed" and _picture(call.result).format == "PNG"
    # OpenAI sends previews only as stream events: nobody would see these.
    assert _previews_drawn(server) == drawn


def test_raw_stream_pairs_the_call_item(http: httpx.Client, image_models: dict[str, str]) -> None:
    response = http.post(
        "/v1/responses",
        json={
            "model": MODEL,
            "input": "Draw a boat.",
            "tools": [TOOL],
            "tool_choice": DRAW,
            "max_tool_calls": 1,
            "stream": True,
            "temperature": 0,
            "max_output_tokens": 150,
        },
    )
    assert response.status_code == 200
    events = sse_events(response)
    check_order(events)
    added = next(
        e["item"]
        for e in events
        if e["type"] == "response.output_item.added"
        and e["item"]["type"] == "image_generation_call"
    )
    assert added["status"] == "in_progress" and added["result"] is None
    done = next(
        e["item"]
        for e in events
        if e["type"] == "response.output_item.done" and e["item"]["id"] == added["id"]
    )
    assert done["status"] == "completed" and _picture(done["result"]).size == (64, 64)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"size": "65x65"}, "tools[0].size"),
        ({"quality": "ultra"}, "tools[0].quality"),
        ({"background": "striped"}, "tools[0].background"),
        ({"background": "transparent", "output_format": "jpeg"}, "tools[0].background"),
        ({"output_format": "gif"}, "tools[0].output_format"),
        ({"partial_images": 4}, "tools[0].partial_images"),
        ({"model": "no-such-image-model"}, "tools[0].model"),
        (
            {"input_image_mask": {"image_url": "data:image/png;base64,AAAA"}},
            "tools[0].input_image_mask",
        ),
    ],
)
def test_bad_tool_parameters_are_400s_naming_them(
    http: httpx.Client, image_models: dict[str, str], change: dict[str, Any], param: str
) -> None:
    response = http.post(
        "/v1/responses",
        json={"model": MODEL, "input": "Draw.", "tools": [{**TOOL, **change}]},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_without_an_image_model_the_tool_is_a_400(strict_server: Server) -> None:
    response = httpx.post(
        f"{strict_server.api_url}/responses",
        headers={"Authorization": f"Bearer {STRICT_KEYS[0]}"},
        json={"model": MODEL, "input": "Draw.", "tools": [{"type": "function", "name": "f"}, TOOL]},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "tools[1]"
    assert "image model" in error["message"]
