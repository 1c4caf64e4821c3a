"""The agent loop of one Responses turn: generate a step, run the hosted tools it called,
feed their results back, generate again.

The loop stops when the model answers (text, or calls only function tools, which the
client runs: a function call ends the turn), when the output budget
(``max_output_tokens``, shared by all steps) is spent, or when the turn is cancelled
(its task is cancelled; the tool running then is closed with it).

Two rules keep the loop finite:

* A forced ``tool_choice`` (``required``, or one named tool) binds the first step only;
  later steps choose freely (``auto``). Otherwise a forced choice would call forever.
* ``max_tool_calls`` bounds the hosted calls run in this response (``MAX_HOSTED_CALLS``
  when the request sets none). Calls past the budget are not run and get no item; the
  next step is asked to answer: only function tools stay callable (``allowed_tools``, so
  the prompt is unchanged and its cached prefix still serves), or none when there are
  no function tools.

Hosted calls of a step run one after the other, in the order the model made them. A
step that also calls function tools runs its hosted calls and then ends the turn; so does
a hosted call that waits on the client (an MCP approval request).

Before the first step, kinds that offer their functions only at run time (``mcp``) run
their ``prepare`` (:class:`~oasis.tools.base.PreparingKind`): their items come first in
the output, and the first step's prompt is prepared again with the functions they offer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from oasis.core.conversation import ToolCall
from oasis.core.events import Finished, ToolCallArgumentsDelta, ToolCallDone, ToolCallStarted
from oasis.core.options import GenerationOptions
from oasis.core.types import SamplingParams
from oasis.ids import new_id
from oasis.responses.events import ResponseBuilder
from oasis.services.generation import GenerationCore, PreparedPrompt
from oasis.tools.base import (
    AwaitingClient,
    ConfiguredTool,
    HostedCall,
    Offered,
    PreparingKind,
    ReplayedCall,
    ToolContext,
    ToolResult,
)
from oasis.tools.registry import get_tool
from oasis.types import Item

MAX_HOSTED_CALLS = 32

# The prompt for the given extra items (each step's calls and their results).
Prepare = Callable[[list[Item], GenerationOptions], Awaitable[PreparedPrompt]]


@dataclass
class LoopState:
    """What a turn's loop needs beyond its builder, and what it leaves for the end."""

    core: GenerationCore
    prompt: PreparedPrompt  # the first step's, prepared while validating the request
    params: SamplingParams
    options: GenerationOptions
    prepare: Prepare
    hosted: dict[str, ConfiguredTool]  # by the function name the model calls them with
    context: ToolContext
    max_output_tokens: int | None
    max_hosted_calls: int = MAX_HOSTED_CALLS
    hosted_calls: int = 0
    extra: list[Item] = field(default_factory=list)
    incomplete_reason: str | None = None
    tools: list[ConfiguredTool] = field(default_factory=list)  # every configured entry
    choice: Item | str | None = None  # the request's tool_choice, as given
    awaiting: bool = False  # a hosted call waits on the client: the turn ends


async def _prepare_tools(state: LoopState, builder: ResponseBuilder) -> AsyncIterator[Any]:
    """Run each preparing kind's ``prepare``; then offer its functions (see the module
    docstring). Nothing changes when no configured entry waits for it."""
    deferred: dict[str, list[ConfiguredTool]] = {}
    for tool in state.tools:
        if tool.function is None:
            deferred.setdefault(tool.type, []).append(tool)
    if not deferred:
        return
    offered: list[ConfiguredTool] = []
    forced: str | None = None
    among: frozenset[str] = frozenset()
    for type_, entries in deferred.items():
        kind = get_tool(type_)
        assert kind is not None and hasattr(kind, "prepare")  # configured through the registry
        preparing: PreparingKind = kind  # type: ignore[assignment]
        named = state.choice if isinstance(state.choice, dict) else None
        choice = named if named and named.get("type") == type_ else None
        async for event in preparing.prepare(entries, state.context, choice):
            if isinstance(event, Offered):
                offered += event.tools
                forced = forced or event.choice
                among |= event.among
                for call in event.calls:
                    state.extra += _read_call(call, new_id("call"))
            else:
                for out in builder.hosted(event):
                    yield out
    options = state.options
    names = {t.name for t in options.tools}
    functions = list(options.tools)
    for tool in offered:
        assert tool.function is not None
        if tool.function.name in names:
            continue  # the request's own tool of that name wins
        names.add(tool.function.name)
        functions.append(tool.function)
        state.hosted[tool.function.name] = tool
    first = options.tool_choice
    if state.choice == "required" and functions:
        first = "required"  # held back while nothing was offered yet
    state.options = replace(options, tools=tuple(functions), tool_choice=forced or first)
    first_options = state.options
    if forced is None and among:
        # One of these functions must be called; like any forced choice, on the first
        # step only (later steps build on ``state.options``, which does not narrow).
        first_options = replace(state.options, tool_choice="required", allowed_tools=among)
    state.prompt = await state.prepare(state.extra, first_options)
    state.params = replace(
        state.params,
        max_tokens=state.core.max_new_tokens(state.prompt, state.max_output_tokens),
    )


def _read_call(call: ReplayedCall, call_id: str) -> list[Item]:
    """A call and its result, as the model reads them next step."""
    return [
        {
            "type": "function_call",
            "call_id": call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call_id, "output": call.output},
    ]


async def run_steps(state: LoopState, builder: ResponseBuilder) -> AsyncIterator[Any]:
    """Stream the events of every step; afterwards ``builder.end`` ends the response."""
    async for out in _prepare_tools(state, builder):
        yield out
    prompt, params, options = state.prompt, state.params, state.options
    if state.hosted and state.max_hosted_calls <= 0:
        # No hosted call may run at all: even the first step must not call one.
        options = _next_options(state, first=True)
        prompt = await state.prepare([], options)
        params = replace(
            params, max_tokens=state.core.max_new_tokens(prompt, state.max_output_tokens)
        )
    spent = 0
    while True:
        builder.begin_step()
        hosted_indexes: set[int] = set()
        finished: Finished | None = None
        # Queued now; closed however the step ends, so a client that hangs up (or a step
        # that fails) stops its engine job at once.
        stream = state.core.generate(prompt, params)
        try:
            async for event in stream:
                if isinstance(event, Finished):
                    finished = event
                elif isinstance(event, ToolCallStarted) and event.name in state.hosted:
                    hosted_indexes.add(event.index)
                elif isinstance(event, (ToolCallArgumentsDelta, ToolCallDone)) and (
                    event.index in hosted_indexes
                ):
                    continue  # a hosted call gets its own item once it runs
                else:
                    for out in builder.feed(event):
                        yield out
        finally:
            await stream.aclose()
        assert finished is not None
        calls = list(enumerate(finished.tool_calls))
        hosted = [call for _, call in calls if call.name in state.hosted]
        client = [(i, call) for i, call in calls if call.name not in state.hosted]
        for out in builder.finish_step(finished, client):
            yield out
        spent += finished.completion_tokens
        if finished.finish_reason == "length":
            state.incomplete_reason = "max_output_tokens"
            return
        if not hosted:
            return
        for call in hosted:
            if state.hosted_calls >= state.max_hosted_calls:
                break  # past max_tool_calls: not run (the next step is asked to answer)
            state.hosted_calls += 1
            async for out in _run_call(state, builder, call):
                yield out
        if client or state.awaiting:
            return  # the client runs (or approves) calls: the turn ends here
        options = _next_options(state)
        prompt = await state.prepare(state.extra, options)
        left = None if state.max_output_tokens is None else state.max_output_tokens - spent
        if left is not None and left <= 0:
            state.incomplete_reason = "max_output_tokens"
            return
        params = replace(params, max_tokens=state.core.max_new_tokens(prompt, left))


async def _run_call(
    state: LoopState, builder: ResponseBuilder, call: ToolCall
) -> AsyncIterator[Any]:
    tool = state.hosted[call.name]
    kind_call = HostedCall(call_id=call.id, arguments=call.arguments, tool=tool)
    kind = get_tool(tool.type)
    assert kind is not None  # configured through the registry
    result: str | None = None
    async for event in kind.run(kind_call, state.context):
        if isinstance(event, ToolResult):
            result = event.output
        elif isinstance(event, AwaitingClient):
            state.awaiting = True
            return  # no result yet: the model reads this call on a later turn, if it ran
        else:
            for out in builder.hosted(event):
                yield out
    # What the model reads next step: its call, and the tool's answer to it.
    state.extra += _read_call(ReplayedCall(call.name, call.arguments, result or ""), call.id)


def _next_options(state: LoopState, *, first: bool = False) -> GenerationOptions:
    """The options of the next step (see the module docstring)."""
    options = state.options
    choice = options.tool_choice
    if choice in state.hosted or (not first and choice not in {"none", "auto"}):
        choice = "auto"
    allowed = options.allowed_tools
    if state.hosted_calls >= state.max_hosted_calls:
        functions = frozenset(t.name for t in options.tools if t.name not in state.hosted)
        if allowed is not None:
            functions &= allowed
        if not functions:
            return replace(options, tool_choice="none", allowed_tools=None)
        if choice in functions:
            return replace(options, tool_choice=choice, allowed_tools=None)
        return replace(options, tool_choice="auto", allowed_tools=functions)
    if allowed is not None and choice == "none":
        allowed = None
    return replace(options, tool_choice=choice, allowed_tools=allowed)
