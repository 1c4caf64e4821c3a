"""Tool calling on /v1/chat/completions: forced calls, auto calls, streaming, 400s.

End to end on the packaged SmolLM2 (135M, no tool support in its template: it gets the
generic tool prompt) through the official SDK; raw httpx for chunk framing and errors.
Unit tests of the call parser come first.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest
from openai import OpenAI

from oasis.core.tool_calls import (
    CallArguments,
    CallDone,
    CallStarted,
    TextPiece,
    ToolCallParser,
)

MODEL = "gpt-4o-mini"  # an alias of smollm2-135m-instruct


def _tool(name: str, parameters: dict[str, Any], strict: bool = True) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name.replace('_', ' ')} function.",
            "parameters": parameters,
            "strict": strict,
        },
    }


WEATHER = _tool(
    "get_weather",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
)

SIGNATURES: list[dict[str, Any]] = [
    WEATHER,
    _tool("get_time", {"type": "object", "properties": {}, "additionalProperties": False}),
    _tool(
        "add_numbers",
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "number"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    ),
    _tool(
        "create_event",
        {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "attendees": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "email": {"type": "string"},
                        },
                        "required": ["name"],
                        "additionalProperties": False,
                    },
                    "minItems": 1,
                    "maxItems": 3,
                },
                "all_day": {"type": "boolean"},
            },
            "required": ["title", "attendees", "all_day"],
            "additionalProperties": False,
        },
    ),
    _tool(
        "set_mode",
        {
            "type": "object",
            "properties": {
                "mode": {"anyOf": [{"$ref": "#/$defs/level"}, {"type": "null"}]},
                "note": {"type": "string", "maxLength": 40},
            },
            "required": ["mode"],
            "$defs": {"level": {"type": "integer", "minimum": 1, "maximum": 5}},
            "additionalProperties": False,
        },
    ),
    # Not strict and open to extra keys: still a valid call, and no runaway arguments.
    _tool(
        "search_docs",
        {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        strict=False,
    ),
]

ASK = {
    "get_weather": "What's the weather like in Paris today?",
    "get_time": "What time is it?",
    "add_numbers": "What is 12 plus 30.5?",
    "create_event": "Book a team lunch with Ana and Bo.",
    "set_mode": "Set the fan to level 3.",
    "search_docs": "Find the docs about installing oasis.",
}


def _check_call(call: Any, tools: list[dict[str, Any]]) -> dict[str, Any]:
    by_name = {t["function"]["name"]: t["function"] for t in tools}
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name in by_name
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, by_name[call.function.name]["parameters"])
    return arguments


# --- the parser, fed in every possible split ---------------------------------------------

RAW = (
    'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa\\"ris", '
    '"tags": ["a}", {"b": 1}]}}\n</tool_call>\n<tool_call>\n{"name": "get_time", '
    '"arguments": {}}\n</tool_call>'
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_parser_splits_text_and_calls_whatever_the_chunking(size: int) -> None:
    parser = ToolCallParser()
    events = []
    for i in range(0, len(RAW), size):
        events.extend(parser.feed(RAW[i : i + size]))
    events.extend(parser.finish())
    text = "".join(e.text for e in events if isinstance(e, TextPiece))
    assert text == "Sure."
    assert [c.name for c in parser.calls] == ["get_weather", "get_time"]
    assert json.loads(parser.calls[0].arguments) == {"city": 'Pa"ris', "tags": ["a}", {"b": 1}]}
    assert parser.calls[1].arguments == "{}"
    for index, call in enumerate(parser.calls):
        started = [e for e in events if isinstance(e, CallStarted) and e.index == index]
        assert len(started) == 1 and started[0].name == call.name and started[0].id == call.id
        fragments = [e.delta for e in events if isinstance(e, CallArguments) and e.index == index]
        assert "".join(fragments) == call.arguments
        assert [e.call for e in events if isinstance(e, CallDone) and e.index == index] == [call]


def test_parser_reads_other_layouts_and_never_leaks_markup() -> None:
    parser = ToolCallParser()
    events = parser.feed('<tool_call>{"arguments": {"x": 1}, "name": "f"}</tool_call> done')
    events += parser.finish()
    assert [c.name for c in parser.calls] == ["f"]
    assert json.loads(parser.calls[0].arguments) == {"x": 1}
    assert parser.text == " done"
    broken = ToolCallParser()
    broken.feed("<tool_call>not json</tool_call>ok")
    broken.finish()
    assert broken.text == "ok" and not broken.calls


def test_parser_reads_fenced_json_calls_and_keeps_other_fences_as_text() -> None:
    parser = ToolCallParser()
    raw = '```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```'
    for ch in raw:
        parser.feed(ch)
    parser.finish()
    assert [c.name for c in parser.calls] == ["get_weather"]
    assert json.loads(parser.calls[0].arguments) == {"city": "Oslo"}
    assert parser.text == ""
    text = ToolCallParser()
    text.feed('Here:\n```json\n{"a": 1}\n```\nDone.')
    text.finish()
    assert not text.calls
    assert text.text == 'Here:\n```json\n{"a": 1}\n```\nDone.'


# --- forced calls ------------------------------------------------------------------------


@pytest.mark.parametrize("tool", SIGNATURES, ids=lambda t: t["function"]["name"])
def test_required_call_is_always_valid(client: OpenAI, tool: dict[str, Any]) -> None:
    name = tool["function"]["name"]
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": ASK[name]}],
        tools=[tool],
        tool_choice="required",
        max_tokens=160,
        temperature=0,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls and len(choice.message.tool_calls) == 1
    _check_call(choice.message.tool_calls[0], [tool])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_named_function_is_the_one_called_even_when_sampling(client: OpenAI, seed: int) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What's the weather in Oslo?"}],
        tools=SIGNATURES,
        tool_choice={"type": "function", "function": {"name": "add_numbers"}},
        temperature=1.0,
        seed=seed,
        max_tokens=160,
    )
    calls = completion.choices[0].message.tool_calls
    assert calls and [c.function.name for c in calls] == ["add_numbers"]
    _check_call(calls[0], SIGNATURES)
    # As OpenAI: a call the client named ends with "stop", not "tool_calls".
    assert completion.choices[0].finish_reason == "stop"


def _allowed(mode: str, *names: str) -> dict[str, Any]:
    refs = [{"type": "function", "function": {"name": name}} for name in names]
    return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": refs}}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_allowed_tools_narrow_what_may_be_called(client: OpenAI, seed: int) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What's the weather in Oslo?"}],
        tools=SIGNATURES,
        tool_choice=_allowed("required", "add_numbers", "create_event"),  # type: ignore[arg-type]
        parallel_tool_calls=False,
        temperature=1.0,
        seed=seed,
        max_tokens=500,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and len(calls) == 1
    assert calls[0].function.name in {"add_numbers", "create_event"}  # type: ignore[union-attr]
    _check_call(calls[0], SIGNATURES)


def test_allowed_tools_in_auto_mode_never_call_a_tool_left_out(client: OpenAI) -> None:
    # The model called get_weather before in this history; with only add_numbers allowed
    # it may answer in text or call add_numbers, never get_weather.
    for seed in (1, 2, 3):
        completion = client.chat.completions.create(
            model=MODEL,
            messages=CALLED_BEFORE,
            tools=SIGNATURES,
            tool_choice=_allowed("auto", "add_numbers"),  # type: ignore[arg-type]
            temperature=1.0,
            seed=seed,
            max_tokens=120,
        )
        for call in completion.choices[0].message.tool_calls or []:
            assert call.function.name == "add_numbers"  # type: ignore[union-attr]


def test_required_with_several_tools_picks_one_of_them(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": ASK["get_weather"]}],
        tools=SIGNATURES,
        tool_choice="required",
        parallel_tool_calls=False,
        # Greedy SmolLM2 picks create_event here and repeats a word in each string up to
        # the decoder's free-string cap: a valid call, but a long one.
        max_tokens=500,
        temperature=0,
    )
    calls = completion.choices[0].message.tool_calls
    assert calls and len(calls) == 1
    _check_call(calls[0], SIGNATURES)


# --- streaming ---------------------------------------------------------------------------


def _sse(response: httpx.Response) -> list[dict[str, Any]]:
    chunks = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            chunks.append(json.loads(line[6:]))
    return chunks


def test_streamed_call_follows_the_chunk_rules(http: httpx.Client) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": ASK["create_event"]}],
        "tools": SIGNATURES,
        "tool_choice": {"type": "function", "function": {"name": "create_event"}},
        "stream": True,
        # Greedy SmolLM2 may repeat a word in a string up to the decoder's free-string cap
        # (see the test above): the call is valid but long, so leave room for it.
        "max_tokens": 500,
        "temperature": 0,
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        chunks = _sse(response)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0]["role"] == "assistant"
    assert deltas[0]["content"] is None
    assert sum("role" in d for d in deltas) == 1
    tool_deltas = [t for d in deltas for t in d.get("tool_calls", [])]
    assert all(isinstance(t["index"], int) for t in tool_deltas)
    assert all("function" in t for t in tool_deltas)
    first = tool_deltas[0]
    assert first["type"] == "function" and first["id"].startswith("call_")
    assert first["function"]["name"] == "create_event"
    assert sum("id" in t for t in tool_deltas) == 1
    assert sum("name" in t["function"] for t in tool_deltas) == 1
    assert len(tool_deltas) > 2  # the arguments arrive in fragments
    arguments = "".join(t["function"].get("arguments", "") for t in tool_deltas)
    jsonschema.validate(json.loads(arguments), SIGNATURES[3]["function"]["parameters"])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"  # named: as OpenAI's
    assert chunks[-1]["choices"][0]["delta"] == {}


def test_sdk_stream_helper_accumulates_the_call(client: OpenAI) -> None:
    tools: Any = [WEATHER]
    with client.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": ASK["get_weather"]}],
        tools=tools,
        tool_choice="required",
        max_tokens=120,
        temperature=0,
    ) as stream:
        done_events = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    assert len(done_events) == 1
    assert done_events[0].name == "get_weather"
    message = final.choices[0].message
    assert message.tool_calls and len(message.tool_calls) == 1
    arguments = _check_call(message.tool_calls[0], [WEATHER])
    # Strict tools come back parsed by the helper, too.
    assert message.tool_calls[0].function.parsed_arguments == arguments
    assert final.choices[0].finish_reason == "tool_calls"


# --- auto --------------------------------------------------------------------------------

# A history where the assistant already used the tool once: the model calls it again for
# the new question (deterministic with temperature 0).
CALLED_BEFORE: list[dict[str, Any]] = [
    {"role": "user", "content": "What's the weather in Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_rome",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"city": "Rome", "unit": "celsius"}',
                },
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_rome", "content": "21 degrees, clear sky"},
    {"role": "assistant", "content": "It is 21 degrees with a clear sky in Rome."},
    {"role": "user", "content": "And what's the weather in Paris?"},
]


def test_auto_call_is_parsed_not_leaked(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=CALLED_BEFORE, tools=[WEATHER], temperature=0, max_tokens=120
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls
    for call in choice.message.tool_calls:
        _check_call(call, [WEATHER])
    assert "<tool_call>" not in (choice.message.content or "")


def test_auto_may_answer_in_text(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        tools=[WEATHER],
        tool_choice="auto",
        temperature=0,
        max_tokens=40,
    )
    choice = completion.choices[0]
    assert choice.message.tool_calls is None
    assert choice.message.content
    assert "tool_call" not in choice.message.content
    assert choice.finish_reason in {"stop", "length"}


def test_auto_stream_with_parallel_off_makes_at_most_one_call(http: httpx.Client) -> None:
    body = {
        "model": MODEL,
        "messages": CALLED_BEFORE,
        "tools": [WEATHER],
        "parallel_tool_calls": False,
        "temperature": 0,
        "stream": True,
        "max_tokens": 120,
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        chunks = _sse(response)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    indexes = {t["index"] for d in deltas for t in d.get("tool_calls", [])}
    assert indexes == {0}
    assert "<tool_call>" not in "".join(d.get("content") or "" for d in deltas)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_none_means_no_call(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=CALLED_BEFORE, tools=[WEATHER], tool_choice="none", max_tokens=30
    )
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason in {"stop", "length"}


def test_tool_results_in_history_feed_the_next_turn(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=CALLED_BEFORE[:3],
        tools=[WEATHER],
        tool_choice="none",
        max_tokens=30,
        seed=4,  # sampled, but an end-of-text drawn first cannot empty the content by chance
    )
    assert completion.choices[0].message.content


# --- the deprecated functions / function_call ---------------------------------------------

FUNCTIONS = [tool["function"] for tool in SIGNATURES]


def test_legacy_function_call_is_answered_in_the_old_shape(client: OpenAI) -> None:
    completion = client.chat.completions.create(  # type: ignore[call-overload]
        model=MODEL,
        messages=[{"role": "user", "content": ASK["get_weather"]}],
        functions=FUNCTIONS,
        function_call={"name": "get_weather"},
        temperature=0,
        max_tokens=160,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.tool_calls is None and choice.message.content is None
    call = choice.message.function_call
    assert call is not None and call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), WEATHER["function"]["parameters"])


def test_legacy_function_call_streams_name_then_arguments(http: httpx.Client) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": ASK["add_numbers"]}],
        "functions": FUNCTIONS,
        "function_call": {"name": "add_numbers"},
        "temperature": 0,
        "stream": True,
        "max_tokens": 160,
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        chunks = _sse(response)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["function_call"] for d in deltas if d.get("function_call")]
    assert [c.get("name") for c in calls if c.get("name")] == ["add_numbers"]
    assert "tool_calls" not in "".join(json.dumps(d) for d in deltas)
    arguments = json.loads("".join(c.get("arguments") or "" for c in calls))
    jsonschema.validate(arguments, SIGNATURES[2]["function"]["parameters"])
    assert chunks[-1]["choices"][0]["finish_reason"] == "function_call"


def test_legacy_function_result_in_history(client: OpenAI) -> None:
    completion = client.chat.completions.create(  # type: ignore[call-overload]
        model=MODEL,
        messages=[
            {"role": "user", "content": "What's the weather in Rome?"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {
                    "name": "get_weather",
                    "arguments": '{"city": "Rome", "unit": "celsius"}',
                },
            },
            {"role": "function", "name": "get_weather", "content": '{"temperature": 18}'},
        ],
        functions=[WEATHER["function"]],
        function_call="none",
        temperature=0,
        max_tokens=30,
    )
    choice = completion.choices[0]
    assert choice.message.function_call is None and choice.message.content
    assert choice.finish_reason in {"stop", "length"}


def test_legacy_function_result_may_be_null(http: httpx.Client) -> None:
    body = {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "Ping the server."},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "ping", "arguments": "{}"},
            },
            {"role": "function", "name": "ping", "content": None},
        ],
        "max_tokens": 5,
    }
    assert http.post("/v1/chat/completions", json=body).status_code == 200


# --- bad requests ------------------------------------------------------------------------

BAD_TOOLS: list[tuple[dict[str, Any], str]] = [
    ({"tools": [_tool("bad name!", {"type": "object"})]}, "tools[0].function.name"),
    ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
    ({"tools": [_tool("f", {"type": "string"})]}, "tools[0].function.parameters"),
    (
        {"tools": [_tool("f", {"type": "object", "properties": {"x": {"type": "strng"}}})]},
        "tools[0].function.parameters",
    ),
    (
        {"tools": [WEATHER, _tool("f", {"type": "object", "properties": {"x": {"not": {}}}})]},
        "tools[1].function.parameters",
    ),
    (
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "tool_choice",
    ),
    ({"tool_choice": "required"}, "tool_choice"),
    (
        {"tools": [WEATHER], "tool_choice": _allowed("required", "get_weather", "nope")},
        "tool_choice",
    ),
    ({"tools": [WEATHER], "tool_choice": _allowed("sometimes", "get_weather")}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [WEATHER], "functions": [WEATHER["function"]]}, "functions"),
    ({"functions": [WEATHER["function"]], "function_call": {"name": "nope"}}, "function_call"),
    ({"functions": [WEATHER["function"], WEATHER["function"]]}, "functions[1].name"),
    ({"functions": [{"name": "bad name!"}]}, "functions[0].name"),
    ({"functions": [{"name": "f", "parameters": {"type": "string"}}]}, "functions[0].parameters"),
    (
        {
            "functions": [
                {"name": "f", "strict": True, "parameters": {"type": "object", "not": {}}}
            ],
            "function_call": {"name": "f"},
        },
        "functions[0].parameters",
    ),
    ({"function_call": "auto"}, "function_call"),
    ({"functions": [WEATHER["function"]], "tool_choice": "required"}, "tool_choice"),
]


@pytest.mark.parametrize(("extra", "param"), BAD_TOOLS)
def test_bad_tool_definitions_are_400_with_param(
    http: httpx.Client, extra: dict[str, Any], param: str
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_unsupported_keyword_is_named(http: httpx.Client) -> None:
    tool = _tool("f", {"type": "object", "properties": {"x": {"not": {"type": "string"}}}})
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "tools": [tool]}
    error = http.post("/v1/chat/completions", json=body).json()["error"]
    assert "`not`" in error["message"]
    assert error["code"] == "unsupported_schema_keyword"


def test_non_strict_tool_with_unenforceable_keyword_still_works(client: OpenAI) -> None:
    tool = _tool(
        "tag_items",
        {
            "type": "object",
            "properties": {
                "tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "uniqueItems": True,
                    "maxItems": 3,
                }
            },
            "required": ["tags"],
        },
        strict=False,
    )
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Tag this: red apple"}],
        tools=[tool],  # type: ignore[list-item]
        tool_choice="required",
        max_tokens=80,
        temperature=0,
    )
    calls = completion.choices[0].message.tool_calls
    assert calls
    arguments = json.loads(calls[0].function.arguments)
    assert isinstance(arguments["tags"], list) and len(arguments["tags"]) <= 3


def test_sdk_parse_with_a_pydantic_function_tool(client: OpenAI) -> None:
    import openai
    from pydantic import BaseModel, Field

    class LookupOrder(BaseModel):
        order_id: int = Field(ge=1, le=99999)
        include_items: bool

    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Where is my order 4242?"}],
        tools=[openai.pydantic_function_tool(LookupOrder)],
        tool_choice="required",
        max_tokens=80,
        temperature=0,
    )
    calls = completion.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "LookupOrder"
    assert isinstance(calls[0].function.parsed_arguments, LookupOrder)
