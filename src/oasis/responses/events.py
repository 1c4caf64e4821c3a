"""Builds a Response as generation events arrive, and the stream events that describe it.

:class:`ResponseBuilder` owns the ``sequence_number`` counter, the output item list and
the response's lifecycle; one emitter per item kind (:mod:`oasis.responses.emitters`)
makes that kind's events. The open item is closed before the next one starts, so every
``*.added`` is paired with its ``*.done``. A turn may run several generation steps (the
agent loop): :meth:`~ResponseBuilder.finish_step` ends a step, :meth:`~ResponseBuilder.end`
(or ``fail`` / ``cancel``) ends the response, with exactly one terminal event.
Non-streamed responses run through the same builder and simply ignore the events.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args

from openai.types.responses import Response, ResponseOutputItem, ResponseStreamEvent
from pydantic import Field, TypeAdapter

from oasis.core.conversation import ToolCall
from oasis.core.events import (
    Finished,
    GenerationEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallDone,
    ToolCallStarted,
)
from oasis.responses.emitters import ContentEmitter, FunctionCallEmitter, HostedItemEmitter
from oasis.responses.include import shown, shown_all
from oasis.tools.base import Cite, ItemAdded, ItemDone, ItemProgress
from oasis.tools.citations import Sources
from oasis.types import Item


def tagged(union: Any) -> TypeAdapter[Any]:
    """A validator of one of the SDK's unions that picks the member by its ``type`` field.

    The SDK marks its unions' discriminator for its own parser only (``PropertyInfo``), so
    pydantic would try every member in turn: some 250 µs for a text delta among the 59
    stream events, where the tagged union takes a few.
    """
    members = get_args(get_args(union)[0])
    tagged_union: Any = Annotated[Union[members], Field(discriminator="type")]  # noqa: UP007
    return TypeAdapter(tagged_union)


STREAM_EVENT = tagged(ResponseStreamEvent)
OUTPUT_ITEM = tagged(ResponseOutputItem)
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


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

    def __init__(
        self, base: Item, *, logprobs: bool = False, include: frozenset[str] = frozenset()
    ) -> None:
        self.base = base
        self.logprobs = logprobs
        self.include = include  # what the client sees of optional item parts
        self.status: str = base.get("status", "in_progress")
        self.output: list[Item] = []
        self.usage: Item | None = None
        self.error: Item | None = None
        self.incomplete_details: Item | None = None
        self.completed_at: int | None = None
        self.seq = 0
        self._step_start = 0  # where the current generation step's output begins
        self.sources = Sources()  # numbered by hosted tools, cited by the answer
        self.content = ContentEmitter(self, logprobs=logprobs, sources=self.sources)
        self.calls = FunctionCallEmitter(self)
        self.hosted_items = HostedItemEmitter(self)

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
        """The validated ``Response``, as the client sees it (see :meth:`event`)."""
        body = self.snapshot()
        return Response.model_validate({**body, "output": shown_all(body["output"], self.include)})

    # -- events -----------------------------------------------------------------------

    def event(self, payload: Item) -> Any:
        """A stream event with the next sequence number (every event gets it here)."""
        payload["sequence_number"] = self.seq
        self.seq += 1
        # Items are kept (and stored) whole; the client sees what its ``include`` asked for.
        # Each is validated as its own type first: inside an event it is one more member of
        # an untagged union (see :func:`tagged`).
        if "item" in payload:
            payload["item"] = OUTPUT_ITEM.validate_python(shown(payload["item"], self.include))
        if "response" in payload:
            body = payload["response"]
            output = [
                OUTPUT_ITEM.validate_python(i) for i in shown_all(body["output"], self.include)
            ]
            payload["response"] = {**body, "output": output}
        return STREAM_EVENT.validate_python(payload)

    def _lifecycle(self, kind: str, *, with_output: bool = False) -> Any:
        return self.event({"type": kind, "response": self.snapshot(with_output=with_output)})

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
            return self.content.text(event)
        if isinstance(event, ReasoningDelta):
            return self.content.reasoning(event.text)
        if isinstance(event, ToolCallStarted):
            return self.calls.started(event.index, event.id, event.name, event.custom)
        if isinstance(event, ToolCallArgumentsDelta):
            return self.calls.delta(event.index, event.delta)
        if isinstance(event, ToolCallDone):
            return self.calls.done(event.index, event.call.arguments)
        return []

    def begin_step(self) -> None:
        """A new generation step starts: its tool-call indexes count from 0 again."""
        self.calls.begin_step()
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
        if finished.text and not streamed_text and not self.calls.calls:
            events += self.content.text(TextDelta(finished.text))
        for index, call in calls:
            if index not in self.calls.calls:
                events += self.calls.started(index, call.id, call.name, call.custom)
                events += self.calls.delta(index, call.arguments)
            if self.calls.is_open(index):
                events += self.calls.done(index, call.arguments)
        truncated = finished.finish_reason == "length"
        for index in list(self.calls.calls):
            if self.calls.is_open(index):
                events += self.calls.done(
                    index, self.calls.written(index), "incomplete" if truncated else "completed"
                )
        events += self.content.close("incomplete" if truncated else "completed")
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
            events += self.content.open_message()
            events += self.content.close()
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

    def hosted(self, event: ItemAdded | ItemProgress | ItemDone | Cite) -> list[Any]:
        """The item of a hosted tool call: opened, moved along, and closed; a citation
        waits for the answer's message."""
        if isinstance(event, Cite):
            self.content.cite(event.annotation)
            return []
        return self.hosted_items.emit(event)

    def fail(self, message: str, code: str = "server_error") -> list[Any]:
        """End with ``response.failed``: the open item stays as generated so far."""
        self.status = "failed"
        self.error = {"code": code, "message": message}
        return [self._lifecycle("response.failed", with_output=True)]

    def cancel(self) -> None:
        """Cancelled: no terminal event; partial output stays."""
        self.status = "cancelled"

    # -- the output list (for the emitters) -------------------------------------------

    def add_item(self, item: Item) -> Any:
        """Append ``item`` to the output: ``response.output_item.added``."""
        self.output.append(item)
        return self.event(
            {
                "type": "response.output_item.added",
                "output_index": len(self.output) - 1,
                "item": copy.deepcopy(item),
            }
        )

    def close_open(self) -> list[Any]:
        """Close the open message or reasoning item before another item opens."""
        return self.content.close()
