"""Emitters, one per kind of output item: each turns what it is told into the item's
stream events. They hold the state of their open item; the numbering of events and the
output list belong to :class:`~oasis.responses.events.ResponseBuilder` (through
:class:`Items`), which closes one item before the next one opens, whatever its kind.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

from oasis.core.events import TextDelta
from oasis.core.types import GeneratedToken
from oasis.ids import new_id
from oasis.services.outputs import token_logprob
from oasis.tools.base import ItemAdded, ItemDone, ItemProgress
from oasis.tools.citations import Citation, CitationScanner, Sources
from oasis.types import Item


class Items(Protocol):
    """What emitters need of the builder."""

    output: list[Item]

    def event(self, payload: Item) -> Any:
        """A stream event with the next sequence number."""
        ...

    def add_item(self, item: Item) -> Any:
        """Append ``item`` to the output: ``response.output_item.added``."""
        ...

    def close_open(self) -> list[Any]:
        """Close whichever item is open, before another opens."""
        ...


def output_logprob(token: GeneratedToken) -> Item:
    """One token's logprob entry for ``output_text.logprobs``: the same entry as chat's."""
    return token_logprob(token).model_dump()


def _delta_logprob(entry: Item) -> Item:
    """The delta events' logprob shape: no ``bytes``."""
    return {
        "token": entry["token"],
        "logprob": entry["logprob"],
        "top_logprobs": [
            {"token": t["token"], "logprob": t["logprob"]} for t in entry["top_logprobs"]
        ],
    }


class ContentEmitter:
    """Items with content parts that stream as deltas: ``message`` (output_text, with
    logprobs) and ``reasoning`` (reasoning_text). At most one is open at a time."""

    def __init__(self, items: Items, *, logprobs: bool, sources: Sources | None = None) -> None:
        self.items = items
        self.logprobs = logprobs
        self.open: int | None = None  # output index of the open message/reasoning item
        self.pending_logprobs: list[Item] = []
        # The turn's numbered sources (hosted tools fill it): the open message's [n]
        # marks become url_citation / file_citation annotations as they stream.
        self.sources = sources if sources is not None else Sources()
        self.citations = CitationScanner(self.sources)
        self.file_citations: list[Item] = []  # annotations for the next message to close

    def cite(self, annotation: Item) -> None:
        """Annotate the next message that closes (a hosted tool's citation)."""
        self.file_citations.append(dict(annotation))

    def _cite_files(self, part: Item, common: Item) -> list[Any]:
        """The pending citations of hosted tools added to ``part``. A ``file_citation``
        without an offset is the fallback for a text that cites no file by its mark: it
        sits at the end, and only when no mark was cited."""
        events: list[Any] = []
        marked = any(a.get("type") == "file_citation" for a in part["annotations"])
        for annotation in self.file_citations:
            if annotation.get("type") == "file_citation":
                if marked and "index" not in annotation:
                    continue
                annotation.setdefault("index", len(part["text"]))
            elif annotation.get("type") == "container_file_citation":
                _span_of_filename(annotation, part["text"])
            part["annotations"].append(annotation)
            events.append(
                self.items.event(
                    {
                        "type": "response.output_text.annotation.added",
                        **common,
                        "annotation_index": len(part["annotations"]) - 1,
                        "annotation": copy.deepcopy(annotation),
                    }
                )
            )
        self.file_citations = []
        return events

    def close(self, status: str = "completed") -> list[Any]:
        if self.open is None:
            return []
        events: list[Any] = []
        if self.items.output[self.open]["type"] == "message" and self.citations.held:
            text, found = self.citations.flush()
            events += self._send(text, []) + self._annotate(found)
        index, self.open = self.open, None
        item = self.items.output[index]
        part = item["content"][-1]
        common = {
            "item_id": item["id"],
            "output_index": index,
            "content_index": len(item["content"]) - 1,
        }
        if item["type"] == "message":
            events += self._cite_files(part, common)
            events.append(
                self.items.event(
                    {
                        "type": "response.output_text.done",
                        **common,
                        "text": part["text"],
                        "logprobs": [_delta_logprob(lp) for lp in part["logprobs"]],
                    }
                )
            )
        else:
            events.append(
                self.items.event(
                    {"type": "response.reasoning_text.done", **common, "text": part["text"]}
                )
            )
        events.append(
            self.items.event(
                {"type": "response.content_part.done", **common, "part": copy.deepcopy(part)}
            )
        )
        item["status"] = status
        events.append(
            self.items.event(
                {
                    "type": "response.output_item.done",
                    "output_index": index,
                    "item": copy.deepcopy(item),
                }
            )
        )
        return events

    def open_message(self) -> list[Any]:
        events = self.close()
        item: Item = {
            "type": "message",
            "id": new_id("msg"),
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        events.append(self.items.add_item(item))
        self.citations = CitationScanner(self.sources)
        part: Item = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        item["content"].append(part)
        index = len(self.items.output) - 1
        events.append(
            self.items.event(
                {
                    "type": "response.content_part.added",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "part": copy.deepcopy(part),
                }
            )
        )
        self.open = index
        return events

    def text(self, delta: TextDelta) -> list[Any]:
        entries = [output_logprob(t) for t in delta.tokens] if self.logprobs else []
        if not delta.text:
            self.pending_logprobs += entries
            return []
        events: list[Any] = []
        if self.open is None or self.items.output[self.open]["type"] != "message":
            events += self.open_message()
        assert self.open is not None
        text, found = delta.text, list[Citation]()
        if self.sources:
            # Marks naming a source become annotations; a file's mark leaves the text.
            if not self.citations.held:  # sources may have arrived after the first words
                self.citations.sent = len(self.items.output[self.open]["content"][-1]["text"])
            text, found = self.citations.feed(text)
        events += self._send(text, entries)
        return events + self._annotate(found)

    def _send(self, text: str, entries: list[Item]) -> list[Any]:
        """``output_text.delta`` for ``text`` in the open message (none for no text)."""
        if not text:
            self.pending_logprobs += entries
            return []
        assert self.open is not None
        item = self.items.output[self.open]
        part = item["content"][-1]
        entries = self.pending_logprobs + entries
        self.pending_logprobs = []
        part["text"] += text
        part["logprobs"] += entries
        return [
            self.items.event(
                {
                    "type": "response.output_text.delta",
                    "item_id": item["id"],
                    "output_index": self.open,
                    "content_index": len(item["content"]) - 1,
                    "delta": text,
                    "logprobs": [_delta_logprob(lp) for lp in entries],
                }
            )
        ]

    def _annotate(self, found: list[Citation]) -> list[Any]:
        """``output_text.annotation.added`` for each citation of the open message."""
        if not found:
            return []
        assert self.open is not None
        item = self.items.output[self.open]
        part = item["content"][-1]
        events: list[Any] = []
        for citation in found:
            annotation = citation.response_annotation()
            part["annotations"].append(annotation)
            events.append(
                self.items.event(
                    {
                        "type": "response.output_text.annotation.added",
                        "item_id": item["id"],
                        "output_index": self.open,
                        "content_index": len(item["content"]) - 1,
                        "annotation_index": len(part["annotations"]) - 1,
                        "annotation": dict(annotation),
                    }
                )
            )
        return events

    def reasoning(self, text: str) -> list[Any]:
        if not text:
            return []
        events: list[Any] = []
        if self.open is None or self.items.output[self.open]["type"] != "reasoning":
            events += self.close()
            item: Item = {
                "type": "reasoning",
                "id": new_id("rs"),
                "summary": [],
                "content": [],
                "status": "in_progress",
            }
            events.append(self.items.add_item(item))
            part: Item = {"type": "reasoning_text", "text": ""}
            item["content"].append(part)
            self.open = len(self.items.output) - 1
            events.append(
                self.items.event(
                    {
                        "type": "response.content_part.added",
                        "item_id": item["id"],
                        "output_index": self.open,
                        "content_index": 0,
                        "part": copy.deepcopy(part),
                    }
                )
            )
        assert self.open is not None
        item = self.items.output[self.open]
        item["content"][-1]["text"] += text
        events.append(
            self.items.event(
                {
                    "type": "response.reasoning_text.delta",
                    "item_id": item["id"],
                    "output_index": self.open,
                    "content_index": len(item["content"]) - 1,
                    "delta": text,
                }
            )
        )
        return events


class FunctionCallEmitter:
    """``function_call`` items of one generation step, by the core's call index, and
    ``custom_tool_call`` items (whose ``input`` streams as the arguments would)."""

    def __init__(self, items: Items) -> None:
        self.items = items
        self.calls: dict[int, int] = {}  # core tool-call index -> output index
        self.closed: set[int] = set()  # output indexes of the calls that are done

    def begin_step(self) -> None:
        """Call indexes count from 0 again in each step."""
        self.calls = {}

    def started(self, index: int, call_id: str, name: str, custom: bool = False) -> list[Any]:
        events = self.items.close_open()
        item: Item
        if custom:
            item = {
                "type": "custom_tool_call",
                "id": new_id("ctc"),
                "call_id": call_id,
                "name": name,
                "input": "",
                "status": "in_progress",  # beyond the output type; its stored form has it
            }
        else:
            item = {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call_id,
                "name": name,
                "arguments": "",
                "status": "in_progress",
            }
        events.append(self.items.add_item(item))
        self.calls[index] = len(self.items.output) - 1
        return events

    def is_open(self, index: int) -> bool:
        """Whether the call at core ``index`` has an item that is not done yet."""
        return index in self.calls and self.calls[index] not in self.closed

    def written(self, index: int) -> str:
        """What the open call at core ``index`` holds so far (arguments, or input)."""
        item = self.items.output[self.calls[index]]
        return str(item["input" if item["type"] == "custom_tool_call" else "arguments"])

    def delta(self, index: int, delta: str) -> list[Any]:
        if index not in self.calls or not delta:
            return []
        position = self.calls[index]
        item = self.items.output[position]
        custom = item["type"] == "custom_tool_call"
        item["input" if custom else "arguments"] += delta
        kind = "custom_tool_call_input" if custom else "function_call_arguments"
        return [
            self.items.event(
                {
                    "type": f"response.{kind}.delta",
                    "item_id": item["id"],
                    "output_index": position,
                    "delta": delta,
                }
            )
        ]

    def done(self, index: int, arguments: str, status: str = "completed") -> list[Any]:
        """Close the call at core ``index`` with its whole ``arguments`` (a custom call's
        input); ``status`` is what a function call's item says."""
        if index not in self.calls:
            return []
        position = self.calls[index]
        item = self.items.output[position]
        if item["type"] == "custom_tool_call":
            item["input"] = arguments
            done: Item = {"type": "response.custom_tool_call_input.done", "input": arguments}
        else:
            item["arguments"] = arguments
            done = {
                "type": "response.function_call_arguments.done",
                "name": item["name"],
                "arguments": arguments,
            }
        item["status"] = status
        self.closed.add(position)
        return [
            self.items.event({**done, "item_id": item["id"], "output_index": position}),
            self.items.event(
                {
                    "type": "response.output_item.done",
                    "output_index": position,
                    "item": copy.deepcopy(item),
                }
            ),
        ]


class HostedItemEmitter:
    """The item of a hosted tool call, as the tool reports it: opened, moved along (its
    own progress events, such as ``response.web_search_call.searching``), and closed."""

    def __init__(self, items: Items) -> None:
        self.items = items
        self.open: int | None = None

    def emit(self, event: ItemAdded | ItemProgress | ItemDone) -> list[Any]:
        output = self.items.output
        if isinstance(event, ItemAdded):
            events = self.items.close_open()
            events.append(self.items.add_item(dict(event.item)))
            self.open = len(output) - 1
            return events
        if self.open is None:
            raise RuntimeError("a hosted tool reported on an item it did not add")
        position = self.open
        item = output[position]
        if isinstance(event, ItemProgress):
            if event.item_status is not None:
                item["status"] = event.item_status
            payload = {"type": event.type, "item_id": item["id"], "output_index": position}
            return [self.items.event({**payload, **event.fields})]
        output[position] = {**event.item, "id": item["id"]}
        self.open = None
        return [
            self.items.event(
                {
                    "type": "response.output_item.done",
                    "output_index": position,
                    "item": copy.deepcopy(output[position]),
                }
            )
        ]


def _span_of_filename(annotation: Item, text: str) -> None:
    """A container file's citation covers the file's name where the text mentions it (the
    last mention), else sits empty at the end of the text."""
    if "start_index" in annotation:
        return
    name = str(annotation.get("filename") or "")
    at = text.rfind(name) if name else -1
    start, end = (at, at + len(name)) if at >= 0 else (len(text), len(text))
    annotation["start_index"], annotation["end_index"] = start, end
