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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from openai import OpenAI

from oasis.models.assets import locate_part
from oasis.models.catalog import SMOLLM2
from oasis.models.specs import PackagedAsset
from tests.server import Server, sdk_for, start_server
from tests.smollm2 import NEVER_END
from tests.tiny_mmproj import IMAGE_TOKENS, write_mmproj

VLM = "tiny-vlm"
MISMATCHED = "tiny-vlm-mismatched"  # a projector for a text model of another width
_SMOLLM2_EMBEDDING = 576  # SmolLM2-135M's hidden size, which the projector must match


def drawing(shape: str) -> bytes:
    """A PNG of a red square, a blue circle, a green triangle or a yellow bar on white."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (96, 96), "white")
    pen = ImageDraw.Draw(canvas)
    if shape == "red square":
        pen.rectangle((20, 20, 76, 76), fill=(220, 20, 20))
    elif shape == "blue circle":
        pen.ellipse((16, 16, 80, 80), fill=(20, 40, 220))
    elif shape == "green triangle":
        pen.polygon([(48, 10), (86, 86), (10, 86)], fill=(20, 180, 40))
    else:
        pen.rectangle((8, 40, 88, 56), fill=(240, 210, 20))
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
    other = write_mmproj(root / "mmproj-other.gguf", _SMOLLM2_EMBEDDING - 64)
    server = start_server(
        root / "data",
        config={
            "preload": [VLM],
            "models": [
                {
                    "id": VLM,
                    "kind": "chat",
                    "path": str(model),
                    "options": {"mmproj": str(mmproj), "parallel": 2},
                },
                {
                    "id": MISMATCHED,
                    "kind": "chat",
                    "path": str(model),
                    "options": {"mmproj": str(other)},
                },
            ],
        },
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vlm(vlm_server: Server) -> OpenAI:
    return sdk_for(vlm_server, "sk-test")


def _ask(client: OpenAI, *images: bytes, **extra: Any) -> Any:
    content: list[Any] = [{"type": "text", "text": "What is in this picture?"}]
    content += [{"type": "image_url", "image_url": {"url": data_url(i)}} for i in images]
    return client.chat.completions.create(
        model=VLM,
        messages=[{"role": "user", "content": content}],
        **{"temperature": 0, "max_tokens": 8, **extra},
    )


def _text(completion: Any) -> str:
    return str(completion.choices[0].message.content)


def _top(completion: Any) -> list[tuple[str, float]]:
    """The first token's five likeliest candidates and their logprobs."""
    first = completion.choices[0].logprobs.content[0]
    return [(t.token, round(t.logprob, 3)) for t in first.top_logprobs]


SQUARE, CIRCLE = drawing("red square"), drawing("blue circle")


def test_an_image_takes_its_positions_in_the_prompt(vlm: OpenAI) -> None:
    text_only = _ask(vlm).usage.prompt_tokens
    one = _ask(vlm, SQUARE).usage.prompt_tokens
    two = _ask(vlm, SQUARE, CIRCLE).usage.prompt_tokens
    # Each image: its positions, plus the text mtmd wraps it in (gemma3's begin and end
    # markers, which SmolLM2 spells in a few tokens each).
    wrapped = one - text_only
    assert IMAGE_TOKENS <= wrapped <= IMAGE_TOKENS + 30
    assert two - one == wrapped


def test_the_picture_steers_a_greedy_answer(vlm: OpenAI) -> None:
    square = _ask(vlm, SQUARE, logprobs=True, top_logprobs=5)
    circle = _ask(vlm, CIRCLE, logprobs=True, top_logprobs=5)
    square_again = _ask(vlm, SQUARE, logprobs=True, top_logprobs=5)
    assert _top(square) == _top(square_again) and _text(square) == _text(square_again)
    assert _top(square) != _top(circle)
    # Where they stand matters too: the same two pictures, swapped.
    assert _top(_ask(vlm, SQUARE, CIRCLE, logprobs=True, top_logprobs=5)) != _top(
        _ask(vlm, CIRCLE, SQUARE, logprobs=True, top_logprobs=5)
    )


def test_a_repeated_prompt_reuses_the_cells_of_its_image(vlm: OpenAI) -> None:
    # Pictures no other test shows, so no sequence holds them yet.
    triangle, bar = drawing("green triangle"), drawing("yellow bar")
    first = _ask(vlm, triangle)
    again = _ask(vlm, triangle)
    assert _text(again) == _text(first)
    # Everything but the last prompt token, which is always evaluated afresh.
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1
    # Another picture at the same place: only the text before it is reused.
    other = _ask(vlm, bar)
    assert other.usage.prompt_tokens_details.cached_tokens < other.usage.prompt_tokens - (
        IMAGE_TOKENS
    )


def test_choices_and_concurrent_requests_with_images(vlm: OpenAI) -> None:
    """``n`` copies the evaluated image into the other choices' sequences; requests
    decoded together (``parallel = 2``, a third queued) evaluate their images between the
    others' steps. (Their texts are not compared with solo runs: a sequence decoded beside
    another whose cached prefix differs may drift after a few tokens, text prompts too.)"""
    long: dict[str, Any] = {"max_tokens": 24, "logit_bias": NEVER_END}
    choices = _ask(vlm, SQUARE, n=2, **long).choices
    assert choices[0].message.content == choices[1].message.content
    cases = [(SQUARE,), (CIRCLE,), ()]
    with ThreadPoolExecutor(len(cases)) as pool:
        together = list(pool.map(lambda images: _ask(vlm, *images, **long), cases))
    assert [c.usage.completion_tokens for c in together] == [24, 24, 24]
    assert together[0].usage.prompt_tokens == together[1].usage.prompt_tokens
    assert _text(together[0]) != _text(together[1])


def test_a_chat_stream_with_an_image(vlm: OpenAI) -> None:
    plain = _ask(vlm, SQUARE, max_tokens=12)
    stream = _ask(vlm, SQUARE, max_tokens=12, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == _text(plain)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens


def _respond(client: OpenAI, image: bytes | None, **extra: Any) -> Any:
    content: list[Any] = [{"type": "input_text", "text": "What is in this picture?"}]
    if image is not None:
        content.append({"type": "input_image", "image_url": data_url(image), "detail": "auto"})
    return client.responses.create(
        model=VLM,
        input=[{"role": "user", "content": content}],
        temperature=0,
        max_output_tokens=12,
        **extra,
    )


def test_responses_input_image_and_a_chained_turn(vlm: OpenAI) -> None:
    text_only = _respond(vlm, None)
    square = _respond(vlm, SQUARE)
    circle = _respond(vlm, CIRCLE)
    assert square.usage.input_tokens >= text_only.usage.input_tokens + IMAGE_TOKENS
    assert square.usage.input_tokens == circle.usage.input_tokens
    assert square.output_text != circle.output_text
    assert _respond(vlm, SQUARE).output_text == square.output_text
    # The next turn of the chain shows the stored image again, at the same place: its
    # cells are reused with the rest of the first turn.
    follow = vlm.responses.create(
        model=VLM,
        previous_response_id=square.id,
        input="And its colour?",
        temperature=0,
        max_output_tokens=8,
    )
    assert follow.usage.input_tokens_details.cached_tokens >= square.usage.input_tokens


def test_a_computer_call_screenshot_goes_to_the_model(vlm: OpenAI) -> None:
    """A vision model sees the screenshot a computer-use client sends back (replayed
    statelessly, as the SDK's ``ComputerToolset.run`` does)."""
    tool: Any = {
        "type": "computer_use_preview",
        "display_width": 96,
        "display_height": 96,
        "environment": "browser",
    }
    call: Any = {
        "type": "computer_call",
        "id": "cu_1",
        "call_id": "call_1",
        "action": {"type": "screenshot"},
        "pending_safety_checks": [],
        "status": "completed",
    }

    def after(screenshot: bytes) -> Any:
        output: Any = {
            "type": "computer_call_output",
            "call_id": "call_1",
            "output": {"type": "computer_screenshot", "image_url": data_url(screenshot)},
        }
        return vlm.responses.create(
            model=VLM,
            input=[{"role": "user", "content": "Click the shape."}, call, output],
            tools=[tool],
            tool_choice="none",
            temperature=0,
            max_output_tokens=4,
            top_logprobs=5,
            include=["message.output_text.logprobs"],
            store=False,
        )

    def scores(response: Any) -> list[list[tuple[str, float]]]:
        """Each answer token's likeliest candidates: the answer's text alone is often the
        same, its numbers are not."""
        logprobs = response.output[-1].content[0].logprobs
        return [[(t.token, round(t.logprob, 3)) for t in lp.top_logprobs] for lp in logprobs]

    square, circle = after(SQUARE), after(CIRCLE)
    # The same history but for the picture: the answers differ only through it.
    assert square.usage.input_tokens == circle.usage.input_tokens > IMAGE_TOKENS
    assert scores(square) != scores(circle)
    assert scores(after(SQUARE)) == scores(square)


def _chat_status(server: Server, content: list[Any]) -> httpx.Response:
    return httpx.post(
        f"{server.api_url}/chat/completions",
        json={"model": VLM, "messages": [{"role": "user", "content": content}]},
        timeout=120,
    )


def test_a_picture_mtmd_cannot_read_is_a_400_naming_its_part(vlm_server: Server) -> None:
    # A PNG's signature (so it passes for a picture) and nothing a decoder can read.
    broken = base64.b64encode(b"\x89PNG\r\n\x1a\nnot a picture").decode()
    answer = _chat_status(
        vlm_server,
        [
            {"type": "image_url", "image_url": {"url": data_url(SQUARE)}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{broken}"}},
        ],
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == "messages[0].content[1]"
    assert error["code"] == "invalid_image_format"


def test_a_media_marker_typed_by_the_client_takes_no_image_place(vlm: OpenAI) -> None:
    """llama.cpp's media marker in a client's text is dropped: it neither fails the
    request nor moves the image."""

    def asked(text: str) -> Any:
        return vlm.chat.completions.create(
            model=VLM,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": text},
                        {"type": "image_url", "image_url": {"url": data_url(SQUARE)}},
                    ],
                }
            ],
            temperature=0,
            max_tokens=4,
        )

    typed, plain = asked("Look: <__media__> here"), asked("Look:  here")
    assert typed.usage.prompt_tokens == plain.usage.prompt_tokens
    assert _text(typed) == _text(plain)


def test_a_projector_made_for_another_model_is_refused_clearly(vlm_server: Server) -> None:
    answer = httpx.post(
        f"{vlm_server.api_url}/chat/completions",
        json={"model": MISMATCHED, "messages": [{"role": "user", "content": "Hi"}]},
        timeout=120,
    )
    assert answer.status_code == 503, answer.text
    assert "projector" in answer.json()["error"]["message"]
