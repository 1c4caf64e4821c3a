"""Helpers shared by the Responses tests: raw SSE parsing and the stream-order checker."""

from __future__ import annotations

import json
from typing import Any

import httpx

MODEL = "smollm2-135m-instruct"
# With temperature 0 the small model answers this in a few tokens and stops by itself.
# Output item types whose schema has no ``status``.
STATUSLESS = frozenset({"mcp_list_tools", "mcp_approval_request"})
SHORT = {"input": "What is 2+2? Answer with a number only.", "temperature": 0}


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    """Parse a raw SSE body: each frame must be ``event: <type>`` + one ``data:`` JSON line."""
    events: list[dict[str, Any]] = []
    for frame in response.text.split("\n\n"):
        if not frame.strip():
            continue
        lines = frame.split("\n")
        assert lines[0].startswith("event: "), frame
        assert lines[1].startswith("data: "), frame
        assert len(lines) == 2, frame
        payload = json.loads(lines[1][len("data: ") :])
        assert payload["type"] == lines[0][len("event: ") :]
        assert "error" not in payload or payload["type"] == "error"
        events.append(payload)
    return events


def check_order(events: list[dict[str, Any]], *, first_seq: int = 0) -> None:
    """The ordering rules of a Responses stream: numbering, pairing, one terminal event last."""
    assert [e["sequence_number"] for e in events] == list(range(first_seq, first_seq + len(events)))
    assert events[0]["type"] == "response.created"
    terminal = {"response.completed", "response.incomplete", "response.failed"}
    assert events[-1]["type"] in terminal
    assert sum(e["type"] in terminal for e in events) == 1
    ids = {e["response"]["id"] for e in events if "response" in e}
    assert len(ids) == 1
    open_items: dict[int, dict[str, Any]] = {}
    open_parts: set[tuple[int, int]] = set()
    done_items: set[int] = set()
    for event in events:
        kind = event["type"]
        if kind == "response.output_item.added":
            index = event["output_index"]
            assert index not in open_items and index not in done_items
            assert index == len(open_items) + len(done_items)
            if event["item"]["type"] not in STATUSLESS:
                assert event["item"]["status"] == "in_progress"
            open_items[index] = event["item"]
        elif kind == "response.content_part.added":
            assert event["output_index"] in open_items
            assert event["part"].get("text", "") == ""
            open_parts.add((event["output_index"], event["content_index"]))
        elif kind in {"response.output_text.delta", "response.reasoning_text.delta"}:
            assert (event["output_index"], event["content_index"]) in open_parts
        elif kind == "response.content_part.done":
            open_parts.remove((event["output_index"], event["content_index"]))
        elif kind == "response.function_call_arguments.delta":
            assert open_items[event["output_index"]]["type"] == "function_call"
        elif kind == "response.output_item.done":
            index = event["output_index"]
            added = open_items.pop(index)
            assert (added["type"], added["id"]) == (event["item"]["type"], event["item"]["id"])
            assert not any(p[0] == index for p in open_parts)
            done_items.add(index)
    assert not open_items and not open_parts
    final = events[-1]["response"]
    assert len(final["output"]) == len(done_items)
