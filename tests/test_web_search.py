"""web_search end to end on the real default model: a SearXNG-compatible service and web
pages served on loopback stand in for the internet (tests/web_world.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from oasis.core.events import Finished, TextDelta
from oasis.responses.events import ResponseBuilder
from tests.responses_helpers import MODEL, check_order, sse_events
from tests.server import Server, sdk_for, start_server
from tests.web_world import World, world

__all__ = ["world"]  # the loopback web's module fixture, used here by name

QUESTION = "What is the capital of France?"
# The tiny model copies this, and so cites the first source.
ECHO = 'Repeat exactly this text and nothing else: "Paris [1]"'
FORCED: dict[str, Any] = {
    "tools": [{"type": "web_search"}],
    "tool_choice": {"type": "web_search"},
    "max_tool_calls": 1,
    "temperature": 0,
    "max_output_tokens": 60,  # the tiny model may run on; an incomplete turn still shows all
}


@pytest.fixture(scope="module")
def search_server(tmp_path_factory: pytest.TempPathFactory, world: World) -> Iterator[Server]:
    """Private addresses allowed, engine and setting from the environment."""
    srv = start_server(
        tmp_path_factory.mktemp("oasis-web"),
        config={"preload": [MODEL]},
        env=world.env,
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def sdk(search_server: Server) -> Iterator[OpenAI]:
    with sdk_for(search_server, "sk-test") as client:
        yield client


@pytest.fixture(autouse=True)
def _healthy_world(world: World) -> Iterator[None]:
    world.fail_search = False
    yield
    world.fail_search = False


def test_a_forced_search_streams_its_items_in_order(search_server: Server, world: World) -> None:
    body = {
        "model": MODEL,
        "input": QUESTION,
        "stream": True,
        "include": ["web_search_call.action.sources"],
        **FORCED,
    }
    with httpx.Client(base_url=search_server.api_url, timeout=300) as http:
        response = http.post("/responses", json=body)
    assert response.status_code == 200, response.text
    events = sse_events(response)
    check_order(events)
    tool_events = [
        (e["type"], e.get("item", {}).get("action", {}).get("type"))
        for e in events
        if "web_search_call" in e["type"] or e.get("item", {}).get("type") == "web_search_call"
    ]
    # One search, then one open_page per page read (two at medium context size).
    expected: list[tuple[str, str | None]] = []
    for action in ("search", "open_page", "open_page"):
        expected += [
            ("response.output_item.added", action),
            ("response.web_search_call.in_progress", None),
            ("response.web_search_call.searching", None),
            ("response.web_search_call.completed", None),
            ("response.output_item.done", action),
        ]
    assert tool_events == expected
    final = events[-1]["response"]
    search, first_page, second_page = final["output"][:3]
    assert search["action"]["queries"] == [search["action"]["query"]]
    assert [s["url"] for s in search["action"]["sources"]] == [r["url"] for r in world.results()]
    assert first_page["action"]["url"] == world.results()[0]["url"]
    assert second_page["action"]["url"] == world.results()[1]["url"]
    assert all(item["status"] == "completed" for item in final["output"][:3])
    assert final["output"][-1]["type"] == "message"
    assert final["tool_choice"] == {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "web_search"}],
    }
    assert world.searches[-1]["q"] == [search["action"]["query"]]


def test_the_sdk_stream_helper_accepts_it_and_citations_point_at_sources(
    sdk: OpenAI, world: World
) -> None:
    with sdk.responses.stream(
        model=MODEL,
        input=ECHO,
        **{**FORCED, "max_output_tokens": 200},
    ) as stream:
        events = list(stream)  # the helper checked and folded every event
    # The tiny model may echo its sources until the budget ends the turn (incomplete).
    assert events[-1].type in {"response.completed", "response.incomplete"}
    final = events[-1].response  # type: ignore[union-attr]
    if events[-1].type == "response.completed":
        assert stream.get_final_response().output_text == final.output_text
    assert [i.type for i in final.output][:3] == ["web_search_call"] * 3
    message = final.output[-1]
    assert message.type == "message"
    text = message.content[0]
    assert text.type == "output_text"
    added = [e for e in events if e.type == "response.output_text.annotation.added"]
    # The event's annotation is the SDK's own class of the same shape; compare the wire form.
    assert [e.annotation.model_dump() for e in added] == [a.model_dump() for a in text.annotations]
    sources = world.results()
    marks = [m for m in re.finditer(r"\[(\d{1,3})\]", text.text) if 1 <= int(m[1]) <= len(sources)]
    assert len(text.annotations) == len(marks), text.text
    for annotation, mark in zip(text.annotations, marks, strict=True):
        assert annotation.type == "url_citation"
        assert (annotation.start_index, annotation.end_index) == mark.span()
        assert annotation.url == sources[int(mark[1]) - 1]["url"]
    stored = sdk.responses.retrieve(final.id)
    assert [i.id for i in stored.output] == [i.id for i in final.output]
    assert stored.output[:3] == final.output[:3]  # the tool's items, stored as streamed
    assert stored.output_text == final.output_text


def test_a_failing_engine_fails_the_call_and_the_turn_goes_on(sdk: OpenAI, world: World) -> None:
    world.fail_search = True
    response = sdk.responses.create(model=MODEL, input=QUESTION, **FORCED)
    assert response.status in {"completed", "incomplete"}  # the answer may run long
    search = response.output[0]
    assert search.type == "web_search_call"
    assert search.status == "failed"
    assert [i.type for i in response.output] == ["web_search_call", "message"]


def test_allowed_domains_keep_only_those_results(sdk: OpenAI, world: World) -> None:
    tools: Any = [{"type": "web_search", "filters": {"allowed_domains": ["localhost"]}}]
    response = sdk.responses.create(
        model=MODEL,
        input=QUESTION,
        include=["web_search_call.action.sources"],
        **{**FORCED, "tools": tools},
    )
    search = response.output[0]
    assert search.type == "web_search_call" and search.action.type == "search"
    urls = [s.url for s in search.action.sources or []]
    assert urls == [r["url"] for r in world.results() if "//localhost:" in r["url"]]
    assert response.tools[0].type == "web_search"
    assert response.tools[0].filters is not None
    assert response.tools[0].filters.allowed_domains == ["localhost"]


def test_low_context_opens_one_page_and_no_live_access_opens_none(sdk: OpenAI) -> None:
    low: Any = [{"type": "web_search", "search_context_size": "low"}]
    response = sdk.responses.create(model=MODEL, input=QUESTION, **{**FORCED, "tools": low})
    actions = [i.action.type for i in response.output if i.type == "web_search_call"]
    assert actions == ["search", "open_page"]
    search = response.output[0]
    assert search.type == "web_search_call" and search.action.type == "search"
    assert search.action.sources is None  # stored, shown only with include
    shown = sdk.responses.retrieve(response.id, include=["web_search_call.action.sources"])
    assert shown.output[0].action.sources  # type: ignore[union-attr]
    offline: Any = [{"type": "web_search", "external_web_access": False}]
    response = sdk.responses.create(model=MODEL, input=QUESTION, **{**FORCED, "tools": offline})
    actions = [i.action.type for i in response.output if i.type == "web_search_call"]
    assert actions == ["search"]


def test_web_search_preview_is_served_by_the_same_engine(sdk: OpenAI, world: World) -> None:
    before = len(world.searches)
    response = sdk.responses.create(
        model=MODEL,
        input=QUESTION,
        **{
            **FORCED,
            "tools": [{"type": "web_search_preview", "user_location": {"country": "FR"}}],
            "tool_choice": {"type": "web_search_preview"},
        },
    )
    assert response.output[0].type == "web_search_call"
    assert len(world.searches) == before + 1
    assert world.searches[-1].get("language") == ["all-FR"]
    assert response.tool_choice.type == "web_search_preview"  # type: ignore[union-attr]


def test_a_stored_search_chains_and_the_model_sees_it(sdk: OpenAI) -> None:
    first = sdk.responses.create(model=MODEL, input=QUESTION, **FORCED)
    follow_up = "Thanks. Say it again."
    second = sdk.responses.create(
        model=MODEL,
        input=follow_up,
        previous_response_id=first.id,
        temperature=0,
        max_output_tokens=20,
    )
    assert second.status in {"completed", "incomplete"}
    items = list(sdk.responses.input_items.list(second.id, order="asc"))
    assert [i.id for i in items if i.type == "web_search_call"] == [
        i.id for i in first.output if i.type == "web_search_call"
    ]
    # The chain's prompt holds the replayed search: more than its messages alone.
    chained = sdk.responses.input_tokens.count(
        model=MODEL, input=follow_up, previous_response_id=first.id
    )
    messages_only = sdk.responses.input_tokens.count(
        model=MODEL,
        input=[
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": first.output_text},
            {"role": "user", "content": follow_up},
        ],
    )
    assert chained.input_tokens > messages_only.input_tokens + 20


def test_without_the_setting_pages_on_private_addresses_are_refused(
    tmp_path_factory: pytest.TempPathFactory, world: World
) -> None:
    srv = start_server(
        tmp_path_factory.mktemp("oasis-web-private"),
        config={"preload": [MODEL], "web_search": {"engine": "searxng", "url": world.url}},
    )
    try:
        with OpenAI(
            base_url=srv.api_url, api_key="x", _strict_response_validation=True, max_retries=0
        ) as client:
            response = client.responses.create(model=MODEL, input=QUESTION, **FORCED)
    finally:
        srv.stop()
    # The engine is the operator's (loopback is fine); the pages it found are not.
    search, *pages = [i for i in response.output if i.type == "web_search_call"]
    assert search.status == "completed"
    assert [(p.action.type, p.status) for p in pages] == [("open_page", "failed")] * 2
    assert response.output[-1].type == "message"


def test_without_an_engine_the_tool_is_a_400_that_says_how_to_configure(
    http: httpx.Client,
) -> None:
    for tool in ({"type": "web_search"}, {"type": "web_search_preview"}):
        response = http.post(
            "/v1/responses",
            json={
                "model": MODEL,
                "input": "hi",
                "tools": [{"type": "function", "name": "f"}, tool],
            },
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == "tools[1]"
        assert "OASIS_WEB_SEARCH_ENGINE" in error["message"]
        assert "searxng" in error["message"]


def test_citations_become_annotations_with_exact_offsets() -> None:
    """The builder turns [n] marks into url_citation annotations as the text streams, a
    mark split across deltas included; a number no source has is left alone."""
    builder = ResponseBuilder({"id": "resp_1", "status": "in_progress"})
    one = builder.sources.add("https://a.example/1", "A")
    two = builder.sources.add("https://b.example/2", "B")
    assert (one, two, builder.sources.add("https://a.example/1", "again")) == (1, 2, 1)
    events: list[Any] = []
    for piece in ["Paris is the capital [", "1]. The Seine [2", "] flows [9] there [1]"]:
        events += builder.feed(TextDelta(piece))
    events += builder.finish_step(Finished("stop", "", prompt_tokens=1, completion_tokens=1))
    part = builder.output[0]["content"][0]
    text = part["text"]
    spans = [(a["url"], text[a["start_index"] : a["end_index"]]) for a in part["annotations"]]
    assert spans == [
        ("https://a.example/1", "[1]"),
        ("https://b.example/2", "[2]"),
        ("https://a.example/1", "[1]"),
    ]
    added = [e for e in events if e.type == "response.output_text.annotation.added"]
    assert [e.annotation_index for e in added] == [0, 1, 2]
    # Each annotation is announced after the delta that completes its mark (a tail that
    # may still become a mark waits for the next delta).
    kinds = [e.type for e in events]
    first_added = kinds.index("response.output_text.annotation.added")
    assert kinds[first_added - 1] == "response.output_text.delta"
    assert events[first_added - 1].delta == " [1]. The Seine"
    done = next(e for e in events if e.type == "response.content_part.done")
    assert len(done.part.annotations) == 3  # every event passed the SDK's own types


def test_chat_web_search_options_search_and_cite(sdk: OpenAI, world: World) -> None:
    before = len(world.searches)
    completion = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": ECHO}],
        web_search_options={
            "search_context_size": "low",
            "user_location": {"type": "approximate", "approximate": {"country": "FR"}},
        },
        temperature=0,
        max_tokens=20,
    )
    assert world.searches[before:] == [{"q": [ECHO], "format": ["json"], "language": ["all-FR"]}]
    message = completion.choices[0].message
    text = message.content or ""
    assert bool(message.annotations) == ("[1]" in text), text
    for annotation in message.annotations or []:
        citation = annotation.url_citation
        assert text[citation.start_index : citation.end_index] == "[1]"
        assert citation.url == world.results()[0]["url"]
    with sdk.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": ECHO}],
        web_search_options={"search_context_size": "low"},
        temperature=0,
        max_tokens=20,
    ) as stream:
        for _ in stream:  # the helper folds every chunk (the final parse refuses "length")
            pass
        streamed = stream.current_completion_snapshot
    assert streamed.choices[0].message.content == text
    assert streamed.choices[0].message.annotations == message.annotations


def test_chat_web_search_options_without_an_engine_is_a_400(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "web_search_options": {},
        },
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "web_search_options"


def test_the_agents_sdk_runs_its_web_search_tool(search_server: Server, world: World) -> None:
    from agents import (
        Agent,
        ModelSettings,
        OpenAIResponsesModel,
        Runner,
        WebSearchTool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    before = len(world.searches)

    async def run() -> list[str]:
        client = AsyncOpenAI(
            base_url=search_server.api_url,
            api_key="sk-test",
            max_retries=0,
            _strict_response_validation=True,
        )
        try:
            agent = Agent(
                name="searcher",
                instructions="Answer in one sentence.",
                model=OpenAIResponsesModel(model=MODEL, openai_client=client),
                model_settings=ModelSettings(
                    tool_choice="web_search",
                    temperature=0,
                    max_tokens=400,
                    extra_args={"max_tool_calls": 1},
                ),
                tools=[WebSearchTool(search_context_size="low")],
            )
            result = await Runner.run(agent, QUESTION, max_turns=2)
            return [getattr(item.raw_item, "type", "") for item in result.new_items]
        finally:
            await client.close()

    kinds = asyncio.run(run())
    assert kinds.count("web_search_call") == 2  # the search and the page it opened
    assert kinds[-1] == "message"
    assert len(world.searches) == before + 1
