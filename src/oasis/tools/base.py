"""The protocol every kind of tool implements, and the events a hosted tool yields.

A *kind* (``function``, ``web_search``, ``mcp``…) turns the request's ``tools`` entries of
its ``type`` into :class:`ConfiguredTool` s: what the response echoes, and the function
schema the model calls it through. A hosted kind (``server_side``) also runs those calls:
``run`` yields :class:`ToolEvent` s — the output item it adds, its progress events, the item
when done, citations for the answer — and ends with :class:`ToolResult`, the text the
model reads next step, or with :class:`AwaitingClient` when the call waits on the client
(an approval), which ends the turn as a function call does. On later turns the stored item
is shown to the model again through the kind's ``replay`` (a call the client answers,
such as ``computer_call``, replays as the call, and the client's answer as its result).
The Responses builder turns these into stream events, so a tool never numbers events
itself.

A kind whose functions are known only at run time (``mcp``: a server's tools) configures
its entries with ``function=None`` and implements :class:`PreparingKind`: before the first
generation step the loop runs its ``prepare``, which may add items (``mcp_list_tools``,
calls approved on the previous turn) and ends with :class:`Offered`: the functions to show
the model, and the calls it already ran for the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from oasis.core.conversation import FunctionTool, Image
from oasis.tools.browsing import OpenedPages
from oasis.tools.citations import Sources
from oasis.tools.outbound import UrlPolicy
from oasis.types import Item


@dataclass(frozen=True)
class ConfiguredTool:
    """One validated ``tools[index]`` entry."""

    type: str
    index: int
    echo: Item  # as ``Response.tools`` shows it
    function: FunctionTool | None  # how the model sees (and calls) it; None: after prepare
    config: Any = None  # what the kind needs to run a call


@dataclass(frozen=True)
class HostedCall:
    """A call the model made to a hosted tool (arguments as the model wrote them)."""

    call_id: str
    arguments: str
    tool: ConfiguredTool


@dataclass(frozen=True)
class ToolContext:
    """What a running tool may use: the one outbound HTTP client (whose connections the
    policy guards), the URL policy to check a URL before using it, whose request it is, the
    turn's history (the stored items of the chain or conversation before this turn, then
    this turn's input), where a kind finds its own earlier items, and the turn's numbered
    sources (what a tool cites, the answer's annotations point at), the pages the turn
    has opened (web search's open and find), and the server's services a tool may call,
    by name (``"vector_stores"``: :class:`~oasis.services.vector_stores.VectorStoreService`,
    ``"mcp_sessions"``: :class:`~oasis.tools.mcp_sessions.SessionPool`). ``stream`` says
    whether the client reads the response as events: work only events show (image
    previews) is done only then."""

    http: httpx.AsyncClient
    owner: str
    response_id: str
    urls: UrlPolicy = field(default_factory=UrlPolicy)
    history: Sequence[Item] = ()
    sources: Sources = field(default_factory=Sources)
    services: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = False
    pages: OpenedPages = field(default_factory=OpenedPages)


@dataclass(frozen=True)
class ReplayedCall:
    """How a stored hosted-tool item reads to the model on a later turn: a call of the
    function the model saw, and the result it read (None: the client answers the call with
    an item of its own, which replays as :class:`ReplayedOutput`)."""

    name: str
    arguments: str
    output: str | None


@dataclass(frozen=True)
class ReplayedOutput:
    """How a client's answer to a call (``computer_call_output``) reads to the model on a
    later turn: the result of the call ``call_id``."""

    call_id: str
    output: str
    # What the client showed (a screenshot), for a model that reads images; shown after
    # the result, the latest only.
    images: tuple[Image, ...] = ()


@dataclass(frozen=True)
class ItemAdded:
    """Open an output item (``response.output_item.added``); ``item`` has its ``id``."""

    item: Item


@dataclass(frozen=True)
class ItemProgress:
    """A progress event of the open item, e.g. ``response.web_search_call.searching``."""

    type: str
    fields: Item = field(default_factory=dict)  # besides item_id and output_index
    item_status: str | None = None  # the open item's new status, if it changes


@dataclass(frozen=True)
class ItemDone:
    """Close the open item (``response.output_item.done``) with its final form."""

    item: Item


@dataclass(frozen=True)
class Cite:
    """An annotation (``file_citation``, ``url_citation``) for the answer that follows the
    call: it is added to the next message's text, at its end when ``index`` is absent."""

    annotation: Item


@dataclass(frozen=True)
class ToolResult:
    """The last event of a run: what the model reads as the call's result."""

    output: str


@dataclass(frozen=True)
class AwaitingClient:
    """The last event of a run whose call waits on the client (e.g. for an approval): the
    model reads no result now, and the turn ends after this step."""


ToolEvent = ItemAdded | ItemProgress | ItemDone | Cite | ToolResult | AwaitingClient


@dataclass(frozen=True)
class Offered:
    """The last event of :meth:`PreparingKind.prepare`.

    ``tools``: one :class:`ConfiguredTool` per function the model may call (same ``type``
    and ``index`` as the entry it comes from). ``calls``: calls already run this turn, read
    by the model as its own calls with their results. ``choice``: the function a
    ``tool_choice`` of this kind forces on the first step, if any; ``among``: the functions
    one of which it forces instead (a choice that names a server but no tool of it).
    """

    tools: Sequence[ConfiguredTool]
    calls: Sequence[ReplayedCall] = ()
    choice: str | None = None
    among: frozenset[str] = frozenset()


PrepareEvent = ItemAdded | ItemProgress | ItemDone | Offered


class ToolKind(Protocol):
    """One ``tools[i].type``; see the module docstring. Register with
    :func:`oasis.tools.registry.register_tool` or the ``oasis.tools`` entry-point group."""

    @property
    def server_side(self) -> bool:
        """True when the loop hands its calls to :meth:`run` (hosted tools, and client-run
        tools with an item of their own, such as ``computer_call``, whose run ends with
        :class:`AwaitingClient`); False when a call is a plain ``function_call`` item."""
        ...

    @property
    def item_types(self) -> frozenset[str]:
        """The output item types this kind's calls produce (``web_search_call``…)."""
        ...

    def configure(self, params: Sequence[tuple[int, Any]]) -> list[ConfiguredTool]:
        """This kind's ``(index, param)`` entries of ``tools``, checked together (so that,
        say, two functions cannot share a name); a 400 names ``tools[index].<field>``."""
        ...

    def run(self, call: HostedCall, context: ToolContext) -> AsyncIterator[ToolEvent]:
        """Run one call of a hosted tool; see the module docstring."""
        ...

    def replay(self, item: Item) -> ReplayedCall | ReplayedOutput | None:
        """How a stored item of one of :attr:`item_types` reads to the model on a later
        turn (``previous_response_id``, conversations); None when the model does not see
        it. Stored items are complete (whatever ``include`` showed the client)."""
        ...


class PreparingKind(ToolKind, Protocol):
    """A kind with a ``prepare`` phase (optional; see the module docstring)."""

    async def check(self, tools: Sequence[ConfiguredTool], urls: UrlPolicy) -> None:
        """Checks that need the network, before the response starts (a URL the policy
        refuses is a 400 naming its field); any kind may define this."""
        ...

    def fit(self, tools: Sequence[ConfiguredTool], history: Sequence[Item]) -> list[ConfiguredTool]:
        """This kind's configured entries refitted to the conversation (``history``: the
        inherited items, then this request's input), before the first prompt: the GA
        ``computer`` tool bounds its coordinates by the latest screenshot's size; any
        kind may define this."""
        ...

    async def check_access(
        self, tools: Sequence[ConfiguredTool], owner: str, services: Mapping[str, Any]
    ) -> None:
        """Checks against the caller's own resources, before the response starts (a
        container that is not ``owner``'s is a 400 naming its field; ``services`` as in
        :class:`ToolContext`); any kind may define this."""
        ...

    def prepare(
        self, tools: Sequence[ConfiguredTool], context: ToolContext, choice: Item | None
    ) -> AsyncIterator[PrepareEvent]:
        """Before the first step: this kind's configured entries (in request order), and
        the request's ``tool_choice`` when it names this kind. Ends with :class:`Offered`."""
        ...
