"""A tool plugin for the agent-loop tests, loaded by a test server through the
``tool_plugins`` setting: it registers itself with ``register_tool`` as any plugin would.

``web_search_preview`` here is a stand-in search that answers from a fixed table (the
loop is under test, not search) and replays its stored items to the model on later turns;
``code_interpreter`` fails after adding its item, which is how a tool's own bug looks to
the server.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any

from oasis.core.conversation import FunctionTool
from oasis.tools.base import (
    ConfiguredTool,
    HostedCall,
    ItemAdded,
    ItemDone,
    ItemProgress,
    ReplayedCall,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from oasis.tools.registry import register_tool
from oasis.types import Item

ANSWER = "Paris is the capital of France."


class FakeSearch:
    server_side = True
    item_types = frozenset({"web_search_call"})

    def configure(self, params: Sequence[tuple[int, Any]]) -> list[ConfiguredTool]:
        function = FunctionTool(
            "web_search",
            "Search the web.",
            {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        )
        return [
            ConfiguredTool(param.type, index, {"type": param.type}, function)
            for index, param in params
        ]

    async def run(self, call: HostedCall, context: ToolContext) -> AsyncIterator[ToolEvent]:
        query = str(json.loads(call.arguments).get("query", ""))
        item = {
            "type": "web_search_call",
            "id": f"ws_{secrets.token_hex(8)}",
            "status": "in_progress",
            "action": {"type": "search", "query": query},
        }
        yield ItemAdded(item)
        yield ItemProgress("response.web_search_call.in_progress")
        yield ItemProgress("response.web_search_call.searching", item_status="searching")
        yield ItemProgress("response.web_search_call.completed", item_status="completed")
        yield ItemDone({**item, "status": "completed", "action": {**item["action"], "sources": []}})
        yield ToolResult(ANSWER)

    def replay(self, item: Item) -> ReplayedCall | None:
        action = item.get("action") or {}
        if action.get("type") != "search":
            return None
        return ReplayedCall("web_search", json.dumps({"query": action.get("query", "")}), ANSWER)


class BrokenInterpreter:
    server_side = True
    item_types = frozenset({"code_interpreter_call"})

    def configure(self, params: Sequence[tuple[int, Any]]) -> list[ConfiguredTool]:
        function = FunctionTool(
            "python",
            "Run Python code.",
            {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
        )
        return [
            ConfiguredTool(
                "code_interpreter",
                index,
                {"type": "code_interpreter", "container": param.container},
                function,
            )
            for index, param in params
        ]

    async def run(self, call: HostedCall, context: ToolContext) -> AsyncIterator[ToolEvent]:
        yield ItemAdded(
            {
                "type": "code_interpreter_call",
                "id": f"ci_{secrets.token_hex(8)}",
                "status": "in_progress",
                "code": "",
                "container_id": "cntr_test",
                "outputs": None,
            }
        )
        raise RuntimeError("the interpreter crashed")

    def replay(self, item: Item) -> ReplayedCall | None:
        return None


register_tool("web_search_preview", FakeSearch())
register_tool("code_interpreter", BrokenInterpreter())
