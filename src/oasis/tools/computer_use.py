"""``computer_use_preview`` and the GA ``computer`` tool: the model drives a screen that the
client owns.

The model sees one function, ``computer``. Under ``computer_use_preview`` its ``action`` is
one of the API's actions (click, double_click, drag, keypress, move, screenshot, scroll,
type, wait); under ``computer`` it gives ``actions``, a batch of them performed in order.
Either is written under a grammar built from the JSON schema of that union, with
coordinates bounded by the screen: the preview tool's ``display_width`` and
``display_height``; for ``computer``, which declares no screen, the size of the latest
screenshot the client sent (:data:`DEFAULT_DISPLAY` before the first). Its call becomes a
``computer_call`` item (``action`` or ``actions``, exactly one of them) and
the turn ends there (:class:`~oasis.tools.base.AwaitingClient`): the client performs the
action and answers on its next request with a ``computer_call_output`` carrying a
screenshot (and ``acknowledged_safety_checks``), chained by ``previous_response_id`` or
replayed as input. :mod:`oasis.responses.items` checks that answer (its ``call_id`` and
the acknowledgements); on later turns the model reads each call and what came back.

A model that reads images (``supports_images``: a llama.cpp model with a multimodal
projector, a remote engine) is shown the latest screenshot itself, after the call's
result. The default models read text only: the screenshot is not shown to them. They act
from the task and whatever page text (an accessibility tree, the page's words) the client
sends as input messages, and from the page URL a browser client reports
(``output.current_url``, as OpenAI's sample app sends it).

Safety checks: when the page a browser client reports moves to another site than the one
the run started on, the next call carries a pending ``irrelevant_domain`` check, which the
client must acknowledge in its ``computer_call_output`` (a 400 otherwise); once the user
has acknowledged it, later calls on that site carry none.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from openai.types.responses.computer_action_list import ComputerActionList
from openai.types.responses.response_computer_tool_call import Action
from pydantic import TypeAdapter, ValidationError

from oasis.core.conversation import FunctionTool, Image
from oasis.core.pictures import from_data_url, picture_size
from oasis.errors import InvalidRequestError
from oasis.ids import new_id
from oasis.tools.base import (
    AwaitingClient,
    ConfiguredTool,
    HostedCall,
    ItemAdded,
    ItemDone,
    ReplayedCall,
    ReplayedOutput,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from oasis.types import Item

FUNCTION_NAME = "computer"
ACTION: TypeAdapter[Any] = TypeAdapter(Action)
ACTIONS: TypeAdapter[Any] = TypeAdapter(ComputerActionList)
# The most actions the GA tool's model may batch into one call.
MAX_ACTIONS = 4
BUTTONS = ["left", "right", "wheel", "back", "forward"]
# Bounds that keep a small model from writing without end inside a string or a list.
MAX_TEXT = 200
MAX_KEYS = 4
MAX_PATH = 8
MAX_SCROLL = 2000
# Keys a keypress may name, spelled as OpenAI's computer-use models spell them; besides
# these, any single printable character.
NAMED_KEYS = (
    *("ENTER", "ESC", "TAB", "SPACE", "BACKSPACE", "DELETE", "HOME", "END"),
    *("PAGEUP", "PAGEDOWN", "ARROWUP", "ARROWDOWN", "ARROWLEFT", "ARROWRIGHT"),
    *("CTRL", "ALT", "SHIFT", "CMD"),
)
KEY_PATTERN = "^(?:[!-~]|" + "|".join(NAMED_KEYS) + ")$"


@dataclass(frozen=True)
class Display:
    """One configured computer: its screen in screenshot pixels, and its kind."""

    width: int
    height: int
    environment: str
    batched: bool = False  # the GA ``computer`` tool: ``actions``, not one ``action``


# The screen the GA tool assumes until the client has sent a screenshot.
DEFAULT_DISPLAY = Display(1024, 768, "browser", batched=True)


def _object(kind: str, **properties: Any) -> Item:
    """The schema of one action: ``type`` first, so the model picks the action first."""
    props: Item = {"type": {"const": kind}, **properties}
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def action_schema(display: Display) -> Item:
    """The JSON schema of one action on ``display`` (the union the model writes under)."""
    x = {"type": "integer", "minimum": 0, "maximum": display.width - 1}
    y = {"type": "integer", "minimum": 0, "maximum": display.height - 1}
    scroll = {"type": "integer", "minimum": -MAX_SCROLL, "maximum": MAX_SCROLL}
    point: Item = {
        "type": "object",
        "properties": {"x": x, "y": y},
        "required": ["x", "y"],
        "additionalProperties": False,
    }
    keys = {
        "type": "array",
        "items": {"type": "string", "pattern": KEY_PATTERN},
        "minItems": 1,
        "maxItems": MAX_KEYS,
    }
    return {
        "anyOf": [
            _object("click", button={"enum": BUTTONS}, x=x, y=y),
            _object("double_click", x=x, y=y),
            _object(
                "drag", path={"type": "array", "items": point, "minItems": 2, "maxItems": MAX_PATH}
            ),
            _object("keypress", keys=keys),
            _object("move", x=x, y=y),
            _object("screenshot"),
            _object("scroll", x=x, y=y, scroll_x=scroll, scroll_y=scroll),
            _object("type", text={"type": "string", "maxLength": MAX_TEXT}),
            _object("wait"),
        ]
    }


def _function(display: Display) -> FunctionTool:
    screen = (
        f"Act on the user's {display.environment} screen, {display.width}x{display.height} "
        "pixels (x from the left, y from the top)."
    )
    if display.batched:
        description = (
            f"{screen} Give the actions to perform, in order; the user performs them and "
            "sends back a screenshot of the screen."
        )
        arguments: Item = {
            "actions": {
                "type": "array",
                "items": action_schema(display),
                "minItems": 1,
                "maxItems": MAX_ACTIONS,
            }
        }
    else:
        description = (
            f"{screen} Give one action; the user performs it and sends back a screenshot "
            "of the screen."
        )
        arguments = {"action": action_schema(display)}
    schema = {
        "type": "object",
        "properties": arguments,
        "required": list(arguments),
        "additionalProperties": False,
    }
    return FunctionTool(FUNCTION_NAME, description, schema, strict=True)


def _on_screen(action: Item, display: Display) -> None:
    points = action.get("path") or ([action] if "x" in action else [])
    for point in points:
        if not (0 <= point["x"] < display.width and 0 <= point["y"] < display.height):
            raise ValueError(
                f"({point['x']}, {point['y']}) is off the {display.width}x{display.height} screen"
            )


def parse_action(arguments: str, display: Display) -> Item:
    """The action of a preview call's arguments, checked against the API's types and the
    screen; a ``ValueError`` says what is wrong."""
    try:
        action = json.loads(arguments)["action"]
        parsed = ACTION.validate_python(action)
    except (ValueError, TypeError, KeyError, ValidationError) as exc:
        raise ValueError(f"the arguments are not one computer action ({exc})") from exc
    out: Item = parsed.model_dump(mode="json", exclude_none=True)
    _on_screen(out, display)
    return out


def parse_actions(arguments: str, display: Display) -> list[Item]:
    """The actions of a GA call's arguments (one or more, performed in order), checked as
    :func:`parse_action` checks one."""
    try:
        actions = json.loads(arguments)["actions"]
        parsed = ACTIONS.validate_python(actions)
    except (ValueError, TypeError, KeyError, ValidationError) as exc:
        raise ValueError(f"the arguments are not a list of computer actions ({exc})") from exc
    if not parsed:
        raise ValueError("the call gives no action")
    out: list[Item] = [a.model_dump(mode="json", exclude_none=True) for a in parsed]
    for action in out:
        _on_screen(action, display)
    return out


def latest_screen(history: Sequence[Item]) -> tuple[int, int] | None:
    """(width, height) of the latest screenshot the client sent as a data URL, if any."""
    for item in reversed(history):
        if item.get("type") != "computer_call_output":
            continue
        url = (item.get("output") or {}).get("image_url")
        data = from_data_url(url) if isinstance(url, str) else None
        size = picture_size(data) if data is not None else None
        if size is not None:
            return size
    return None


def _site(url: Any) -> str | None:
    """The host of a reported page URL (None when there is none)."""
    if not isinstance(url, str) or not url:
        return None
    return urlsplit(url).hostname


def safety_checks(history: Sequence[Item]) -> list[Item]:
    """The pending checks of the next call: ``irrelevant_domain`` when the page the client
    last reported is on another site than the first page it reported, unless the user
    already acknowledged a check raised for that site."""
    first: str | None = None
    current: str | None = None
    raised: dict[str, str] = {}  # check id -> the site it was raised for
    trusted: set[str] = set()
    for item in history:
        if item.get("type") == "computer_call":
            for check in item.get("pending_safety_checks") or []:
                if check.get("code") == "irrelevant_domain" and current is not None:
                    raised[str(check.get("id"))] = current
        elif item.get("type") == "computer_call_output":
            for check in item.get("acknowledged_safety_checks") or []:
                if str(check.get("id")) in raised:
                    trusted.add(raised[str(check.get("id"))])
            site = _site((item.get("output") or {}).get("current_url"))
            if site is not None:
                first = first or site
                current = site
    if current is None or current == first or current in trusted:
        return []
    return [
        {
            "id": new_id("cu_sc"),
            "code": "irrelevant_domain",
            "message": (
                f"The browser is on {current}, not on {first} where this task started. "
                "Check that the next action belongs to the task before performing it."
            ),
        }
    ]


def output_text(item: Item) -> str:
    """How a client's ``computer_call_output`` reads to a text-only model."""
    output = item.get("output") or {}
    text = "The action was performed; the user sent a screenshot of the screen."
    url = output.get("current_url")
    if isinstance(url, str) and url:
        text += f" The browser is at {url}."
    return text


def screenshot(item: Item) -> tuple[Image, ...]:
    """The screenshot of a ``computer_call_output``, for a model that reads images (the
    core leaves it out for one that does not: ``optional``)."""
    output = item.get("output") or {}
    url, file_id = output.get("image_url"), output.get("file_id")
    if not url and not file_id:
        return ()
    return (Image("input", url=url or None, file_id=file_id or None, optional=True),)


class ComputerUseKind:
    """The ``computer_use_preview`` tool; see the module docstring."""

    # The loop runs its calls like a hosted tool's (the call becomes the kind's own item),
    # but what the call does happens on the client: each one ends the turn.
    server_side = True
    item_types = frozenset({"computer_call", "computer_call_output"})
    tool_type = "computer_use_preview"

    def configure(self, params: Sequence[tuple[int, Any]]) -> list[ConfiguredTool]:
        if len(params) > 1:
            raise InvalidRequestError(
                f"Only one {self.tool_type} tool may be given.",
                param=f"tools[{params[1][0]}]",
            )
        return [self._configured(index, self._display(param)) for index, param in params]

    def _display(self, param: Any) -> Display:
        return Display(param.display_width, param.display_height, param.environment)

    def _configured(self, index: int, display: Display) -> ConfiguredTool:
        echo: Item = {
            "type": "computer_use_preview",
            "display_width": display.width,
            "display_height": display.height,
            "environment": display.environment,
        }
        return ConfiguredTool(self.tool_type, index, echo, _function(display), display)

    async def run(self, call: HostedCall, context: ToolContext) -> AsyncIterator[ToolEvent]:
        display: Display = call.tool.config
        item: Item = {"type": "computer_call", "id": new_id("cu"), "call_id": call.call_id}
        try:
            if display.batched:
                item["actions"] = parse_actions(call.arguments, display)
            else:
                item["action"] = parse_action(call.arguments, display)
        except ValueError as exc:
            # No item: the model reads what was wrong and tries again next step.
            yield ToolResult(f"Error: {exc}. Call computer again with valid arguments.")
            return
        item["pending_safety_checks"] = safety_checks(context.history)
        item["status"] = "in_progress"
        yield ItemAdded(item)
        yield ItemDone({**item, "status": "completed"})
        yield AwaitingClient()

    def replay(self, item: Item) -> ReplayedCall | ReplayedOutput | None:
        if item.get("type") == "computer_call":
            # As the model wrote it: one action (preview) or a batch (GA).
            key = "actions" if item.get("actions") is not None else "action"
            return ReplayedCall(FUNCTION_NAME, json.dumps({key: item.get(key)}), None)
        if item.get("type") == "computer_call_output":
            return ReplayedOutput(str(item["call_id"]), output_text(item), screenshot(item))
        return None


class ComputerKind(ComputerUseKind):
    """The GA ``computer`` tool: batched ``actions`` on a screen the size of the latest
    screenshot (see the module docstring)."""

    tool_type = "computer"

    def _display(self, param: Any) -> Display:
        return DEFAULT_DISPLAY

    def _configured(self, index: int, display: Display) -> ConfiguredTool:
        return ConfiguredTool(
            self.tool_type, index, {"type": "computer"}, _function(display), display
        )

    def fit(self, tools: Sequence[ConfiguredTool], history: Sequence[Item]) -> list[ConfiguredTool]:
        """The tools refitted to the screen of the latest screenshot in ``history``."""
        size = latest_screen(history)
        if size is None:
            return list(tools)
        display = replace(DEFAULT_DISPLAY, width=size[0], height=size[1])
        return [self._configured(tool.index, display) for tool in tools]


TOOL = ComputerUseKind()
GA_TOOL = ComputerKind()
