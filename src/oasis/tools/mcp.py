"""``{"type": "mcp"}`` tools: remote MCP servers that a request names.

Before the first step, ``prepare`` lists each server's tools (an ``mcp_list_tools`` item;
a listing already in the turn's history is reused instead) and offers the model one
function per allowed tool, named ``<server_label>__<tool>``. It also answers the
approvals the client sent with this turn (``mcp_approval_response``): an approved call
runs now, as an ``mcp_call`` item with ``approval_request_id``; a declined one does not,
and the model reads that it was declined. A call the model makes runs at once when
``require_approval`` says ``never`` for its tool; otherwise it becomes an
``mcp_approval_request`` item and the turn ends there.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from oasis.core.conversation import FunctionTool
from oasis.errors import InvalidRequestError, UnsupportedError
from oasis.ids import new_id
from oasis.tools import mcp_client
from oasis.tools.base import (
    AwaitingClient,
    ConfiguredTool,
    HostedCall,
    ItemAdded,
    ItemDone,
    ItemProgress,
    Offered,
    PrepareEvent,
    ReplayedCall,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from oasis.tools.mcp_sessions import SessionPool
from oasis.tools.outbound import UrlPolicy
from oasis.types import Item

# Items of the client's input that may follow the output they answer (see _this_turn).
_INPUT_TYPES = frozenset(
    {"message", "mcp_approval_response", "function_call_output", "item_reference"}
)


@dataclass(frozen=True)
class ToolFilter:
    """``{tool_names, read_only}``: a tool matches by name, or by its read-only hint."""

    names: frozenset[str] | None = None
    read_only: bool | None = None
    every: bool = False  # ``"never"`` as a filter: every tool matches

    def matches(self, tool: Item) -> bool:
        if self.every:
            return True
        if self.names is not None and tool["name"] in self.names:
            return True
        if self.read_only is not None:
            hint = bool((tool.get("annotations") or {}).get("readOnlyHint"))
            return hint == self.read_only
        return False


@dataclass(frozen=True)
class McpServer:
    """One validated ``mcp`` entry."""

    index: int
    label: str
    server: mcp_client.Server
    allowed: ToolFilter | None  # None: every tool
    always: ToolFilter | None  # calls that need approval (None: none by this rule)
    never: ToolFilter | None  # calls that run directly

    @property
    def param(self) -> str:
        return f"tools[{self.index}].server_url"

    def allows(self, tool: Item) -> bool:
        return self.allowed is None or self.allowed.matches(tool)

    def needs_approval(self, tool: Item) -> bool:
        """The runner's reading of ``require_approval``: ``never`` matches run directly,
        ``always`` matches need approval, and an unmatched tool gets the opposite of the
        one rule given (``always`` when both or neither are given)."""
        if self.never is not None and self.never.matches(tool):
            return False
        if self.always is not None and self.always.matches(tool):
            return True
        return not (self.always is not None and self.never is None)


@dataclass(frozen=True)
class McpFunction:
    """What a function offered to the model runs: one tool of one server."""

    server: McpServer
    tool: Item  # as listed: name, input_schema, description, annotations


def function_name(label: str, tool: str) -> str:
    """The name the model calls an MCP tool by (stable across turns, for replay)."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", f"{label}__{tool}")[:64]


def _filter(value: Any, param: str) -> ToolFilter | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ToolFilter(names=frozenset(str(v) for v in value))
    if not isinstance(value, dict):
        raise InvalidRequestError(f"Invalid value for '{param}'.", param=param)
    names = value.get("tool_names")
    read_only = value.get("read_only")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise InvalidRequestError(
            f"'{param}.tool_names' must be an array of strings.", param=f"{param}.tool_names"
        )
    if read_only is not None and not isinstance(read_only, bool):
        raise InvalidRequestError(
            f"'{param}.read_only' must be a boolean.", param=f"{param}.read_only"
        )
    return ToolFilter(None if names is None else frozenset(names), read_only)


def _approval(value: Any, param: str) -> tuple[ToolFilter | None, ToolFilter | None]:
    """(always, never) from ``require_approval`` (absent means ``always``)."""
    if value is None or value == "always":
        return None, None
    if value == "never":
        return None, ToolFilter(every=True)
    always = _filter(value.get("always"), f"{param}.always")
    never = _filter(value.get("never"), f"{param}.never")
    return always, never


def _echo(index: int, param: Any) -> Item:
    echo: Item = {
        "type": "mcp",
        "server_label": param.server_label,
        "server_url": param.server_url,
        "allowed_tools": param.allowed_tools,
        "require_approval": param.require_approval or "always",
    }
    if param.server_description is not None:
        echo["server_description"] = param.server_description
    # ``headers`` and ``authorization`` are secrets: they are used, never shown.
    return echo


class McpToolKind:
    """Remote MCP servers; see the module docstring."""

    server_side = True
    item_types = frozenset(
        {"mcp_list_tools", "mcp_call", "mcp_approval_request", "mcp_approval_response"}
    )

    def configure(self, params: Sequence[tuple[int, Any]]) -> list[ConfiguredTool]:
        out: list[ConfiguredTool] = []
        labels: set[str] = set()
        for index, param in params:
            where = f"tools[{index}]"
            if param.server_label in labels:
                raise InvalidRequestError(
                    f"Two mcp tools have the server_label '{param.server_label}'.",
                    param=f"{where}.server_label",
                )
            labels.add(param.server_label)
            if param.server_url is None:
                raise UnsupportedError(
                    "Connectors are not supported by this server; give the MCP server's "
                    "`server_url`.",
                    param=f"{where}.connector_id",
                )
            headers = dict(param.headers or {})
            if param.authorization:
                headers["Authorization"] = f"Bearer {param.authorization}"
            always, never = _approval(param.require_approval, f"{where}.require_approval")
            server = McpServer(
                index=index,
                label=param.server_label,
                server=mcp_client.Server(param.server_url, headers),
                allowed=_filter(param.allowed_tools, f"{where}.allowed_tools"),
                always=always,
                never=never,
            )
            out.append(ConfiguredTool("mcp", index, _echo(index, param), None, server))
        return out

    async def check(self, tools: Sequence[ConfiguredTool], urls: UrlPolicy) -> None:
        """Refuse (400) a ``server_url`` the URL policy does not allow."""
        for tool in tools:
            server: McpServer = tool.config
            await urls.check(server.server.url, param=server.param)

    async def prepare(
        self, tools: Sequence[ConfiguredTool], context: ToolContext, choice: Item | None
    ) -> AsyncIterator[PrepareEvent]:
        offered: list[ConfiguredTool] = []
        by_label: dict[str, tuple[ConfiguredTool, list[Item]]] = {}
        for entry in tools:
            server: McpServer = entry.config
            listed = _listed(context.history, server.label)
            if listed is None:
                listed = []
                async for listing in _list(server, context):
                    if isinstance(listing, list):
                        listed = listing
                    else:
                        yield listing
            listed = [tool for tool in listed if server.allows(tool)]
            by_label[server.label] = (entry, listed)
            for tool in listed:
                function = FunctionTool(
                    function_name(server.label, tool["name"]),
                    tool.get("description"),
                    tool.get("input_schema") or {"type": "object", "properties": {}},
                )
                offered.append(
                    ConfiguredTool(
                        "mcp", entry.index, entry.echo, function, McpFunction(server, tool)
                    )
                )
        calls: list[ReplayedCall] = []
        for request, response in _answered(context.history):
            found = by_label.get(request["server_label"])
            if found is None:
                continue  # that server is not in this turn's tools
            entry, listed = found
            chosen = [t for t in listed if t["name"] == request["name"]]
            if not chosen:
                continue  # nor is that tool offered
            name = function_name(request["server_label"], request["name"])
            if not response.get("approve"):
                reason = response.get("reason")
                output = "The user declined this call." + (f" Reason: {reason}" if reason else "")
                calls.append(ReplayedCall(name, request["arguments"], output))
                continue
            result = ""
            target = McpFunction(entry.config, chosen[0])
            async for step in _call(target, request["arguments"], context, request["id"]):
                if isinstance(step, ToolResult):
                    result = step.output
                elif isinstance(step, (ItemAdded, ItemProgress, ItemDone)):
                    yield step  # an approved call's item (an MCP call cites nothing)
            calls.append(ReplayedCall(name, request["arguments"], result))
        yield Offered(offered, calls, _forced(choice, offered), _forced_among(choice, offered))

    async def run(self, call: HostedCall, context: ToolContext) -> AsyncIterator[ToolEvent]:
        function: McpFunction = call.tool.config
        if function.server.needs_approval(function.tool):
            item: Item = {
                "type": "mcp_approval_request",
                "id": new_id("mcpr"),
                "server_label": function.server.label,
                "name": function.tool["name"],
                "arguments": call.arguments,
            }
            yield ItemAdded(item)
            yield ItemDone(item)
            yield AwaitingClient()
            return
        async for event in _call(function, call.arguments, context, None):
            yield event

    def replay(self, item: Item) -> ReplayedCall | None:
        if item.get("type") != "mcp_call":
            return None  # listings, and approvals (answered through prepare), are not calls
        output = item.get("output")
        if output is None:
            output = json.dumps({"error": item.get("error")})
        return ReplayedCall(
            function_name(str(item["server_label"]), str(item["name"])),
            str(item["arguments"]),
            str(output),
        )


def sessions(context: ToolContext) -> SessionPool:
    """The server's pool of open MCP sessions (``services["mcp_sessions"]``)."""
    pool: SessionPool = context.services["mcp_sessions"]
    return pool


def _forced(choice: Item | None, offered: Sequence[ConfiguredTool]) -> str | None:
    """The function a ``{"type": "mcp", "server_label", "name"}`` choice forces; None when
    the server did not offer it (its listing failed, say): the model then chooses."""
    if choice is None or not choice.get("name"):
        return None
    name = function_name(str(choice.get("server_label")), str(choice["name"]))
    return name if any(t.function and t.function.name == name for t in offered) else None


def _forced_among(choice: Item | None, offered: Sequence[ConfiguredTool]) -> frozenset[str]:
    """The functions one of which a ``{"type": "mcp", "server_label"}`` choice without a
    ``name`` forces: every tool that server offers (none when it offered none)."""
    if choice is None or choice.get("name"):
        return frozenset()
    label = choice.get("server_label")
    return frozenset(
        t.function.name
        for t in offered
        if t.function is not None
        and isinstance(t.config, McpFunction)
        and t.config.server.label == label
    )


def _listed(history: Sequence[Item], label: str) -> list[Item] | None:
    """The tools of the latest successful listing of ``label`` in the history, if any."""
    for item in reversed(history):
        if (
            item.get("type") == "mcp_list_tools"
            and item.get("server_label") == label
            and not item.get("error")
        ):
            return list(item.get("tools") or [])
    return None


async def _list(
    server: McpServer, context: ToolContext
) -> AsyncIterator[PrepareEvent | list[Item]]:
    """The ``mcp_list_tools`` item's events, then the tools listed (empty on failure)."""
    item: Item = {
        "type": "mcp_list_tools",
        "id": new_id("mcpl"),
        "server_label": server.label,
        "tools": [],
    }
    yield ItemAdded(item)
    yield ItemProgress("response.mcp_list_tools.in_progress")
    try:
        listed = await sessions(context).list_tools(context.owner, server.server, server.param)
    except mcp_client.McpFailure as exc:
        yield ItemProgress("response.mcp_list_tools.failed")
        yield ItemDone({**item, "error": _error_text(exc.error)})
        yield []
        return
    tools = [
        {
            "name": tool.name,
            "input_schema": tool.input_schema,
            "description": tool.description,
            "annotations": (
                tool.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
                if tool.annotations
                else None
            ),
        }
        for tool in listed
    ]
    shown = [tool for tool in tools if server.allows(tool)]
    yield ItemProgress("response.mcp_list_tools.completed")
    yield ItemDone({**item, "tools": shown})
    yield shown


async def _call(
    function: McpFunction, arguments: str, context: ToolContext, approval: str | None
) -> AsyncIterator[ToolEvent]:
    """One ``mcp_call`` item, start to end, then the result the model reads."""
    server = function.server
    item: Item = {
        "type": "mcp_call",
        "id": new_id("mcp"),
        "server_label": server.label,
        "name": function.tool["name"],
        "arguments": "",
        "status": "in_progress",
        "approval_request_id": approval,
        "output": None,
        "error": None,
    }
    yield ItemAdded(item)
    yield ItemProgress("response.mcp_call.in_progress")
    yield ItemProgress("response.mcp_call_arguments.delta", {"delta": arguments})
    yield ItemProgress("response.mcp_call_arguments.done", {"arguments": arguments})
    item["arguments"] = arguments
    try:
        parsed = json.loads(arguments or "{}")
        if not isinstance(parsed, dict):
            raise ValueError("not an object")
    except ValueError:
        error: Item = {
            "type": "mcp_protocol_error",
            "code": -32602,
            "message": "The call's arguments are not a JSON object.",
        }
        async for event in _failed(item, error):
            yield event
        return
    try:
        output = await sessions(context).call_tool(
            context.owner, server.server, server.param, function.tool["name"], parsed
        )
    except mcp_client.McpFailure as exc:
        async for event in _failed(item, exc.error):
            yield event
        return
    yield ItemProgress("response.mcp_call.completed", item_status="completed")
    yield ItemDone({**item, "status": "completed", "output": output})
    yield ToolResult(output)


async def _failed(item: Item, error: Item) -> AsyncIterator[ToolEvent]:
    yield ItemProgress("response.mcp_call.failed", item_status="failed")
    yield ItemDone({**item, "status": "failed", "error": error})
    yield ToolResult(f"Error: {_error_text(error)}")


def _error_text(error: Item) -> str:
    if error.get("message"):
        return str(error["message"])
    content = error.get("content")
    if isinstance(content, list):
        texts = [str(part.get("text", "")) for part in content if isinstance(part, dict)]
        if any(texts):
            return " ".join(texts)
    return json.dumps(content)


def _answered(history: Sequence[Item]) -> list[tuple[Item, Item]]:
    """(approval request, response) pairs the client answered with this turn's input.

    This turn's input is the trailing run of client-sent items; an approval is answered
    once: one whose call already ran (an ``mcp_call`` with its id) is skipped.
    """
    start = len(history)
    while start > 0 and history[start - 1].get("type") in _INPUT_TYPES:
        if (
            history[start - 1].get("type") == "message"
            and history[start - 1].get("role") == "assistant"
        ):
            break
        start -= 1
    requests = {
        item["id"]: item for item in history[:start] if item.get("type") == "mcp_approval_request"
    }
    done = {item.get("approval_request_id") for item in history if item.get("type") == "mcp_call"}
    pairs: list[tuple[Item, Item]] = []
    for item in history[start:]:
        if item.get("type") != "mcp_approval_response":
            continue
        request = requests.get(item.get("approval_request_id"))
        if request is not None and request["id"] not in done:
            done.add(request["id"])
            pairs.append((request, item))
    return pairs


TOOL = McpToolKind()
