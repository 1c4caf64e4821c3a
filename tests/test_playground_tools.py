"""The playground's views of hosted tools, in the real headless Chromium of
``tests/test_playground.py``: a forced web_search against the loopback search service and
pages (``tests/web_world.py``), an MCP call approved by a click in the page against the
loopback ``mcp`` SDK server (``tests/mcp_server.py``), and a code_interpreter turn on the
sandbox server of ``tests/conftest.py`` whose code and output show in the page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI
from playwright.sync_api import Browser, expect

from tests.conftest import SANDBOX_KEYS, SCRIPTED
from tests.mcp_server import running
from tests.server import Server, sdk_for, start_server
from tests.test_playground import (
    PageRecord,
    browser,
    finished_item,
    open_playground,
    pick_tool,
    send_turn,
    shoot,
    shots,
    turn_response_id,
    wait_turn_over,
)
from tests.web_world import World, world

__all__ = ["browser", "shots", "world"]  # the shared module fixtures, used here by name

pytestmark = pytest.mark.slow

KEY = "sk-playground-tools"
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def mcp_urls() -> Iterator[dict[str, str]]:
    with running() as urls:
        yield urls


@pytest.fixture(scope="module")
def tools_server(tmp_path_factory: pytest.TempPathFactory, world: World) -> Iterator[Server]:
    """The search service configured; loopback servers (search pages, MCP) allowed."""
    srv = start_server(
        tmp_path_factory.mktemp("oasis-playground-tools"),
        config={"preload": [MODEL]},
        env={"OASIS_API_KEYS": KEY, **world.env},
    )
    yield srv
    srv.stop()


def _open(browser: Browser, server: Server, key: str) -> Iterator[PageRecord]:
    """A playground tab on the Responses view; no script error in it by the end."""
    for record in open_playground(browser, server, key):
        record.page.click("nav button[data-view=responses]")
        yield record
        assert record.errors == []


@pytest.fixture(scope="module")
def page(browser: Browser, tools_server: Server) -> Iterator[PageRecord]:
    yield from _open(browser, tools_server, KEY)


@pytest.fixture(scope="module")
def client(tools_server: Server) -> Iterator[OpenAI]:
    with sdk_for(tools_server, KEY) as sdk:
        yield sdk


def _tools(record: PageRecord, tools: list[dict[str, object]]) -> None:
    form = "#responses-form textarea[name=tools]"
    record.page.fill(form, json.dumps(tools))
    record.page.dispatch_event(form, "input")  # refreshes tool_choice's options


def test_a_forced_web_search_shows_its_calls_and_sources(
    page: PageRecord, client: OpenAI, world: World, shots: Path
) -> None:
    tab = page.page
    tab.click("#responses-clear")
    assert pick_tool(tab, "web_search") == [{"type": "web_search"}]
    send_turn(
        tab,
        "What is the capital of France?",
        tool_choice="type:web_search",
        temperature=0,
        max_output_tokens=60,
    )
    search = finished_item(tab, "web_search_call")
    assert "searching" in tab.evaluate("[...window.seenStates]")
    first = tab.text_content("#responses-log .item.web_search_call.done .call") or ""
    assert first.startswith("search: ")
    # The sources the search found (asked for with include), as the stored call has them.
    stored = client.responses.retrieve(
        turn_response_id(tab, 1), include=["web_search_call.action.sources"]
    )
    call = stored.output[0]
    assert call.type == "web_search_call" and call.action.type == "search"
    shown = [item.text_content() for item in search.query_selector_all("li")]
    assert shown == [source.url for source in call.action.sources or []]
    assert shown and all(f":{world.port}/" in url for url in shown)
    assert world.searches, "the page's turn reached the search service"
    shoot(tab, shots, "responses-web-search")


def test_an_mcp_call_runs_once_approved_in_the_page(
    page: PageRecord, client: OpenAI, mcp_urls: dict[str, str], shots: Path
) -> None:
    tab = page.page
    tab.click("#responses-clear")
    tools = pick_tool(tab, "mcp")
    assert [tool["type"] for tool in tools] == ["mcp"]
    # The template points at a local server; this one asks before each call of `add`.
    tools[0].update(server_url=mcp_urls["http"], require_approval="always", allowed_tools=["add"])
    _tools(page, tools)
    send_turn(
        tab,
        "Use the tool to add 2 and 3.",
        tool_choice="mcp:local:add",
        temperature=0,
        max_output_tokens=64,
    )
    request = finished_item(tab, "mcp_approval_request")
    assert "local.add(" in (request.text_content() or "")
    asked = client.responses.retrieve(turn_response_id(tab, 1))
    assert [item.type for item in asked.output] == ["mcp_list_tools", "mcp_approval_request"]
    shoot(tab, shots, "responses-mcp-approval")

    tab.select_option("#responses-form select[name=tool_choice]", "none")
    tab.click("#responses-log .item.mcp_approval_request button:text-is('Approve')")
    call = tab.wait_for_selector("#responses-log .turn:nth-child(2) .item.mcp_call.done")
    assert call is not None
    wait_turn_over(tab)
    approved = client.responses.retrieve(turn_response_id(tab, 2))
    assert approved.previous_response_id == asked.id
    made = approved.output[0]
    assert made.type == "mcp_call" and made.approval_request_id == asked.output[1].id
    assert made.output is not None
    expect(tab.locator("#responses-log .turn:nth-child(2) .item.mcp_call .text")).to_have_text(
        made.output
    )
    shoot(tab, shots, "responses-mcp-call")


@pytest.fixture(scope="module")
def box_page(browser: Browser, sandbox_server: Server, sandbox_ready: None) -> Iterator[PageRecord]:
    yield from _open(browser, sandbox_server, SANDBOX_KEYS[0])


def test_a_code_interpreter_turn_shows_its_code_and_output(
    box_page: PageRecord, box_client: OpenAI, shots: Path
) -> None:
    tab = box_page.page
    tab.fill("#responses-form input[name=model]", SCRIPTED)  # its code is the user's text
    pick_tool(tab, "code_interpreter")
    code = "x = 6 * 7\nprint('x is', x)"
    send_turn(tab, code)
    finished_item(tab, "code_interpreter_call")
    assert tab.text_content("#responses-log .item.code_interpreter_call pre.code") == code
    assert tab.text_content("#responses-log .item.code_interpreter_call pre.output") == "x is 42\n"
    stored = box_client.responses.retrieve(turn_response_id(tab, 1))
    assert stored.output[0].type == "code_interpreter_call"
    assert stored.output[0].code == code
    shoot(tab, shots, "responses-code-interpreter")
