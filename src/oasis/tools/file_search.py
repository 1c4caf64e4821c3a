"""The ``file_search`` hosted tool: the model searches the request's vector stores.

The model calls it as a function taking ``queries``; a run searches every store of the
tool (hybrid search, the tool's ``filters`` and ``ranking_options``), keeps the best
``max_num_results`` chunks, and hands them to the model as passages numbered in the
turn's sources (one number per file, shared with web pages). The ``file_search_call`` item
carries the queries and the results (stored whole; a client sees the results when its
request includes ``file_search_call.results``). Where the answer writes a passage's
``[n]``, the mark leaves the text and a ``file_citation`` sits at its place
(:mod:`oasis.tools.citations`); an answer that cites no file by number gets one
``file_citation`` per file it read, at its end. On later turns the item replays as the
same call and passages. A store that is missing, another
key's or expired fails the item (the response goes on, as with any tool failure).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from oasis.core.conversation import FunctionTool
from oasis.errors import InvalidRequestError, OasisError
from oasis.ids import new_id
from oasis.retrieval.filters import check_filter
from oasis.retrieval.ranking import ranking_of
from oasis.tools.base import (
    Cite,
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
from oasis.types import Item

DEFAULT_RESULTS = 10
# The passages the model reads, in characters: small models have small contexts.
PASSAGE_BUDGET = 6000

_FUNCTION = FunctionTool(
    "file_search",
    "Search the user's uploaded files for passages that answer a question.",
    {
        "type": "object",
        "properties": {
            "queries": {
                "type": "array",
                "items": {"type": "string"},
                "description": "One or more search queries.",
            }
        },
        "required": ["queries"],
    },
)


class FileSearch:
    """The ``file_search`` tool kind (registered in :mod:`oasis.tools.registry`)."""

    server_side = True
    item_types = frozenset({"file_search_call"})

    def configure(self, params: Sequence[tuple[int, Any]]) -> list[ConfiguredTool]:
        configured: list[ConfiguredTool] = []
        for index, param in params:
            where = f"tools[{index}]"
            if not param.vector_store_ids:
                raise InvalidRequestError(
                    f"Invalid value for '{where}.vector_store_ids': name at least one store.",
                    param=f"{where}.vector_store_ids",
                    code="empty_array",
                )
            filters = (
                None if param.filters is None else check_filter(param.filters, f"{where}.filters")
            )
            ranking = ranking_of(param.ranking_options, f"{where}.ranking_options")
            echo: Item = {
                "type": "file_search",
                "vector_store_ids": list(param.vector_store_ids),
                "max_num_results": param.max_num_results,
                "filters": param.filters,
                "ranking_options": param.ranking_options
                or {"ranker": "auto", "score_threshold": 0.0},
            }
            limit = param.max_num_results or DEFAULT_RESULTS
            config = (list(param.vector_store_ids), filters, ranking, limit)
            configured.append(ConfiguredTool("file_search", index, echo, _FUNCTION, config))
        return configured

    async def run(self, call: HostedCall, context: ToolContext) -> AsyncIterator[ToolEvent]:
        store_ids, filters, ranking, limit = call.tool.config
        queries = _queries(call.arguments)
        item: Item = {
            "type": "file_search_call",
            "id": new_id("fs"),
            "status": "in_progress",
            "queries": [],
            "results": None,
        }
        yield ItemAdded(item)
        yield ItemProgress("response.file_search_call.in_progress")
        yield ItemProgress("response.file_search_call.searching", item_status="searching")
        service = context.services["vector_stores"]
        hits: list[Any] = []
        # One wait for indexing, shared by the stores (searched one after another).
        deadline = time.monotonic() + service.search_wait
        try:
            for store_id in store_ids:
                hits += await service.search_store(
                    context.owner,
                    store_id,
                    queries,
                    filters=filters,
                    limit=limit,
                    ranking=ranking,
                    param="tools.vector_store_ids",
                    wait=max(deadline - time.monotonic(), 0.0),
                )
        except OasisError as exc:
            yield ItemDone({**item, "status": "failed", "queries": queries})
            yield ToolResult(f"The search failed: {exc.message}")
            return
        hits = sorted(hits, key=lambda h: -h.score)[:limit]
        yield ItemProgress("response.file_search_call.completed", item_status="completed")
        results = [
            {
                "file_id": h.chunk.file_id,
                "filename": h.chunk.filename,
                "text": h.chunk.text,
                "score": h.score,
                "attributes": h.chunk.attributes or {},
            }
            for h in hits
        ]
        yield ItemDone({**item, "status": "completed", "queries": queries, "results": results})
        numbers = [context.sources.add_file(r["file_id"], r["filename"]) for r in results]
        passages, read = _passages(results, numbers)
        for file_id, filename in read.items():
            yield Cite({"type": "file_citation", "file_id": file_id, "filename": filename})
        yield ToolResult(passages)

    def replay(self, item: Item) -> ReplayedCall | None:
        """The stored call as the model made it, and the passages it read then."""
        arguments = json.dumps({"queries": list(item.get("queries") or [])})
        if item.get("status") != "completed":
            return ReplayedCall(_FUNCTION.name, arguments, "The search failed.")
        results = list(item.get("results") or [])
        passages, _ = _passages(results, _numbers(results))
        return ReplayedCall(_FUNCTION.name, arguments, passages)


def _queries(arguments: str) -> list[str]:
    """The model's queries; a malformed call searches for whatever text it holds."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        value = arguments
    if isinstance(value, dict):
        value = value.get("queries", value.get("query", ""))
    if isinstance(value, str):
        value = [value]
    queries = [str(q).strip() for q in value if str(q).strip()] if isinstance(value, list) else []
    return queries or [arguments.strip() or "*"]


def _numbers(results: list[Item]) -> list[int]:
    """Each result's number when no turn numbers them (a replay): one per file, from 1."""
    files: dict[str, int] = {}
    return [files.setdefault(str(r.get("file_id")), len(files) + 1) for r in results]


def _passages(results: list[Item], numbers: list[int]) -> tuple[str, dict[str, str]]:
    """The text the model reads (from ``file_search_call`` results, each under its
    number), within :data:`PASSAGE_BUDGET`, and the files it quotes."""
    if not results:
        return "No passages in the files matched the search.", {}
    parts = ["Passages from the user's files. Cite a passage by its number, like [1]."]
    read: dict[str, str] = {}
    used = 0
    for number, result in zip(numbers, results, strict=True):
        text = str(result.get("text") or "")[: max(PASSAGE_BUDGET - used, 0)]
        if not text:
            break
        filename = str(result.get("filename") or "")
        parts.append(f"[{number}] {filename}:\n{text}")
        used += len(text)
        read.setdefault(str(result.get("file_id")), filename)
    return "\n\n".join(parts), read


TOOL = FileSearch()
