"""``mcp`` tools end to end: a real MCP server (tests/mcp_server.py) on loopback, the real
default model with a forced ``tool_choice``, the strict SDK and raw SSE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.mcp_server import running
from tests.responses_helpers import MODEL, check_order, sse_events
from tests.server import Server, free_port, sdk_for, start_server

QUESTION = "Use the tool to add 2 and 3."


@pytest.fixture(scope="module")
def mcp_urls() -> Iterator[dict[str, str]]:
    """The test MCP server: its streamable HTTP and SSE endpoints."""
    with running() as urls:
        yield urls


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """oasis, allowed to reach the loopback MCP server."""
    srv = start_server(
        tmp_path_factory.mktemp("oasis-mcp"),
        config={"preload": [MODEL], "allow_private_urls": True},
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def sdk(mcp_server: Server) -> Iterator[OpenAI]:
    with sdk_for(mcp_server, "sk-test") as client:
        yield client


@pytest.fixture(scope="module")
def raw(mcp_server: Server) -> Iterator[httpx.Client]:
    headers = {"Authorization": "Bearer sk-test"}  # the same owner as the SDK client
    with httpx.Client(base_url=mcp_server.api_url, timeout=300, headers=headers) as client:
        yield client


def _tool(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "test", "server_url": url, **extra}


def _forced(name: str) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "test", "name": name}


def _body(url: str, name: str, **extra: Any) -> dict[str, Any]:
    """A request that forces one call of ``name`` (run without approval) and then lets
    the model answer within a small budget."""
    return {
        "model": MODEL,
        "input": QUESTION,
        "temperature": 0,
        "max_output_tokens": 64,
        "max_tool_calls": 1,
        "tools": [_tool(url, require_approval="never", **extra.pop("tool", {}))],
        "tool_choice": _forced(name),
        **extra,
    }


def _stream(raw: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = raw.post("/responses", json={**body, "stream": True})
    assert response.status_code == 200, response.text
    events = sse_events(response)
    check_order(events)
    return events


def _item_events(events: list[dict[str, Any]], item_id: str) -> list[str]:
    """The types of the events of one item, ``output_item.added`` to ``.done``."""
    return [
        e["type"]
        for e in events
        if e.get("item_id") == item_id or e.get("item", {}).get("id") == item_id
    ]


def test_a_listing_and_a_forced_call_stream_in_order(
    raw: httpx.Client, sdk: OpenAI, mcp_urls: dict[str, str]
) -> None:
    body = _body(mcp_urls["http"], "add")
    events = _stream(raw, body)
    final = events[-1]["response"]
    # The answer after the call is the model's own text, which may use up the budget.
    assert final["status"] == "completed" or (
        final["status"] == "incomplete"
        and final["incomplete_details"] == {"reason": "max_output_tokens"}
    )
    listing, call = final["output"][0], final["output"][1]
    assert listing["type"] == "mcp_list_tools"
    assert {t["name"] for t in listing["tools"]} == {"add", "slow", "broken", "whoami", "clock"}
    add = next(t for t in listing["tools"] if t["name"] == "add")
    assert add["input_schema"]["required"] == ["a", "b"]
    assert _item_events(events, listing["id"]) == [
        "response.output_item.added",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.output_item.done",
    ]
    assert call["type"] == "mcp_call"
    assert (call["server_label"], call["name"], call["status"]) == ("test", "add", "completed")
    arguments = json.loads(call["arguments"])
    assert call["output"] == str(arguments["a"] + arguments["b"])
    assert call["error"] is None and call["approval_request_id"] is None
    assert _item_events(events, call["id"]) == [
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_item.done",
    ]
    done = next(e for e in events if e["type"] == "response.mcp_call_arguments.done")
    assert done["arguments"] == call["arguments"]
    assert final["output"][-1]["type"] == "message"
    # The SDK's stream helper takes the same request's stream, event by event.
    with sdk.responses.stream(**body) as stream:
        parsed = list(stream)
    assert "response.mcp_call.completed" in [event.type for event in parsed]
    # The last event carries the response (get_final_response() takes a completed one only).
    last = parsed[-1]
    assert last.type in {"response.completed", "response.incomplete"}
    assert [item.type for item in last.response.output][:2] == ["mcp_list_tools", "mcp_call"]


def test_a_failing_tool_is_a_failed_call_and_the_turn_goes_on(
    sdk: OpenAI, raw: httpx.Client, mcp_urls: dict[str, str]
) -> None:
    events = _stream(raw, _body(mcp_urls["http"], "broken"))
    assert "response.mcp_call.failed" in [e["type"] for e in events]
    final = sdk.responses.retrieve(events[-1]["response"]["id"])
    assert final.status == "completed"
    call = final.output[1]
    assert call.type == "mcp_call" and call.status == "failed"
    assert call.error is not None and call.error.type == "mcp_tool_execution_error"
    assert "the tool broke" in json.dumps(call.error.content)
    assert call.output is None


def test_headers_and_authorization_reach_the_server_and_are_not_echoed(
    sdk: OpenAI, mcp_urls: dict[str, str]
) -> None:
    body = _body(
        mcp_urls["http"],
        "whoami",
        tool={"headers": {"X-Api-Key": "sesame"}, "authorization": "token-1"},
    )
    response = sdk.responses.create(**body)
    call = response.output[1]
    assert call.type == "mcp_call"
    assert call.output == "hello Bearer token-1"
    echoed = response.tools[0].model_dump()
    assert echoed["server_label"] == "test"
    assert echoed.get("headers") is None and echoed.get("authorization") is None
    assert "sesame" not in response.model_dump_json()
    # Without the header the tool refuses, as the server says.
    bare = sdk.responses.create(**_body(mcp_urls["http"], "whoami"))
    assert bare.output[1].type == "mcp_call" and bare.output[1].status == "failed"


def test_a_server_that_only_speaks_sse_is_reached_through_the_fallback(
    sdk: OpenAI, mcp_urls: dict[str, str]
) -> None:
    response = sdk.responses.create(**_body(mcp_urls["sse"], "slow"))
    listing, call = response.output[0], response.output[1]
    assert listing.type == "mcp_list_tools" and listing.error is None
    assert call.type == "mcp_call" and call.output == "done"


def test_an_unreachable_server_is_a_failed_listing_not_an_error(
    raw: httpx.Client, sdk: OpenAI
) -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    events = _stream(raw, _body(url, "add"))
    kinds = [e["type"] for e in events]
    assert "response.mcp_list_tools.failed" in kinds
    final = sdk.responses.retrieve(events[-1]["response"]["id"])
    assert final.status == "completed"
    listing = final.output[0]
    assert listing.type == "mcp_list_tools"
    assert listing.tools == [] and listing.error
    assert all(item.type != "mcp_call" for item in final.output)


def test_allowed_tools_limit_the_listing_and_the_calls(
    sdk: OpenAI, mcp_urls: dict[str, str]
) -> None:
    by_name = sdk.responses.create(
        **_body(mcp_urls["http"], "add", tool={"allowed_tools": ["add"]})
    )
    assert [t.name for t in by_name.output[0].tools] == ["add"]  # type: ignore[union-attr]
    read_only = sdk.responses.create(
        **_body(mcp_urls["http"], "clock", tool={"allowed_tools": {"read_only": True}})
    )
    assert [t.name for t in read_only.output[0].tools] == ["clock"]  # type: ignore[union-attr]
    assert read_only.output[1].type == "mcp_call"
    assert read_only.output[1].output == "noon"  # type: ignore[union-attr]


def test_a_choice_of_a_server_without_a_name_forces_one_of_its_tools(
    sdk: OpenAI, mcp_urls: dict[str, str]
) -> None:
    body = _body(mcp_urls["http"], "add", tool={"allowed_tools": ["add", "clock"]})
    body["tool_choice"] = {"type": "mcp", "server_label": "test"}
    body["input"] = "Hello there!"  # nothing in it asks for a tool
    response = sdk.responses.create(**body)
    calls = [item for item in response.output if item.type == "mcp_call"]
    assert calls, [item.type for item in response.output]
    assert calls[0].name in {"add", "clock"} and calls[0].status == "completed"  # type: ignore[union-attr]
    assert response.output[-1].type == "message"  # the next step answers freely


def test_an_approval_request_ends_the_turn_and_its_answer_runs_the_call(
    sdk: OpenAI, raw: httpx.Client, mcp_urls: dict[str, str]
) -> None:
    body = _body(mcp_urls["http"], "add")
    body["tools"] = [_tool(mcp_urls["http"])]  # require_approval: absent means always
    events = _stream(raw, body)
    first = sdk.responses.retrieve(events[-1]["response"]["id"])
    assert first.status == "completed"
    assert [item.type for item in first.output] == ["mcp_list_tools", "mcp_approval_request"]
    request = first.output[1]
    assert request.type == "mcp_approval_request" and request.name == "add"
    assert _item_events(events, request.id) == [
        "response.output_item.added",
        "response.output_item.done",
    ]
    approved = sdk.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        ],
        tools=body["tools"],
        tool_choice="none",
        temperature=0,
        max_output_tokens=40,
    )
    # The listing is reused from the chain; the approved call runs first, as requested.
    assert all(item.type != "mcp_list_tools" for item in approved.output)
    call = approved.output[0]
    assert call.type == "mcp_call"
    assert call.approval_request_id == request.id
    assert (call.server_label, call.name, call.arguments) == (
        request.server_label,
        request.name,
        request.arguments,
    )
    arguments = json.loads(call.arguments)
    assert call.output == str(arguments["a"] + arguments["b"])
    assert approved.output[-1].type == "message"
    # The stored turn with MCP items chains: its input items list them, and a later turn
    # does not run the answered approval again.
    listed = sdk.responses.input_items.list(approved.id)
    assert {"mcp_list_tools", "mcp_approval_request", "mcp_approval_response"} <= {
        item.type for item in listed.data
    }
    later = sdk.responses.create(
        model=MODEL,
        previous_response_id=approved.id,
        input="Thanks.",
        tools=body["tools"],
        tool_choice="none",
        temperature=0,
        max_output_tokens=20,
    )
    assert [item.type for item in later.output] == ["message"]


def test_a_declined_approval_runs_nothing(sdk: OpenAI, mcp_urls: dict[str, str]) -> None:
    body = _body(mcp_urls["http"], "add")
    body["tools"] = [_tool(mcp_urls["http"], require_approval={"never": {"tool_names": ["clock"]}})]
    first = sdk.responses.create(**body)
    request = first.output[-1]
    assert request.type == "mcp_approval_request"
    declined = sdk.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False}
        ],
        tools=body["tools"],
        tool_choice="none",
        temperature=0,
        max_output_tokens=20,
    )
    assert [item.type for item in declined.output] == ["message"]


def test_a_private_server_url_is_refused_without_the_setting(
    server: Server, mcp_urls: dict[str, str]
) -> None:
    response = httpx.post(
        f"{server.api_url}/responses",
        json={
            "model": MODEL,
            "input": "hi",
            "tools": [{"type": "function", "name": "f"}, _tool(mcp_urls["http"])],
        },
        timeout=60,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "tools[1].server_url"
    assert "allow_private_urls" in error["message"]


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        (
            [_tool("http://127.0.0.1:9/mcp")],
            {"type": "mcp", "server_label": "nope"},
            "tool_choice.server_label",
        ),
        (
            [_tool("http://127.0.0.1:9/mcp"), _tool("http://127.0.0.1:9/mcp")],
            "auto",
            "tools[1].server_label",
        ),
        ([_tool("ftp://127.0.0.1:9/mcp")], "auto", "tools[0].server_url"),
        (
            [{"type": "mcp", "server_label": "x", "connector_id": "connector_gmail"}],
            "auto",
            "tools[0].connector_id",
        ),
        (
            [_tool("http://127.0.0.1:9/mcp", require_approval={"never": {"tool_names": "add"}})],
            "auto",
            "tools[0].require_approval.never.tool_names",
        ),
    ],
)
def test_bad_mcp_requests_are_400_naming_the_field(
    raw: httpx.Client, tools: list[Any], choice: Any, param: str
) -> None:
    response = raw.post(
        "/responses", json={"model": MODEL, "input": "hi", "tools": tools, "tool_choice": choice}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_an_agents_sdk_agent_uses_a_hosted_mcp_tool(
    mcp_server: Server, mcp_urls: dict[str, str]
) -> None:
    """The Agents SDK builds the request from ``HostedMCPTool`` and reads the strict
    response. The tiny model may ramble after the call until its budget runs out, which
    the SDK reports as an error of its own; the call itself must have run either way."""
    from agents import (
        Agent,
        HostedMCPTool,
        ModelSettings,
        OpenAIResponsesModel,
        Runner,
        set_tracing_disabled,
    )
    from agents.exceptions import ModelBehaviorError
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    responses: list[Any] = []

    async def run() -> None:
        client = AsyncOpenAI(
            base_url=mcp_server.api_url,
            api_key="sk-test",
            max_retries=0,
            _strict_response_validation=True,
        )
        create = client.responses.create

        async def noting(**kwargs: Any) -> Any:
            response = await create(**kwargs)
            responses.append(response)
            return response

        client.responses.create = noting  # type: ignore[method-assign]
        try:
            agent = Agent(
                name="adder",
                instructions="Use the add tool, then answer with the number only.",
                model=OpenAIResponsesModel(model=MODEL, openai_client=client),
                model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=96),
                tools=[
                    HostedMCPTool(
                        tool_config={
                            "type": "mcp",
                            "server_label": "test",
                            "server_url": mcp_urls["http"],
                            "allowed_tools": ["add"],
                            "require_approval": "never",
                        }
                    )
                ],
            )
            try:
                await Runner.run(agent, QUESTION, max_turns=2)
            except ModelBehaviorError as exc:
                assert "max_output_tokens" in str(exc)
        finally:
            await client.close()

    asyncio.run(run())
    assert responses, "the agent made no request"
    output = responses[0].output
    assert [item.type for item in output][:2] == ["mcp_list_tools", "mcp_call"]
    arguments = json.loads(output[1].arguments)
    assert output[1].output == str(arguments["a"] + arguments["b"])


def test_an_approval_response_must_answer_a_request(raw: httpx.Client) -> None:
    answer = {"type": "mcp_approval_response", "approval_request_id": "mcpr_nope", "approve": True}
    response = raw.post("/responses", json={"model": MODEL, "input": [answer]})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "input[0].approval_request_id"


def _sessions_opened(url: str) -> int:
    stats = httpx.get(url.rsplit("/", 1)[0] + "/stats", timeout=30).json()
    return int(stats["initialize"])


def test_one_session_serves_the_listing_and_calls_of_many_turns(
    sdk: OpenAI, mcp_urls: dict[str, str]
) -> None:
    url = mcp_urls["http"]
    tool = {"headers": {"X-Api-Key": "sesame"}, "authorization": "pooled"}
    before = _sessions_opened(url)
    for _ in range(3):  # each turn lists the tools and calls one
        response = sdk.responses.create(**_body(url, "whoami", tool=tool))
        assert response.output[1].output == "hello Bearer pooled"  # type: ignore[union-attr]
    # Opened once (or not at all, when an earlier test left it open): a session per
    # operation opened six.
    assert _sessions_opened(url) - before <= 1
    # Other secrets never ride on that session: each set of headers has its own.
    other = sdk.responses.create(
        **_body(url, "whoami", tool={**tool, "authorization": "someone-else"})
    )
    assert other.output[1].output == "hello Bearer someone-else"  # type: ignore[union-attr]
    bare = sdk.responses.create(**_body(url, "whoami"))
    assert bare.output[1].status == "failed"  # type: ignore[union-attr]
    assert _sessions_opened(url) - before <= 3


def test_a_session_the_server_forgot_is_reopened_for_the_call(
    mcp_server: Server, sdk: OpenAI
) -> None:
    ports = (free_port(), free_port(), free_port())
    with running(ports) as urls:
        first = sdk.responses.create(**_body(urls["stateful"], "add"))
        assert first.output[1].type == "mcp_call" and first.output[1].status == "completed"
    with running(ports) as urls:  # the same server, restarted: its sessions are gone
        # The listing is reused from the chain, so the pooled session's first request is
        # the call itself; the server answers it 404, having never run it.
        second = sdk.responses.create(
            **{**_body(urls["stateful"], "add"), "previous_response_id": first.id}
        )
        call = next(item for item in second.output if item.type == "mcp_call")
        assert call.status == "completed" and call.error is None, call
        assert _sessions_opened(urls["stateful"]) == 1
