"""Builds a Response as generation events arrive, and the stream events that describe it.

:class:`ResponseBuilder` owns the ``sequence_number`` counter and the output item list.
It opens an item when its first content arrives and closes the open item before the next
one starts, so every ``*.added`` is paired with its ``*.done`` in the order of DIGEST
§1.10.5, and every stream ends with exactly one terminal event. Non-streamed responses run
through the same builder and simply ignore the events.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from oasis.core.conversation import ToolCall
from oasis.engines.base import GeneratedToken
from oasis.responses.ids import new_id
from oasis.services.chat import token_logprob
from oasis.services.generation import (
    Finished,
    GenerationEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallDone,
    ToolCallStarted,
)
from oasis.tools.base import ItemAdded, ItemDone, ItemProgress

Item = dict[str, Any]
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


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


def usage(
    input_tokens: int, output_tokens: int, reasoning_tokens: int = 0, cached_tokens: int = 0
) -> Item:
    """``ResponseUsage`` with every detail field the SDK requires."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


class ResponseBuilder:
    """The state of one response while it is generated; see the module docstring."""

    def __init__(self, base: Item, *, logprobs: bool = False) -> None:
        self.base = base
        self.logprobs = logprobs
        self.status: str = base.get("status", "in_progress")
        self.output: list[Item] = []
        self.usage: Item | None = None
        self.error: Item | None = None
        self.incomplete_details: Item | None = None
        self.completed_at: int | None = None
        self.seq = 0
        self._open: int | None = None  # output index of the open message/reasoning item
        self._calls: dict[int, int] = {}  # core tool-call index -> output index
        self._pending_logprobs: list[Item] = []
        self._step_start = 0  # where the current generation step's output begins
        self._hosted: int | None = None  # output index of the open hosted-tool item

    @property
    def id(self) -> str:
        return str(self.base["id"])

    # -- snapshots --------------------------------------------------------------------

    def snapshot(self, *, with_output: bool = True) -> Item:
        """The Response as a JSON-ready dict."""
        body = dict(self.base)
        body.update(
            status=self.status,
            output=copy.deepcopy(self.output) if with_output else [],
            usage=self.usage,
            error=self.error,
            incomplete_details=self.incomplete_details,
            completed_at=self.completed_at,
        )
        return body

    def response(self) -> Response:
        """The validated ``Response``."""
        return Response.model_validate(self.snapshot())

    # -- events -----------------------------------------------------------------------

    def _event(self, payload: Item) -> Any:
        payload["sequence_number"] = self.seq
        self.seq += 1
        return STREAM_EVENT.validate_python(payload)

    def _lifecycle(self, kind: str, *, with_output: bool = False) -> Any:
        return self._event({"type": kind, "response": self.snapshot(with_output=with_output)})

    def created(self) -> list[Any]:
        """``response.created`` (and ``response.queued`` for a queued background response)."""
        events = [self._lifecycle("response.created")]
        if self.status == "queued":
            events.append(self._lifecycle("response.queued"))
        return events

    def in_progress(self) -> list[Any]:
        self.status = "in_progress"
        return [self._lifecycle("response.in_progress")]

    def feed(self, event: GenerationEvent) -> list[Any]:
        """Stream events for one generation event (empty for :class:`Finished`)."""
        if isinstance(event, TextDelta):
            return self._text(event)
        if isinstance(event, ReasoningDelta):
            return self._reasoning(event.text)
        if isinstance(event, ToolCallStarted):
            return self._call_started(event.index, event.id, event.name)
        if isinstance(event, ToolCallArgumentsDelta):
            return self._call_delta(event.index, event.delta)
        if isinstance(event, ToolCallDone):
            return self._call_done(event.index, event.call.name, event.call.arguments)
        return []

    def begin_step(self) -> None:
        """A new generation step starts: its tool-call indexes count from 0 again."""
        self._calls = {}
        self._step_start = len(self.output)

    def finish_step(
        self, finished: Finished, calls: Sequence[tuple[int, ToolCall]] | None = None
    ) -> list[Any]:
        """Close what the step left open and count its usage; the response goes on.

        ``calls`` are the step's calls shown as ``function_call`` items, by the core's
        index (all of ``finished.tool_calls`` by default; hosted calls have their own
        items, added by :meth:`hosted`).
        """
        if calls is None:
            calls = list(enumerate(finished.tool_calls))
        events: list[Any] = []
        streamed_text = any(i["type"] == "message" for i in self.output[self._step_start :])
        if finished.text and not streamed_text and not self._calls:
            events += self._text(TextDelta(finished.text))
        for index, call in calls:
            if index not in self._calls:
                events += self._call_started(index, call.id, call.name)
                events += self._call_delta(index, call.arguments)
            if self.output[self._calls[index]]["status"] == "in_progress":
                events += self._call_done(index, call.name, call.arguments)
        truncated = finished.finish_reason == "length"
        for index, position in self._calls.items():
            if self.output[position]["status"] == "in_progress":
                open_call = self.output[position]
                events += self._call_done(
                    index,
                    open_call["name"],
                    open_call["arguments"],
                    "incomplete" if truncated else "completed",
                )
        events += self._close("incomplete" if truncated else "completed")
        self._count(finished)
        return events

    def _count(self, finished: Finished) -> None:
        step = usage(
            finished.prompt_tokens,
            finished.completion_tokens,
            finished.reasoning_tokens,
            finished.cached_tokens,
        )
        if self.usage is None:
            self.usage = step
            return
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            self.usage[key] += step[key]
        self.usage["input_tokens_details"]["cached_tokens"] += finished.cached_tokens
        self.usage["output_tokens_details"]["reasoning_tokens"] += finished.reasoning_tokens

    def end(self, incomplete_reason: str | None = None) -> list[Any]:
        """End the response: ``response.completed``, or ``response.incomplete`` with
        ``incomplete_reason`` (``max_output_tokens``)."""
        events: list[Any] = []
        if len(self.output) == self._step_start and incomplete_reason is None:
            # The last step said nothing: the answer is an empty message.
            events += self._open_message()
            events += self._close()
        if incomplete_reason is not None:
            self.status = "incomplete"
            self.incomplete_details = {"reason": incomplete_reason}
            events.append(self._lifecycle("response.incomplete", with_output=True))
        else:
            self.status = "completed"
            self.completed_at = int(time.time())
            events.append(self._lifecycle("response.completed", with_output=True))
        return events

    def finish(self, finished: Finished) -> list[Any]:
        """One step that is the whole response: :meth:`finish_step`, then :meth:`end`."""
        truncated = finished.finish_reason == "length"
        return self.finish_step(finished) + self.end("max_output_tokens" if truncated else None)

    # -- hosted tool items ----------------------------------------------------------------

    def hosted(self, event: ItemAdded | ItemProgress | ItemDone) -> list[Any]:
        """The item of a hosted tool call: opened, moved along, and closed."""
        if isinstance(event, ItemAdded):
            events = self._close()
            events.append(self._add_item(dict(event.item)))
            self._hosted = len(self.output) - 1
            return events
        if self._hosted is None:
            raise RuntimeError("a hosted tool reported on an item it did not add")
        position = self._hosted
        item = self.output[position]
        if isinstance(event, ItemProgress):
            if event.item_status is not None:
                item["status"] = event.item_status
            payload = {"type": event.type, "item_id": item["id"], "output_index": position}
            return [self._event({**payload, **event.fields})]
        self.output[position] = {**event.item, "id": item["id"]}
        self._hosted = None
        return [
            self._event(
                {
                    "type": "response.output_item.done",
                    "output_index": position,
                    "item": copy.deepcopy(self.output[position]),
                }
            )
        ]

    def fail(self, message: str, code: str = "server_error") -> list[Any]:
        """End with ``response.failed``: the open item stays as generated so far."""
        self.status = "failed"
        self.error = {"code": code, "message": message}
        return [self._lifecycle("response.failed", with_output=True)]

    def cancel(self) -> None:
        """Cancelled: no terminal event (DIGEST §1.10.2); partial output stays."""
        self.status = "cancelled"

    # -- items ------------------------------------------------------------------------

    def _add_item(self, item: Item) -> Any:
        self.output.append(item)
        return self._event(
            {
                "type": "response.output_item.added",
                "output_index": len(self.output) - 1,
                "item": copy.deepcopy(item),
            }
        )

    def _close(self, status: str = "completed") -> list[Any]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        item = self.output[index]
        part = item["content"][-1]
        events: list[Any] = []
        common = {
            "item_id": item["id"],
            "output_index": index,
            "content_index": len(item["content"]) - 1,
        }
        if item["type"] == "message":
            events.append(
                self._event(
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
                self._event(
                    {"type": "response.reasoning_text.done", **common, "text": part["text"]}
                )
            )
        events.append(
            self._event(
                {"type": "response.content_part.done", **common, "part": copy.deepcopy(part)}
            )
        )
        item["status"] = status
        events.append(
            self._event(
                {
                    "type": "response.output_item.done",
                    "output_index": index,
                    "item": copy.deepcopy(item),
                }
            )
        )
        return events

    def _open_message(self) -> list[Any]:
        events = self._close()
        item: Item = {
            "type": "message",
            "id": new_id("msg"),
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        events.append(self._add_item(item))
        part: Item = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        item["content"].append(part)
        index = len(self.output) - 1
        events.append(
            self._event(
                {
                    "type": "response.content_part.added",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "part": copy.deepcopy(part),
                }
            )
        )
        self._open = index
        return events

    def _text(self, delta: TextDelta) -> list[Any]:
        entries = [output_logprob(t) for t in delta.tokens] if self.logprobs else []
        if not delta.text:
            self._pending_logprobs += entries
            return []
        events: list[Any] = []
        if self._open is None or self.output[self._open]["type"] != "message":
            events += self._open_message()
        assert self._open is not None
        item = self.output[self._open]
        part = item["content"][-1]
        entries = self._pending_logprobs + entries
        self._pending_logprobs = []
        part["text"] += delta.text
        part["logprobs"] += entries
        events.append(
            self._event(
                {
                    "type": "response.output_text.delta",
                    "item_id": item["id"],
                    "output_index": self._open,
                    "content_index": len(item["content"]) - 1,
                    "delta": delta.text,
                    "logprobs": [_delta_logprob(lp) for lp in entries],
                }
            )
        )
        return events

    def _reasoning(self, text: str) -> list[Any]:
        if not text:
            return []
        events: list[Any] = []
        if self._open is None or self.output[self._open]["type"] != "reasoning":
            events += self._close()
            item: Item = {
                "type": "reasoning",
                "id": new_id("rs"),
                "summary": [],
                "content": [],
                "status": "in_progress",
            }
            events.append(self._add_item(item))
            part: Item = {"type": "reasoning_text", "text": ""}
            item["content"].append(part)
            self._open = len(self.output) - 1
            events.append(
                self._event(
                    {
                        "type": "response.content_part.added",
                        "item_id": item["id"],
                        "output_index": self._open,
                        "content_index": 0,
                        "part": copy.deepcopy(part),
                    }
                )
            )
        assert self._open is not None
        item = self.output[self._open]
        item["content"][-1]["text"] += text
        events.append(
            self._event(
                {
                    "type": "response.reasoning_text.delta",
                    "item_id": item["id"],
                    "output_index": self._open,
                    "content_index": len(item["content"]) - 1,
                    "delta": text,
                }
            )
        )
        return events

    def _call_started(self, index: int, call_id: str, name: str) -> list[Any]:
        events = self._close()
        item: Item = {
            "type": "function_call",
            "id": new_id("fc"),
            "call_id": call_id,
            "name": name,
            "arguments": "",
            "status": "in_progress",
        }
        events.append(self._add_item(item))
        self._calls[index] = len(self.output) - 1
        return events

    def _call_delta(self, index: int, delta: str) -> list[Any]:
        if index not in self._calls or not delta:
            return []
        position = self._calls[index]
        item = self.output[position]
        item["arguments"] += delta
        return [
            self._event(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": position,
                    "delta": delta,
                }
            )
        ]

    def _call_done(
        self, index: int, name: str, arguments: str, status: str = "completed"
    ) -> list[Any]:
        if index not in self._calls:
            return []
        position = self._calls[index]
        item = self.output[position]
        item["arguments"] = arguments
        item["status"] = status
        return [
            self._event(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": position,
                    "name": name,
                    "arguments": arguments,
                }
            ),
            self._event(
                {
                    "type": "response.output_item.done",
                    "output_index": position,
                    "item": copy.deepcopy(item),
                }
            ),
        ]
