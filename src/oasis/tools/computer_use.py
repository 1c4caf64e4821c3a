"""``computer_use_preview``: the model drives a screen that the client owns.

The model sees one function, ``computer``, whose ``action`` is one of the API's actions
(click, double_click, drag, keypress, move, screenshot, scroll, type, wait), written under a
grammar built from the JSON schema of that union, with coordinates bounded by the tool's
``display_width`` and ``display_height``. Its call becomes a ``computer_call`` item and
the turn ends there (:class:`~oasis.tools.base.AwaitingClient`): the client performs the
action and answers on its next request with a ``computer_call_output`` carrying a
screenshot (and ``acknowledged_safety_checks``), chained by ``previous_response_id`` or
replayed as input. :mod:`oasis.responses.items` checks that answer (its ``call_id`` and
the acknowledgements); on later turns the model reads each call and what came back.

The default models read text only: the screenshot itself is not shown to them. They act
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
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from openai.types.responses.response_computer_tool_call import Action
from pydantic import TypeAdapter, ValidationError

from oasis.core.conversation import FunctionTool
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
    description = (
        f"Act on the user's {display.environment} screen, {display.width}x{display.height} "
        "pixels (x from the left, y from the top). Give one action; the user performs it "
        "and sends back a screenshot of the screen."
    )
    schema = {
        "type": "object",
        "properties": {"action": action_schema(display)},
        "required": ["action"],
        "additionalProperties": False,
    }
    return FunctionTool(FUNCTION_NAME, description, schema, strict=True)


def parse_action(arguments: str, display: Display) -> Item:
    """The action of a call's arguments, checked against the API's types and the screen;
    a ``ValueError`` says what is wrong."""
    try:
        action = json.loads(arguments)["action"]
        parsed = ACTION.validate_python(action)
    except (ValueError, TypeError, KeyError, ValidationError) as exc:
        raise ValueError(f"the arguments are not one computer action ({exc})") from exc
    out: Item = parsed.model_dump(mode="json", exclude_none=True)
    points = out.get("path") or ([out] if "x" in out else [])
    for point in points:
        if not (0 <= point["x"] < display.width and 0 <= point["y"] < display.height):
            raise ValueError(
                f"({point['x']}, {point['y']}) is off the {display.width}x{display.height} screen"
            )
    return out


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


class ComputerUseKind:
    """The ``computer_use_preview`` tool; see the module docstring."""

    # The loop runs its calls like a hosted tool's (the call becomes the kind's own item),
    # but what the call does happens on the client: each one ends the turn.
    server_side = True
    item_types = frozenset({"computer_call", "computer_call_output"})

    def configure(self, params: Sequence[tuple[int, Any]]) -> list[ConfiguredTool]:
        if len(params) > 1:
            raise InvalidRequestError(
                "Only one computer_use_preview tool may be given.",
                param=f"tools[{params[1][0]}]",
            )
        out: list[ConfiguredTool] = []
        for index, param in params:
            display = Display(param.display_width, param.display_height, param.environment)
            echo: Item = {
                "type": "computer_use_preview",
                "display_width": display.width,
                "display_height": display.height,
                "environment": display.environment,
            }
            out.append(
                ConfiguredTool("computer_use_preview", index, echo, _function(display), display)
            )
        return out

    async def run(self, call: HostedCall, context: ToolContext) -> AsyncIterator[ToolEvent]:
        display: Display = call.tool.config
        try:
            action = parse_action(call.arguments, display)
        except ValueError as exc:
            # No item: the model reads what was wrong and tries again next step.
            yield ToolResult(f"Error: {exc}. Call computer again with one valid action.")
            return
        item: Item = {
            "type": "computer_call",
            "id": new_id("cu"),
            "call_id": call.call_id,
            "action": action,
            "pending_safety_checks": safety_checks(context.history),
            "status": "in_progress",
        }
        yield ItemAdded(item)
        yield ItemDone({**item, "status": "completed"})
        yield AwaitingClient()

    def replay(self, item: Item) -> ReplayedCall | ReplayedOutput | None:
        if item.get("type") == "computer_call":
            action = item.get("action")
            if action is None and item.get("actions"):
                action = item["actions"][0]  # a GA ``computer`` call replayed as input
            arguments = json.dumps({"action": action})
            return ReplayedCall(FUNCTION_NAME, arguments, None)
        if item.get("type") == "computer_call_output":
            return ReplayedOutput(str(item["call_id"]), output_text(item))
        return None


TOOL = ComputerUseKind()
