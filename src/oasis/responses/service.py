"""The Responses orchestrator: request → context → generation core → stored Response.

A turn's context is the stored context of ``previous_response_id`` (its input items and
output) or the items of ``conversation``, then this request's ``input``. The whole
context is stored as the new response's input items, so a chain of any depth is rebuilt
with one query, and deleting an ancestor never breaks its descendants.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, get_args

import httpx
from openai.types.responses import Response, ToolChoiceTypes
from openai.types.responses.compacted_response import CompactedResponse
from openai.types.responses.input_token_count_response import InputTokenCountResponse

from oasis.caller import UsageEntry, count_usage, record_usage, usage_rows
from oasis.core.conversation import Conversation
from oasis.core.options import GenerationOptions, ResponseFormat
from oasis.core.types import SamplingParams
from oasis.errors import (
    InvalidRequestError,
    NotFoundError,
    OasisError,
    UnsupportedError,
    found,
)
from oasis.ids import new_id
from oasis.responses import compaction
from oasis.responses.events import TERMINAL_EVENTS, ResponseBuilder
from oasis.responses.include import shown_all
from oasis.responses.items import check_call_ids, normalize_input, to_conversation
from oasis.responses.jobs import (
    FINAL_STATUSES,
    INTERRUPTED,
    LEASE,
    BackgroundJobs,
    Event,
    EventLog,
    Job,
)
from oasis.responses.loop import MAX_HOSTED_CALLS, LoopState, run_steps
from oasis.services.generation import GenerationCore, PreparedPrompt
from oasis.services.leases import Leases
from oasis.services.streams import begun, failure_message, guarded
from oasis.store import ItemPage, Store, StoredResponse
from oasis.store.pagination import FIRST_PAGE, PageQuery
from oasis.tools.base import ConfiguredTool, ToolContext
from oasis.tools.outbound import UrlPolicy
from oasis.tools.registry import get_tool, replay_item
from oasis.types import Item
from oasis.wire.base import dump
from oasis.wire.responses import ResponseCreateRequest

log = logging.getLogger(__name__)

# The hosted tool types a ``tool_choice`` may name as ``{"type": ...}`` in a Response.
_CHOICE_TYPES = frozenset(get_args(ToolChoiceTypes.model_fields["type"].annotation))
# How often a running background job writes its snapshot and events to the database.
FLUSH_SECONDS = 0.25
# How often a follower on another replica than the job's reads the event log for more.
FOLLOW_POLL_SECONDS = 0.1
# How long such a follower waits for the terminal event of a job whose row is final.
TERMINAL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Prepared:
    """A request checked and its first prompt ready: what planning a turn starts from."""

    prompt: PreparedPrompt
    context: list[Item]  # inherited items
    new_items: list[Item]  # this request's input, normalized
    echo: Item  # tools, tool_choice and text as the Response shows them
    tools: list[ConfiguredTool]
    options: GenerationOptions


@dataclass
class Turn:
    """A validated request, its context, and the prompt ready to generate."""

    request: ResponseCreateRequest
    owner: str
    prompt: PreparedPrompt
    params: SamplingParams
    builder: ResponseBuilder
    context: list[Item]  # inherited items + this request's input: stored as input items
    new_items: list[Item]
    store: bool
    conversation_id: str | None
    stream: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    job: Job | None = None  # the background job running this turn
    tools: list[ConfiguredTool] = field(default_factory=list)
    options: GenerationOptions = field(default_factory=GenerationOptions)


def _not_found(response_id: str) -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")


def _configure_tools(request: ResponseCreateRequest) -> list[ConfiguredTool]:
    """``tools`` through the registry: each kind checks its own entries; a type no kind
    serves here is a 400 naming ``tools[i].type``."""
    by_type: dict[str, list[tuple[int, Any]]] = {}
    for i, param in enumerate(request.tools or []):
        by_type.setdefault(str(param.type), []).append((i, param))
    configured: list[ConfiguredTool] = []
    for kind_name, entries in by_type.items():
        kind = get_tool(kind_name)
        if kind is None:
            raise UnsupportedError(
                f"Tools of type '{kind_name}' are not supported by this server.",
                param=f"tools[{entries[0][0]}].type",
            )
        configured += kind.configure(entries)
    configured.sort(key=lambda tool: tool.index)
    seen: set[str] = set()
    for tool in configured:
        if tool.function is None:
            continue  # its functions are offered after ``prepare``
        if tool.function.name in seen:
            raise InvalidRequestError(
                f"Two tools are called '{tool.function.name}'.",
                param=f"tools[{tool.index}].name",
            )
        seen.add(tool.function.name)
    return configured


def _fit_tools(configured: list[ConfiguredTool], history: list[Item]) -> list[ConfiguredTool]:
    """Each kind's tools refitted to the conversation, for a kind that defines ``fit``
    (the GA computer tool: its screen is the size of the latest screenshot)."""
    by_type: dict[str, list[ConfiguredTool]] = {}
    for tool in configured:
        by_type.setdefault(tool.type, []).append(tool)
    out: list[ConfiguredTool] = []
    for type_, entries in by_type.items():
        fit = getattr(get_tool(type_), "fit", None)
        out += fit(entries, history) if fit is not None else entries
    return sorted(out, key=lambda tool: tool.index)


def _hosted(tools: list[ConfiguredTool]) -> dict[str, ConfiguredTool]:
    """The hosted tools, by the function name the model calls them with."""
    out: dict[str, ConfiguredTool] = {}
    for tool in tools:
        kind = get_tool(tool.type)
        if kind is not None and kind.server_side and tool.function is not None:
            out[tool.function.name] = tool
    return out


def _tool_choice(
    request: ResponseCreateRequest, configured: list[ConfiguredTool]
) -> tuple[Any, str, frozenset[str] | None]:
    """(echo form, the core's choice, the names ``allowed_tools`` narrows calls to)."""
    choice = request.tool_choice
    if choice is None:
        return "auto", "auto", None
    if isinstance(choice, str):
        return choice, choice, None
    kind = choice.get("type")
    if kind in ("function", "custom"):
        # A named function, or a named custom tool ({"type": "custom", "name": ...}).
        names = {t.function.name for t in configured if t.type == kind and t.function}
        name = choice.get("name")
        if name not in names:
            raise InvalidRequestError(
                f"Tool choice '{name}' is not one of the provided tools.",
                param="tool_choice.name",
                code="invalid_value",
            )
        return {"type": kind, "name": name}, str(name), None
    if kind == "allowed_tools":
        # The core checks the names and the mode, as it does for chat.
        mode = choice.get("mode", "auto")
        allowed = frozenset(
            _allowed_name(t, configured) for t in choice.get("tools") or [] if isinstance(t, dict)
        )
        echo = {"type": "allowed_tools", "mode": mode, "tools": choice.get("tools")}
        return echo, str(mode), allowed
    hosted = [t for t in configured if t.type == kind and t.type != "function"]
    if hosted and hosted[0].function is None:
        return _deferred_choice(choice, hosted), "auto", None
    if hosted and hosted[0].function is not None and set(choice) == {"type"}:
        # A hosted tool by its type ({"type": "web_search_preview"}): call it. A type the
        # API's ToolChoiceTypes lacks ({"type": "web_search"}) echoes as its equivalent.
        echo_choice: Item = {"type": kind}
        if kind not in _CHOICE_TYPES:
            echo_choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": kind}]}
        return echo_choice, hosted[0].function.name, None
    raise UnsupportedError(
        f"tool_choice of type {kind!r} is not supported by this server.", param="tool_choice"
    )


def _deferred_choice(choice: dict[str, Any], entries: list[ConfiguredTool]) -> Item:
    """A choice of a kind whose functions come after ``prepare`` (``{"type": "mcp",
    "server_label", "name"}``): every key but ``name`` must match one entry's echo; the
    loop forces the function once it is offered."""
    for key, value in choice.items():
        if key in {"type", "name"}:
            continue
        if not any(entry.echo.get(key) == value for entry in entries):
            raise InvalidRequestError(
                f"Tool choice {key} {value!r} matches none of the provided tools.",
                param=f"tool_choice.{key}",
                code="invalid_value",
            )
    return {"name": None, **choice}


def _allowed_name(entry: dict[str, Any], configured: list[ConfiguredTool]) -> str:
    """The function name of one ``allowed_tools.tools`` entry (hosted ones by type)."""
    if entry.get("type", "function") not in ("function", "custom"):
        for tool in configured:
            if tool.type == entry.get("type") and tool.function is not None:
                return tool.function.name
    return str(entry.get("name"))


def _text_format(request: ResponseCreateRequest) -> tuple[Item, ResponseFormat]:
    fmt = request.text.format if request.text else None
    verbosity = (request.text.verbosity if request.text else None) or "medium"
    if fmt is None or fmt.type == "text":
        return {"format": {"type": "text"}, "verbosity": verbosity}, ResponseFormat()
    if fmt.type == "json_object":
        return {"format": {"type": "json_object"}, "verbosity": verbosity}, ResponseFormat(
            "json_object"
        )
    echo: Item = {
        "type": "json_schema",
        "name": fmt.name,
        "schema": fmt.schema_,
        "strict": fmt.strict,
    }
    if fmt.description is not None:
        echo["description"] = fmt.description
    core = ResponseFormat("json_schema", fmt.schema_, bool(fmt.strict), fmt.name)
    return {"format": echo, "verbosity": verbosity}, core


def _drop_oldest(conversation: Conversation) -> Conversation | None:
    """Truncation ``auto``: the conversation minus its oldest non-system turn, or None."""
    messages = list(conversation.messages)
    for i, message in enumerate(messages):
        if message.role not in {"system", "developer"}:
            del messages[i]
            # Tool results must not outlive the call they answer.
            while i < len(messages) and messages[i].role == "tool":
                del messages[i]
            if not any(m.role not in {"system", "developer"} for m in messages):
                return None
            return replace(conversation, messages=tuple(messages))
    return None


class ResponsesService:
    """Create, stream, store, chain, retrieve, cancel and replay responses."""

    def __init__(
        self,
        core: GenerationCore,
        store: Store,
        http: httpx.AsyncClient,
        urls: UrlPolicy | None = None,
        tool_services: Mapping[str, Any] | None = None,
        leases: Leases | None = None,
    ) -> None:
        self.core = core
        self.store = store
        self.http = http  # the one client for tools' outbound requests
        self.urls = urls or UrlPolicy()  # where those requests may go
        self.tool_services = dict(tool_services or {})  # what hosted tools may call
        self.jobs = BackgroundJobs(store, leases)

    # -- planning ---------------------------------------------------------------------

    async def _context(self, request: ResponseCreateRequest, owner: str) -> list[Item]:
        if request.previous_response_id and request.conversation is not None:
            raise InvalidRequestError(
                "Mutually exclusive parameters: 'previous_response_id' and 'conversation'. "
                "Ensure you are only providing one of these parameters.",
                param="conversation",
                code="mutually_exclusive_parameters",
            )
        if request.previous_response_id:
            previous = await self.store.responses.get(owner, request.previous_response_id)
            if previous is None:
                raise InvalidRequestError(
                    f"Previous response with id '{request.previous_response_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            return await self.store.responses.context(owner, previous.id)
        conversation_id = request.conversation_id
        if conversation_id is not None:
            if await self.store.conversations.get(owner, conversation_id) is None:
                raise NotFoundError(
                    f"Conversation with id '{conversation_id}' not found.", param="conversation"
                )
            return await self.store.conversations.items(owner, conversation_id)
        return []

    async def _prepare(self, request: ResponseCreateRequest, owner: str) -> Prepared:
        if not request.model:
            raise InvalidRequestError(
                "Missing required parameter: 'model'.",
                param="model",
                code="missing_required_parameter",
            )
        if request.input is None:
            raise InvalidRequestError(
                "Missing required parameter: 'input'.",
                param="input",
                code="missing_required_parameter",
            )
        context = await self._context(request, owner)
        new_items = await normalize_input(
            request.input, lambda item_id: self.store.items.find(owner, item_id)
        )
        check_call_ids(context, new_items)
        configured = _fit_tools(_configure_tools(request), context + new_items)
        await self._check_tools(configured, owner)
        tools = tuple(t.function for t in configured if t.function is not None)
        choice_echo, choice, allowed = _tool_choice(request, configured)
        if choice == "required" and any(t.function is None for t in configured):
            choice = "auto"  # the loop requires a call once the functions are offered
        text_echo, response_format = _text_format(request)
        options = GenerationOptions(
            tools=tools,
            tool_choice=choice,
            allowed_tools=allowed,
            parallel_tool_calls=request.parallel_tool_calls is not False,
            response_format=response_format,
            tools_param="tools[{index}].parameters",
            tool_choice_param="tool_choice",
            response_format_param="text.format.schema",
        )
        prompt = await self._prompt(
            request, context + new_items, options, first_input=len(context), owner=owner
        )
        tools_echo = [t.echo for t in configured]
        echo = {"tools": tools_echo, "tool_choice": choice_echo, "text": text_echo}
        return Prepared(prompt, context, new_items, echo, configured, options)

    async def _check_tools(self, configured: list[ConfiguredTool], owner: str) -> None:
        """The checks a kind makes with the URL policy, and with the caller's own
        resources (``check_access``: a container the key owns); a 400 naming the field."""
        by_type: dict[str, list[ConfiguredTool]] = {}
        for tool in configured:
            by_type.setdefault(tool.type, []).append(tool)
        for type_, entries in by_type.items():
            check = getattr(get_tool(type_), "check", None)
            if check is not None:
                await check(entries, self.urls)
            check_access = getattr(get_tool(type_), "check_access", None)
            if check_access is not None:
                await check_access(entries, owner, self.tool_services)

    async def _prompt(
        self,
        request: ResponseCreateRequest,
        entries: list[Item],
        options: GenerationOptions,
        *,
        first_input: int,
        owner: str,
    ) -> PreparedPrompt:
        """The prompt for ``entries`` (this request's input from ``first_input`` on); with
        truncation ``auto``, the oldest turns go first while it is too long for the model."""
        assert request.model is not None
        conversation: Conversation | None = to_conversation(
            request.instructions, entries, options.tools, replay_item, first_input=first_input
        )
        while True:
            assert conversation is not None
            try:
                return await self.core.prepare(
                    request.model, conversation, options, param="input", owner=owner
                )
            except InvalidRequestError as exc:
                if exc.code != "context_length_exceeded" or request.truncation != "auto":
                    raise
                conversation = _drop_oldest(conversation)
                if conversation is None:
                    raise

    async def _plan(self, request: ResponseCreateRequest, owner: str) -> Turn:
        prepared = await self._prepare(request, owner)
        prompt, context, new_items, echo = (
            prepared.prompt,
            prepared.context,
            prepared.new_items,
            prepared.echo,
        )
        background = bool(request.background)
        reasoning = request.reasoning
        base: Item = {
            "id": new_id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "queued" if background else "in_progress",
            "background": background,
            "model": prompt.model.name,
            "instructions": request.instructions,
            "metadata": request.metadata or {},
            "temperature": 1.0 if request.temperature is None else request.temperature,
            "top_p": 1.0 if request.top_p is None else request.top_p,
            # Not in the SDK's Response type (it keeps unknown fields), but in Open
            # Responses' schema and OpenAI's answers: clients read them back.
            "presence_penalty": request.presence_penalty or 0.0,
            "frequency_penalty": request.frequency_penalty or 0.0,
            "parallel_tool_calls": request.parallel_tool_calls is not False,
            "previous_response_id": request.previous_response_id,
            "conversation": {"id": request.conversation_id} if request.conversation_id else None,
            "max_output_tokens": request.max_output_tokens,
            "max_tool_calls": request.max_tool_calls,
            "reasoning": {
                "effort": reasoning.effort if reasoning else None,
                "summary": reasoning.summary if reasoning else None,
            },
            "service_tier": "default",
            # Background responses are always stored: they are polled.
            "store": request.store is not False or background,
            "top_logprobs": request.top_logprobs or 0,
            "truncation": request.truncation or "disabled",
            "user": request.user,
            "safety_identifier": request.safety_identifier,
            "prompt_cache_key": request.prompt_cache_key,
            **echo,
        }
        params = SamplingParams(
            max_tokens=self.core.max_new_tokens(prompt, request.max_output_tokens),
            temperature=base["temperature"],
            top_p=base["top_p"],
            presence_penalty=base["presence_penalty"],
            frequency_penalty=base["frequency_penalty"],
            top_logprobs=(request.top_logprobs or 0) if request.wants_logprobs else None,
            cache_key=request.prompt_cache_key,
        )
        builder = ResponseBuilder(
            base, logprobs=request.wants_logprobs, include=frozenset(request.include or ())
        )
        return Turn(
            request,
            owner,
            prompt,
            params,
            builder,
            context + new_items,
            new_items,
            bool(base["store"]),
            request.conversation_id,
            stream=bool(request.stream),
            tools=prepared.tools,
            options=prepared.options,
        )

    # -- running ----------------------------------------------------------------------

    async def _generate(self, turn: Turn) -> AsyncIterator[Any]:
        """Stream the events of the turn's agent loop, ending with the terminal one.

        The response is stored before its terminal event is handed out, so a client that
        reads ``response.completed`` can fetch it at once.
        """
        request = turn.request
        entries = turn.context

        first_input = len(entries) - len(turn.new_items)

        async def prepare(extra: list[Item], options: GenerationOptions) -> PreparedPrompt:
            return await self._prompt(
                request, entries + extra, options, first_input=first_input, owner=turn.owner
            )

        state = LoopState(
            core=self.core,
            prompt=turn.prompt,
            params=turn.params,
            options=turn.options,
            prepare=prepare,
            hosted=_hosted(turn.tools),
            context=ToolContext(
                http=self.http,
                owner=turn.owner,
                response_id=turn.builder.id,
                urls=self.urls,
                history=tuple(entries),
                sources=turn.builder.sources,
                services=self.tool_services,
                stream=bool(request.stream),
            ),
            max_output_tokens=request.max_output_tokens,
            max_hosted_calls=(
                MAX_HOSTED_CALLS if request.max_tool_calls is None else request.max_tool_calls
            ),
            tools=turn.tools,
            choice=request.tool_choice,
        )
        async for out in run_steps(state, turn.builder):
            yield out
        events = turn.builder.end(state.incomplete_reason)
        used = _usage_entries(turn)
        stored = await self._persist(turn, used)
        for out in events:
            yield out
        if not turn.request.background:
            for entry in used:
                await record_usage(entry)
        elif stored:
            await count_usage(used)

    async def _persist(self, turn: Turn, used: list[UsageEntry]) -> bool:
        """Store the turn; a background one's usage with it (False: another process
        ended it first, and nothing was stored)."""
        if turn.job is not None:
            # The job's one final write: a cancel or shutdown that comes now waits for it.
            return bool(await turn.job.finish(self._write(turn, used)))
        # Shielded: a client hanging up (which cancels its request) must not cut a write
        # in half; whatever was finished is stored as a whole.
        return await asyncio.shield(self._write(turn, used))

    async def _write(self, turn: Turn, used: list[UsageEntry]) -> bool:
        body = turn.builder.snapshot()
        finished = body["status"] in {"completed", "incomplete"}
        # A failed turn is stored (to be inspected) but is not added to its conversation.
        appended = (
            turn.new_items + turn.builder.output if turn.conversation_id and finished else None
        )
        if turn.request.background:
            # The usage goes in the transaction that ends the job, so it is recorded once
            # with the result, whichever process or replica writes that end.
            return await self.store.responses.finish(
                turn.owner,
                body,
                outputs=turn.builder.output,
                conversation_append=appended,
                usage=usage_rows(used),
            )
        elif turn.store:
            await self.store.responses.insert(
                turn.owner,
                body,
                inputs=turn.context,
                outputs=turn.builder.output,
                stream=turn.stream,
                conversation_append=appended,
            )
        elif appended and turn.conversation_id:
            await self.store.conversations.append(turn.owner, turn.conversation_id, appended)
        return True

    async def create(self, request: ResponseCreateRequest, owner: str) -> Response:
        """A whole response (or, with ``background``, the queued one)."""
        turn = await self._plan(request, owner)
        if request.background:
            queued = turn.builder.response()  # the job may move on before this returns
            await self._start_background(turn)
            return queued
        async for _ in self._generate(turn):
            pass
        return turn.builder.response()

    async def stream(self, request: ResponseCreateRequest, owner: str) -> AsyncIterator[Event]:
        """Validate now (errors stay HTTP errors), then the events as (seq, type, JSON)."""
        turn = await self._plan(request, owner)
        if request.background:
            log_ = await self._start_background(turn)
            return log_.follow()
        head = [_encode(e) for e in turn.builder.created() + turn.builder.in_progress()]
        # The first generation step runs before the HTTP response starts, so an engine
        # that cannot take the request (overloaded, cannot load) is still an HTTP error.
        generation = await begun(self._generate(turn))
        return self._stream(turn, head, generation)

    async def _stream(
        self, turn: Turn, head: list[Event], generation: AsyncIterator[Any]
    ) -> AsyncIterator[Event]:
        async def events() -> AsyncIterator[Event]:
            for event in head:
                yield event
            async for out in generation:
                yield _encode(out)

        async def failed(exc: Exception) -> AsyncIterator[Event]:
            terminal = turn.builder.fail(failure_message(exc))
            await self._persist(turn, [])
            for event in terminal:
                yield _encode(event)

        try:
            async for event in guarded(events(), failed):
                yield event
        finally:
            await generation.aclose()  # type: ignore[attr-defined]

    # -- background -------------------------------------------------------------------

    async def _start_background(self, turn: Turn) -> EventLog:
        events = EventLog()
        for event in turn.builder.created():
            events.append(_encode(event))

        async def start() -> None:
            # Leased before it is stored, so no other replica ever finds it unclaimed.
            await self.jobs.leases.claim(LEASE, turn.builder.id)
            try:
                await self.store.responses.insert(
                    turn.owner,
                    turn.builder.snapshot(),
                    inputs=turn.context,
                    stream=turn.stream,
                    request=turn.request.model_dump(mode="json", exclude_unset=True, by_alias=True),
                )
            except BaseException:
                await self.jobs.leases.release(LEASE, turn.builder.id)
                raise
            if turn.stream:
                await self.jobs.flush(turn.builder.id, events)
            self.jobs.start(turn.builder.id, events, lambda job: self._run_background(turn, job))

        # Shielded: a client that hangs up mid-way must not leave a row `queued` forever
        # with no job behind it. Once stored, the job runs whether or not anyone waits.
        await asyncio.shield(start())
        return events

    async def _run_background(self, turn: Turn, job: Job) -> None:
        builder = turn.builder
        events = job.log
        turn.job = job
        last_flush = time.monotonic()

        async def flush(snapshot: bool = True) -> bool:
            """Write new events (and the snapshot); False if the row is no longer running."""
            nonlocal last_flush
            last_flush = time.monotonic()
            if turn.stream:
                await self.jobs.flush(builder.id, events)
            if snapshot:
                return await self.store.responses.update_snapshot(turn.owner, builder.snapshot())
            return True

        async def end(terminal: list[Any]) -> None:
            """The final write of a job that did not get to finish its generation."""
            for event in terminal:
                events.append(_encode(event))
            await job.finish(
                self.store.responses.finish(turn.owner, builder.snapshot(), outputs=builder.output)
            )
            await flush(snapshot=False)

        try:
            for event in builder.in_progress():
                events.append(_encode(event))
            if not await flush():
                return  # cancelled or deleted before it started
            try:
                async for event in self._generate(turn):
                    encoded = _encode(event)
                    events.append(encoded)
                    if encoded[1] in TERMINAL_EVENTS:
                        await flush(snapshot=False)  # _generate stored the final state
                    elif time.monotonic() - last_flush > FLUSH_SECONDS:
                        await flush()
            except OasisError as exc:
                await end(builder.fail(exc.message))
        except asyncio.CancelledError:
            if job.finishing:
                # Cut from outside (the event loop closing) during the final write, which
                # goes on under its shield.
                return
            if job.stop_reason == "cancel":
                builder.cancel()
                await end([])
            elif job.stop_reason == "lost":
                await end(builder.fail(INTERRUPTED))
            else:
                await end(builder.fail("The server shut down before this response finished."))
        except Exception:
            log.exception("background response %s failed", builder.id)
            if not job.finishing:
                await end(builder.fail("The server had an error while generating the response."))
        finally:
            events.close()

    # -- stored responses -------------------------------------------------------------

    async def _stored(self, response_id: str, owner: str) -> StoredResponse:
        """The owner's stored response, or the 404 naming it."""
        return found(await self.store.responses.get(owner, response_id), _not_found(response_id))

    async def retrieve(
        self, response_id: str, owner: str, include: Collection[str] = ()
    ) -> Response:
        stored = await self._stored(response_id, owner)
        body = stored.body
        return Response.model_validate({**body, "output": shown_all(body["output"], include)})

    async def replay(self, response_id: str, owner: str, after: int | None) -> AsyncIterator[Event]:
        """``GET ?stream=true``: the stored event log after ``after``, then live events."""
        stored = await self._stored(response_id, owner)
        if not (stored.background and stored.stream):
            raise InvalidRequestError(
                "This response cannot be streamed because it was not created with "
                "background=true and stream=true.",
                param="stream",
                code="invalid_value",
            )
        start = -1 if after is None else after
        live = self.jobs.live(response_id)
        if live is not None:
            return live.follow(start)
        logged = await self.store.events.after(response_id, start)
        if stored.status in FINAL_STATUSES:
            return _iterate(logged)
        return self._follow_log(stored, logged, start)

    async def _follow_log(
        self, stored: StoredResponse, logged: list[Event], after: int
    ) -> AsyncIterator[Event]:
        """The events of a job that another replica runs, read from the durable log as its
        holder writes them, until its end: a terminal event, or a final or deleted row.

        The holder stores the final row just before it logs the terminal event, so a
        final row whose terminal event is not logged yet is read again for a while (a
        cancelled one has none; a holder that died just then never logs it).
        """
        last = after
        grace = asyncio.get_running_loop().time() + TERMINAL_GRACE_SECONDS
        while True:
            for event in logged:
                yield event
                last = event[0]
                if event[1] in TERMINAL_EVENTS:
                    return
            row = await self.store.responses.get(stored.owner, stored.id)
            if row is None or row.status == "cancelled":
                ended = True
            elif row.status in FINAL_STATUSES:
                ended = asyncio.get_running_loop().time() > grace
            else:
                ended = False
                grace = asyncio.get_running_loop().time() + TERMINAL_GRACE_SECONDS
            if not ended:
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
            logged = await self.store.events.after(stored.id, last)
            if ended and not logged:
                return

    async def delete(self, response_id: str, owner: str) -> None:
        stored = await self._stored(response_id, owner)
        if not await self.jobs.cancel(response_id) and stored.status not in FINAL_STATUSES:
            await self.jobs.stop_anywhere(stored)
        await self.store.responses.delete(owner, response_id)

    async def cancel(self, response_id: str, owner: str) -> Response:
        stored = await self._stored(response_id, owner)
        if not stored.background:
            raise InvalidRequestError("Only background responses can be cancelled.")
        if stored.status not in FINAL_STATUSES and not await self.jobs.cancel(response_id):
            # No job of this process runs it: another replica's (asked to stop through its
            # lease), or none (it has not started yet, or its server stopped). The write
            # only changes a row that is still unfinished, so it never rewrites an end that
            # a job recorded meanwhile, and a job that starts later finds it cancelled.
            await self.jobs.stop_anywhere(stored)
        return await self.retrieve(response_id, owner)

    async def input_items(
        self,
        response_id: str,
        owner: str,
        query: PageQuery = FIRST_PAGE,
        include: Collection[str] = (),
    ) -> ItemPage:
        await self._stored(response_id, owner)
        page = await self.store.responses.items(owner, response_id, "input", query)
        return replace(page, data=shown_all(page.data, include))

    async def input_tokens(
        self, request: ResponseCreateRequest, owner: str
    ) -> InputTokenCountResponse:
        """``POST /v1/responses/input_tokens``: the prompt a create would run, counted.

        ``model`` is optional here: without it the count is for the model of the previous
        response, or else the server's default chat model.
        """
        if not request.model:
            model = await self._previous_model(request, owner)
            model = model or self.core.models.default_model("chat")
            request = request.model_copy(update={"model": model})
        prompt = (await self._prepare(request, owner)).prompt
        return InputTokenCountResponse(
            object="response.input_tokens", input_tokens=prompt.prompt_tokens
        )

    async def compact(self, request: ResponseCreateRequest, owner: str) -> CompactedResponse:
        """``POST /v1/responses/compact``: the conversation (``previous_response_id`` and
        ``input``) summarized into one compaction item (:mod:`oasis.responses.compaction`)."""
        if not request.model:
            raise InvalidRequestError(
                "Missing required parameter: 'model'.",
                param="model",
                code="missing_required_parameter",
            )
        context = await self._context(request, owner)
        new_items = await normalize_input(
            request.input, lambda item_id: self.store.items.find(owner, item_id)
        )
        entries = context + new_items
        if not entries:
            raise InvalidRequestError(
                "Nothing to compact: give 'input' or 'previous_response_id'.",
                param="input",
                code="missing_required_parameter",
            )
        conversation = to_conversation(
            request.instructions, entries, (), replay_item, first_input=len(context)
        )
        return await compaction.compact(self.core, request.model, conversation, entries, owner)

    async def _previous_model(self, request: ResponseCreateRequest, owner: str) -> str | None:
        if not request.previous_response_id:
            return None
        previous = await self.store.responses.get(owner, request.previous_response_id)
        if previous is None:
            return None  # _prepare looks it up again and says it is missing
        model = previous.body.get("model")
        return model if isinstance(model, str) and model else None

    async def close(self) -> None:
        await self.jobs.close()


def _usage_entries(turn: Turn) -> list[UsageEntry]:
    """What a finished turn used, as its ``usage`` says, and the calls of each built-in
    tool (``web_search_call`` items counted as ``web_search_calls``, ...)."""
    used = turn.builder.usage or {}
    model = turn.prompt.model.spec.id
    calls = Counter(
        str(item["type"])
        for item in turn.builder.output
        if str(item.get("type", "")).endswith("_call")
        # Functions and custom tools are the client's own, not built-in tools.
        and item.get("type") not in {"function_call", "custom_tool_call"}
    )
    main = UsageEntry(
        "completions",
        model,
        input_tokens=int(used.get("input_tokens", 0)),
        cached_tokens=int(used.get("input_tokens_details", {}).get("cached_tokens", 0)),
        output_tokens=int(used.get("output_tokens", 0)),
        # The calls the server ran (the client performs a computer call's action).
        tool_calls=sum(n for kind, n in calls.items() if kind != "computer_call"),
    )
    tools = [UsageEntry(f"{kind}s", model, tool_calls=n) for kind, n in sorted(calls.items())]
    return [main, *tools]


def _encode(event: Any) -> Event:
    return (event.sequence_number, event.type, dump(event))


async def _iterate(events: list[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event
