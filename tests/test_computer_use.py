"""``computer_use_preview`` end to end: a real headless Chromium (Debian's ``chromium``,
driven by Playwright) shows a page the test serves on loopback; the test plays the client
as OpenAI's computer-use sample app does (send the task and the page, perform the
returned action, send back the screenshot, repeat), with the SDK's own ``ComputerToolset``
performing each call, and the strict SDK validating every body. The real default model
acts under the action grammar with a forced ``tool_choice``."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import ComputerToolset, OpenAI
from openai.types.responses import ResponseComputerToolCall

from oasis.responses.items import to_conversation
from oasis.tools.computer_use import Display, parse_action
from oasis.tools.registry import replay_item
from tests.loopback import serving_files
from tests.responses_helpers import MODEL, check_order, sse_events

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/install.sh installs it)"
)

WIDTH, HEIGHT = 640, 480
TOOL: Any = {
    "type": "computer_use_preview",
    "display_width": WIDTH,
    "display_height": HEIGHT,
    "environment": "browser",
}
FORCED: Any = {"type": "computer_use_preview"}
TASK = "Click the Sign up button, then type your name into the name box."
STEPS = 2
# Room for the longest action the grammar allows (a `type` of 200 characters).
BUDGET = 400
# The closing answer's budget: it may stop short (``incomplete``); its shape is the point.
ANSWER = 32
PAGE = b"""<!doctype html><html><head><title>Sign up</title><style>
body { margin: 0; font: 16px sans-serif; height: 2000px }
#go { position: absolute; left: 40px; top: 40px; width: 560px; height: 160px; font-size: 32px }
#name { position: absolute; left: 40px; top: 260px; width: 560px; height: 40px }
</style></head><body>
<button id="go" onclick="document.title = 'Signed up'">Sign up</button>
<input id="name" aria-label="Your name">
<script>
window.seen = [];
for (const kind of ["click", "dblclick", "keydown", "wheel", "mousemove", "input"])
  addEventListener(kind, () => seen.push(kind), true);
</script></body></html>"""
# How the sample app names keys for Playwright (the named keys the action grammar allows).
KEYS = {
    "ENTER": "Enter",
    "ESC": "Escape",
    "TAB": "Tab",
    "SPACE": " ",
    "BACKSPACE": "Backspace",
    "DELETE": "Delete",
    "HOME": "Home",
    "END": "End",
    "PAGEUP": "PageUp",
    "PAGEDOWN": "PageDown",
    "ARROWUP": "ArrowUp",
    "ARROWDOWN": "ArrowDown",
    "ARROWLEFT": "ArrowLeft",
    "ARROWRIGHT": "ArrowRight",
    "CTRL": "Control",
    "ALT": "Alt",
    "SHIFT": "Shift",
    "CMD": "Meta",
}
BUTTONS = {"left": "left", "right": "right", "wheel": "middle"}
# The events of a turn whose output is one item (a computer call), streamed.
ONE_ITEM = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The page, on loopback: its URL (host 127.0.0.1; ``localhost`` reaches it too)."""
    with serving_files({"/": ("text/html", PAGE)}) as url:
        yield f"{url}/"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # The system chromium: Playwright never downloads a browser here.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, site: str) -> Iterator[Any]:
    opened = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    opened.goto(site)
    yield opened
    opened.close()


class PlaywrightComputer:
    """A ``ComputerDriver`` for the SDK's ``ComputerToolset``: the sample app's browser."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def click(self, action: Any) -> None:
        if action.button == "back":
            self.page.go_back()
        elif action.button == "forward":
            self.page.go_forward()
        else:
            self.page.mouse.click(action.x, action.y, button=BUTTONS[action.button])

    def double_click(self, action: Any) -> None:
        self.page.mouse.dblclick(action.x, action.y)

    def drag(self, action: Any) -> None:
        first, *rest = action.path
        self.page.mouse.move(first.x, first.y)
        self.page.mouse.down()
        for point in rest:
            self.page.mouse.move(point.x, point.y)
        self.page.mouse.up()

    def keypress(self, action: Any) -> None:
        for key in action.keys:
            self.page.keyboard.press(KEYS.get(key, key))

    def move(self, action: Any) -> None:
        self.page.mouse.move(action.x, action.y)

    def scroll(self, action: Any) -> None:
        self.page.mouse.move(action.x, action.y)
        self.page.mouse.wheel(action.scroll_x, action.scroll_y)

    def type(self, action: Any) -> None:
        self.page.keyboard.type(action.text)

    def wait(self, action: Any) -> None:
        self.page.wait_for_load_state()

    def screenshot(self) -> Any:
        png = base64.b64encode(self.page.screenshot()).decode()
        return {"type": "computer_screenshot", "image_url": f"data:image/png;base64,{png}"}


def _page_text(page: Any) -> dict[str, Any]:
    """The accessibility text a client gives a text-only model, as a user message."""
    snapshot = page.locator("body").aria_snapshot()
    return {"role": "user", "content": f"The page ({page.url}) shows:\n{snapshot}"}


def _create(client: OpenAI, **body: Any) -> Any:
    if body.get("tool_choice") == "none":
        body.setdefault("max_output_tokens", ANSWER)
    return client.responses.create(
        model=MODEL,
        tools=[TOOL],
        temperature=0,
        **{"max_output_tokens": BUDGET, **body},
    )


def _answered(response: Any) -> None:
    """The client let the model answer: the response is one message."""
    assert response.status in {"completed", "incomplete"}
    assert [item.type for item in response.output] == ["message"]
    assert response.output_text.strip()


def _call(response: Any) -> ResponseComputerToolCall:
    assert response.status == "completed"
    calls = [item for item in response.output if item.type == "computer_call"]
    assert len(calls) == 1 and response.output[-1] is calls[0], response.output
    call: ResponseComputerToolCall = calls[0]
    assert call.status == "completed" and call.id.startswith("cu_")
    assert call.call_id and isinstance(call.pending_safety_checks, list)
    return call


def perform_call(toolset: ComputerToolset, call: ResponseComputerToolCall, page: Any) -> Any:
    """The SDK performs the call on the page; the output, with the page's URL as the
    sample app adds it for browsers."""
    output: Any = toolset.execute(call, approve_safety_checks=lambda _: True)
    output["output"]["current_url"] = page.url
    return output


def check_unacknowledged_refused(
    http: httpx.Client, model: str, tool: Any, previous_id: str, answered: Any
) -> None:
    """The output ``answered`` for the call of ``previous_id``, sent back with its pending
    checks unacknowledged: a 400 naming that field."""
    unacknowledged = {**answered, "acknowledged_safety_checks": []}
    refused = http.post(
        "/v1/responses",
        json={
            "model": model,
            "previous_response_id": previous_id,
            "input": [unacknowledged],
            "tools": [tool],
        },
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "input[0].acknowledged_safety_checks"


def _step(client: OpenAI, toolset: ComputerToolset, page: Any, previous: Any) -> Any:
    """The next (forced) action, once the client has performed ``previous``'s call."""
    return _create(
        client,
        previous_response_id=previous.id,
        input=[perform_call(toolset, _call(previous), page)],
        tool_choice=FORCED,
    )


@pytest.mark.slow
def test_the_model_drives_a_real_browser(client: OpenAI, page: Any) -> None:
    toolset = ComputerToolset(PlaywrightComputer(page))
    response = _create(
        client,
        input=[{"role": "user", "content": TASK}, _page_text(page)],
        tool_choice=FORCED,
    )
    performed: list[str] = []
    for step in range(STEPS + 1):
        if not any(item.type == "computer_call" for item in response.output):
            break
        call = _call(response)
        assert call.action is not None
        performed.append(call.action.type)
        output = perform_call(toolset, call, page)
        if step == 0:
            # The sample app's own spelling of the screenshot.
            output["output"]["type"] = "input_image"
        last = step == STEPS - 1
        response = _create(
            client,
            previous_response_id=response.id,
            input=[output, _page_text(page)],
            tool_choice="none" if last else FORCED,
        )
    assert len(performed) == STEPS, performed
    _answered(response)

    # The chain holds every call and every screenshot sent back, stored whole.
    listed = client.responses.input_items.list(
        response.id, order="asc", include=["computer_call_output.output.image_url"]
    ).data
    kinds = [item.type for item in listed]
    assert kinds.count("computer_call") == STEPS
    assert kinds.count("computer_call_output") == STEPS
    screenshots = [item for item in listed if item.type == "computer_call_output"]
    assert all(
        item.output.type == "computer_screenshot"
        and (item.output.image_url or "").startswith("data:image/png;base64,")
        for item in screenshots
    )
    bare = client.responses.input_items.list(response.id, order="asc").data
    assert all(
        item.output.image_url is None for item in bare if item.type == "computer_call_output"
    )


@pytest.mark.slow
def test_a_computer_call_streams_as_one_item(client: OpenAI, http: httpx.Client, page: Any) -> None:
    body = {
        "model": MODEL,
        "input": [{"role": "user", "content": TASK}, _page_text(page)],
        "tools": [TOOL],
        "tool_choice": FORCED,
        "temperature": 0,
        "max_output_tokens": BUDGET,
        "stream": True,
    }
    response = http.post("/v1/responses", json=body)
    assert response.status_code == 200, response.text
    events = sse_events(response)
    check_order(events)
    kinds = [event["type"] for event in events]
    assert kinds == ONE_ITEM, kinds
    added, done = events[2]["item"], events[3]["item"]
    assert added["type"] == "computer_call" and added["status"] == "in_progress"
    assert added["pending_safety_checks"] == [] and added["call_id"]
    assert done["status"] == "completed"
    assert {k: done[k] for k in ("id", "call_id", "action")} == {
        k: added[k] for k in ("id", "call_id", "action")
    }
    assert events[-1]["response"]["output"] == [done]

    # The SDK's stream helper accepts the same stream, strictly.
    with client.responses.stream(
        model=MODEL,
        input=TASK,
        tools=[TOOL],
        tool_choice=FORCED,
        temperature=0,
        max_output_tokens=BUDGET,
    ) as stream:
        final = stream.get_final_response()
    _call(final)


@pytest.mark.slow
def test_outputs_must_answer_a_call_and_acknowledge_its_checks(
    client: OpenAI, http: httpx.Client, page: Any, site: str
) -> None:
    toolset = ComputerToolset(PlaywrightComputer(page))
    first = _create(client, input=TASK, tool_choice=FORCED)
    call = _call(first)
    assert call.pending_safety_checks == []

    # An output for a call that was never made names its call_id.
    stray = {**perform_call(toolset, call, page), "call_id": "call_nobody_made"}
    for previous in (first.id, None):
        body: dict[str, Any] = {"model": MODEL, "input": [stray], "tools": [TOOL]}
        if previous:
            body["previous_response_id"] = previous
        answer = http.post("/v1/responses", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == "input[0].call_id"

    # Still on the site the run started on: no check.
    second = _step(client, toolset, page, first)
    assert _call(second).pending_safety_checks == []

    # The browser moved to another site: the next call waits for the user's approval.
    page.goto(site.replace("127.0.0.1", "localhost"))
    third = _step(client, toolset, page, second)
    call = _call(third)
    [check] = call.pending_safety_checks
    assert check.code == "irrelevant_domain" and "localhost" in (check.message or "")

    answered = perform_call(toolset, call, page)  # the SDK copies the pending checks
    assert [c["id"] for c in answered["acknowledged_safety_checks"]] == [check.id]
    check_unacknowledged_refused(http, MODEL, TOOL, third.id, answered)
    # Acknowledged once: later calls on that site go ahead without asking again.
    fourth = _create(client, previous_response_id=third.id, input=[answered], tool_choice=FORCED)
    assert _call(fourth).pending_safety_checks == []


@pytest.mark.slow
def test_a_stateless_client_replays_the_whole_history(client: OpenAI, page: Any) -> None:
    """As the SDK's ``ComputerToolset.run`` does: no ``previous_response_id``; every earlier
    output item and every screenshot sent back as input."""
    toolset = ComputerToolset(PlaywrightComputer(page))
    history: list[Any] = [{"role": "user", "content": TASK}]
    response = _create(client, input=history, tool_choice=FORCED, store=False)
    call = _call(response)
    history += [item.to_dict() for item in response.output]
    history.append(perform_call(toolset, call, page))
    _answered(_create(client, input=history, tool_choice="none", store=False))


def test_stored_calls_read_as_the_models_own_calls_and_their_results() -> None:
    """How a later turn shows the model its earlier actions: its call of ``computer``,
    then what the client reported."""
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": TASK}]},
        {
            "type": "computer_call",
            "id": "cu_1",
            "call_id": "call_1",
            "action": {"type": "click", "button": "left", "x": 5, "y": 6},
            "pending_safety_checks": [],
            "status": "completed",
        },
        {
            "type": "computer_call_output",
            "id": "cuo_1",
            "call_id": "call_1",
            "output": {"type": "computer_screenshot", "current_url": "http://example.test/"},
            "status": "completed",
        },
    ]
    messages = to_conversation(None, items, (), replay_item).messages
    assert [m.role for m in messages] == ["user", "assistant", "tool"]
    [call] = messages[1].tool_calls
    assert call.id == "call_1" and call.name == "computer"
    assert '"x": 5' in call.arguments
    assert messages[2].tool_call_id == "call_1"
    assert "http://example.test/" in messages[2].content


def test_an_action_off_the_screen_or_of_no_known_kind_is_refused() -> None:
    """What a model that ignores the grammar (a remote engine's) would be told."""
    display = Display(WIDTH, HEIGHT, "browser")
    move = {"type": "move", "x": WIDTH - 1, "y": 0}
    assert parse_action(json.dumps({"action": move}), display) == move
    for bad in (
        {"action": {**move, "x": WIDTH}},
        {"action": {"type": "drag", "path": [{"x": 1, "y": 1}, {"x": 1, "y": HEIGHT}]}},
        {"action": {"type": "teleport"}},
        {"action": {"type": "click", "x": 1, "y": 1}},
        {},
    ):
        with pytest.raises(ValueError):
            parse_action(json.dumps(bad), display)


def test_a_bad_tool_is_a_400_naming_its_field(http: httpx.Client) -> None:
    two = {"model": MODEL, "input": "hi", "tools": [TOOL, TOOL]}
    answer = http.post("/v1/responses", json=two)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "tools[1]"
    wide = {"model": MODEL, "input": "hi", "tools": [{**TOOL, "display_width": 0}]}
    answer = http.post("/v1/responses", json=wide)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "tools[0].display_width"


# --- the GA ``computer`` tool: batched ``actions``, on the screen of the screenshots ---

GA: Any = {"type": "computer"}
# Room for the longest batch the grammar allows (four actions, each up to a `type` of 200).
GA_BUDGET = 1400


def _ga_call(response: Any) -> ResponseComputerToolCall:
    call = _call(response)
    assert call.action is None and call.actions, call
    return call


@pytest.mark.slow
def test_the_model_drives_a_real_browser_with_the_ga_tool(client: OpenAI, page: Any) -> None:
    toolset = ComputerToolset(PlaywrightComputer(page))
    task = [{"role": "user", "content": TASK}, _page_text(page)]
    # Streamed, through the SDK's own helper: the call is one item, added then done.
    with client.responses.stream(
        model=MODEL,
        input=task,  # type: ignore[arg-type]
        tools=[GA],
        tool_choice=GA,
        temperature=0,
        max_output_tokens=GA_BUDGET,
    ) as stream:
        kinds = [event.type for event in stream]
        first = stream.get_final_response()
    assert kinds == ONE_ITEM, kinds
    assert first.tools[0].type == "computer"
    call = _ga_call(first)
    output = perform_call(toolset, call, page)
    # Once a screenshot came back, coordinates are bounded by its size (the page's).
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[output, _page_text(page)],
        tools=[GA],
        tool_choice=GA,
        temperature=0,
        max_output_tokens=GA_BUDGET,
    )
    for action in _ga_call(second).actions or []:
        points = getattr(action, "path", None) or ([action] if hasattr(action, "x") else [])
        assert all(0 <= p.x < WIDTH and 0 <= p.y < HEIGHT for p in points), action

    # A stateless client replays the whole history, the batched call included.
    history: list[Any] = [*task, *(item.to_dict() for item in first.output), output]
    _answered(
        client.responses.create(
            model=MODEL,
            input=history,
            tools=[GA],
            tool_choice="none",
            temperature=0,
            max_output_tokens=ANSWER,
            store=False,
        )
    )


def test_a_ga_call_replays_as_the_batch_the_model_wrote() -> None:
    actions = [{"type": "click", "button": "left", "x": 5, "y": 6}, {"type": "type", "text": "hi"}]
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": TASK}]},
        {
            "type": "computer_call",
            "id": "cu_1",
            "call_id": "call_1",
            "actions": actions,
            "pending_safety_checks": [],
            "status": "completed",
        },
    ]
    [_, turn] = to_conversation(None, items, (), replay_item).messages
    [call] = turn.tool_calls
    assert call.name == "computer" and json.loads(call.arguments) == {"actions": actions}
