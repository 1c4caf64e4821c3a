"""Images reach a model that reads them, through the one generation core.

A scripted vision model (``tests/scripted_vision.py``, installed as a third-party engine)
answers with what it decodes from the bytes it received: the picture's size, mime type and
the colours of its centre and corner. So these tests check that the very picture a client
sent reached the model, whether as a Chat ``image_url`` part, a Responses ``input_image``
(data URL, a file of the Files API, or a URL fetched under the outbound policy), or as
the screenshot of a real Chromium page in a computer-use loop (``computer_use_preview``
and the GA ``computer`` tool). A model that reads text only answers 400 naming the part.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import ComputerToolset, OpenAI
from openai.types.chat.chat_completion_store_message import ChatCompletionStoreMessageContentPart
from pydantic import TypeAdapter

from oasis.core.conversation import IMAGE_MARKER, Image, Message
from oasis.engines.remote.chat import _message
from tests.loopback import serving_files
from tests.responses_helpers import MODEL, check_order, sse_events
from tests.server import Server, sdk_for, start_server
from tests.test_computer_use import (
    CHROMIUM,
    HEIGHT,
    ONE_ITEM,
    WIDTH,
    PlaywrightComputer,
    browser,
    check_unacknowledged_refused,
    perform_call,
)

VISION = "scripted-vision"
STORED_PART: TypeAdapter[Any] = TypeAdapter(ChatCompletionStoreMessageContentPart)
BLUE, ORANGE, GREEN = (0x33, 0x66, 0xCC), (0xFF, 0x88, 0x00), (0x11, 0xAA, 0x44)
PAGE = b"""<!doctype html><html><head><title>Colours</title><style>
body { margin: 0; background: #3366cc }
#box { position: absolute; left: 220px; top: 140px; width: 200px; height: 200px;
       background: #ff8800 }
</style></head><body><div id="box"></div></body></html>"""
PREVIEW: Any = {
    "type": "computer_use_preview",
    "display_width": WIDTH,
    "display_height": HEIGHT,
    "environment": "browser",
}
GA: Any = {"type": "computer"}
__all__ = ["browser"]  # the Chromium fixture, shared with the computer-use tests


def picture(width: int, height: int, centre: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    """A picture of ``width`` x ``height`` in ``BLUE``, its centre pixel ``centre``."""
    from PIL import Image as Picture

    canvas = Picture.new("RGB", (width, height), BLUE)
    canvas.putpixel((width // 2, height // 2), centre)
    out = io.BytesIO()
    canvas.save(out, fmt, quality=100) if fmt == "JPEG" else canvas.save(out, fmt)
    return out.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def described(text: str) -> dict[str, str]:
    """The scripted model's answer as fields."""
    return dict(re.findall(r"(\w+)=(\S+)", text))


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """``/page``: the coloured page; ``/picture.jpg``: a small JPEG; else 404."""
    files = {
        "/page": ("text/html", PAGE),
        "/picture.jpg": ("image/jpeg", picture(9, 9, ORANGE, "JPEG")),
    }
    with serving_files(files) as url:
        yield url


@pytest.fixture(scope="module")
def vision_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the scripted vision model; private URLs allowed, so it may fetch the
    test's loopback pictures."""
    server = start_server(
        tmp_path_factory.mktemp("vision"),
        config={
            "tool_plugins": ["tests.scripted_vision"],
            "allow_private_urls": True,
            "models": [
                {"id": VISION, "kind": "chat", "engine": "scripted-vision", "path": "/dev/null"}
            ],
        },
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vision(vision_server: Server) -> OpenAI:
    return sdk_for(vision_server, "sk-test")


@pytest.fixture(scope="module")
def raw(vision_server: Server) -> Iterator[httpx.Client]:
    headers = {"Authorization": "Bearer sk-test"}  # the owner the SDK client is
    with httpx.Client(base_url=vision_server.base_url, headers=headers, timeout=60) as client:
        yield client


def _chat(client: OpenAI, parts: list[Any]) -> dict[str, str]:
    completion = client.chat.completions.create(
        model=VISION, messages=[{"role": "user", "content": parts}]
    )
    return described(completion.choices[0].message.content or "")


def test_a_chat_image_part_reaches_a_vision_model(vision: OpenAI) -> None:
    sent = picture(7, 5, ORANGE)
    facts = _chat(
        vision,
        [
            {"type": "text", "text": "What is in the picture?"},
            {"type": "image_url", "image_url": {"url": data_url(sent), "detail": "low"}},
        ],
    )
    assert facts == {
        "images": "1",
        "last": "7x5",
        "mime": "image/png",
        "centre": "#ff8800",
        "corner": "#3366cc",
    }


def test_a_stored_completion_keeps_its_image_parts(vision: OpenAI, vision_server: Server) -> None:
    url = data_url(picture(2, 3, GREEN))
    completion = vision.chat.completions.create(
        model=VISION,
        store=True,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is it?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
    )
    # Not strict: the SDK's stored message allows only role "assistant" (see test_chat_store).
    lenient = OpenAI(base_url=vision_server.api_url, api_key="sk-test", max_retries=0)
    [message] = lenient.chat.completions.messages.list(completion.id).data
    assert message.content == "What is it?"
    parts = [STORED_PART.validate_python(p.model_dump()) for p in message.content_parts or []]
    assert [part.model_dump(exclude_none=True) for part in parts] == [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]


def test_images_come_from_urls_and_from_files(vision: OpenAI, site: str) -> None:
    uploaded = vision.files.create(
        file=("green.png", io.BytesIO(picture(4, 6, GREEN))), purpose="vision"
    )
    facts = _chat(
        vision,
        [
            {"type": "image_url", "image_url": {"url": f"{site}/picture.jpg"}},
            {"type": "text", "text": "and"},
            {"type": "image_url", "image_url": {"url": data_url(picture(3, 3, ORANGE))}},
        ],
    )
    assert facts["images"] == "2" and facts["last"] == "3x3"
    # The fetched JPEG, then one of the caller's files, through Responses.
    response = vision.responses.create(
        model=VISION,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Compare"},
                    {"type": "input_image", "image_url": f"{site}/picture.jpg", "detail": "auto"},
                    {"type": "input_image", "file_id": uploaded.id, "detail": "high"},
                ],
            }
        ],
    )
    facts = described(response.output_text)
    assert facts["images"] == "2" and facts["last"] == "4x6" and facts["centre"] == "#11aa44"
    # The parts are stored as given, and list back under the SDK's strict types.
    [item] = vision.responses.input_items.list(response.id).data
    assert item.type == "message"
    kinds = [part.type for part in item.content]
    assert kinds == ["input_text", "input_image", "input_image"]
    assert item.content[2].file_id == uploaded.id  # type: ignore[union-attr]


def test_a_responses_input_image_reaches_the_model_on_later_turns(vision: OpenAI) -> None:
    first = vision.responses.create(
        model=VISION,
        input=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_image",
                        "image_url": data_url(picture(5, 7, GREEN)),
                        "detail": "auto",
                    }
                ],
            }
        ],
    )
    assert described(first.output_text)["last"] == "5x7"
    second = vision.responses.create(model=VISION, previous_response_id=first.id, input="And now?")
    facts = described(second.output_text)
    assert facts["images"] == "1" and facts["centre"] == "#11aa44"


@pytest.mark.parametrize(
    ("part", "param", "code"),
    [
        (
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}},
            "messages[0].content[1].image_url",
            "invalid_image_url",
        ),
        (
            {"type": "image_url", "image_url": {"url": data_url(b"plain text", "image/png")}},
            "messages[0].content[1].image_url",
            "invalid_image_format",
        ),
        (
            {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}},
            "messages[0].content[1].image_url",
            "invalid_image_url",
        ),
        ({"type": "image_url"}, "messages[0].content[1].image_url", None),
    ],
)
def test_a_bad_image_is_a_400_naming_its_part(
    raw: httpx.Client, part: Any, param: str, code: str | None
) -> None:
    body = {
        "model": VISION,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "see"}, part]}],
    }
    answer = raw.post("/v1/chat/completions", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code


def test_a_missing_file_is_a_400_naming_it(raw: httpx.Client) -> None:
    part = {"type": "input_image", "file_id": "file-nobody", "detail": "auto"}
    answer = raw.post(
        "/v1/responses",
        json={"model": VISION, "input": [{"role": "user", "content": [part]}]},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "input[0].content[0].file_id"


def test_a_text_only_model_refuses_images_naming_the_part(http: httpx.Client) -> None:
    image = data_url(picture(2, 2, ORANGE))
    chat = http.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": image}},
                    ],
                }
            ],
        },
    )
    assert chat.status_code == 400, chat.text
    assert chat.json()["error"]["param"] == "messages[0].content[1]"
    responses = http.post(
        "/v1/responses",
        json={
            "model": MODEL,
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": image, "detail": "auto"},
                    ],
                }
            ],
        },
    )
    assert responses.status_code == 400, responses.text
    assert responses.json()["error"]["param"] == "input[0].content[1]"


def test_a_remote_engine_gets_images_as_data_url_parts() -> None:
    data = picture(2, 2, ORANGE)
    message = Message(
        role="user",
        content=f"look {IMAGE_MARKER} there",
        images=(Image("messages[0].content[1]", data=data, mime="image/png", detail="low"),),
    )
    assert _message(message)["content"] == [
        {"type": "text", "text": "look "},
        {"type": "image_url", "image_url": {"url": data_url(data), "detail": "low"}},
        {"type": "text", "text": " there"},
    ]


# --- computer use: the screenshot of a real Chromium page reaches the vision model ----

pytestmark_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is missing")


@pytest.fixture
def page(browser: Any, site: str) -> Iterator[Any]:
    opened = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    opened.goto(f"{site}/page")
    yield opened
    opened.close()


@pytestmark_chromium
@pytest.mark.parametrize("tool", [PREVIEW, GA], ids=["computer_use_preview", "computer"])
def test_the_screenshot_reaches_a_vision_model(vision: OpenAI, page: Any, tool: Any) -> None:
    toolset = ComputerToolset(PlaywrightComputer(page))
    first = vision.responses.create(model=VISION, input="What colour is the box?", tools=[tool])
    [call] = first.output
    assert call.type == "computer_call" and call.status == "completed"
    if tool is GA:
        assert call.action is None and [a.type for a in call.actions or []] == ["screenshot"]
    else:
        assert call.actions is None and call.action is not None
    answer = vision.responses.create(
        model=VISION,
        previous_response_id=first.id,
        input=[perform_call(toolset, call, page)],
        tools=[tool],
    )
    facts = described(answer.output_text)
    assert facts == {
        "images": "1",
        "last": f"{WIDTH}x{HEIGHT}",
        "mime": "image/png",
        "centre": "#ff8800",
        "corner": "#3366cc",
    }


@pytestmark_chromium
def test_the_ga_tool_keeps_the_safety_check_rule(
    vision: OpenAI, raw: httpx.Client, page: Any, site: str
) -> None:
    toolset = ComputerToolset(PlaywrightComputer(page))
    forced: Any = {"type": "computer"}
    first = vision.responses.create(model=VISION, input="Look", tools=[GA], tool_choice=forced)
    assert first.tool_choice.type == "computer"  # type: ignore[union-attr]
    assert first.tools[0].type == "computer"
    second = vision.responses.create(
        model=VISION,
        previous_response_id=first.id,
        input=[perform_call(toolset, first.output[0], page)],
        tools=[GA],
        tool_choice=forced,
    )
    assert second.output[0].pending_safety_checks == []  # type: ignore[union-attr]
    page.goto(f"{site.replace('127.0.0.1', 'localhost')}/page")
    third = vision.responses.create(
        model=VISION,
        previous_response_id=second.id,
        input=[perform_call(toolset, second.output[0], page)],
        tools=[GA],
        tool_choice=forced,
    )
    call = third.output[0]
    assert call.type == "computer_call"
    [check] = call.pending_safety_checks
    assert check.code == "irrelevant_domain"
    check_unacknowledged_refused(raw, VISION, GA, third.id, perform_call(toolset, call, page))


def test_a_computer_call_gives_exactly_one_of_action_and_actions(raw: httpx.Client) -> None:
    action = {"type": "screenshot"}
    for extra in ({"action": action, "actions": [action]}, {}):
        call = {
            "type": "computer_call",
            "call_id": "call_1",
            "pending_safety_checks": [],
            "status": "completed",
            **extra,
        }
        answer = raw.post("/v1/responses", json={"model": VISION, "input": [call], "tools": [GA]})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == "input[0].action"


def test_a_ga_call_streams_as_one_item(raw: httpx.Client) -> None:
    body = {"model": VISION, "input": "Look", "tools": [GA], "stream": True}
    events = sse_events(raw.post("/v1/responses", json=body))
    check_order(events)
    kinds = [event["type"] for event in events]
    assert kinds == ONE_ITEM, kinds
    assert events[2]["item"]["actions"] == [{"type": "screenshot"}]
    assert "action" not in events[2]["item"]
