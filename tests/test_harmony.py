"""gpt-oss's harmony format mapped onto our items, proved on a scripted engine.

No gpt-oss weights can be installed here. The scripted engine (tests/scripted_tokens.py)
plays the model token by token, with harmony's markers as single tokens as in gpt-oss's
vocabulary; everything else is the real server: the local chat backend renders the
template and parses the channels, Responses and Chat build their items, and web search
runs against the loopback world. ``analysis`` becomes reasoning, ``commentary`` calls
become function or hosted tool calls, ``final`` becomes the message, and web search is
offered as gpt-oss's own ``browser`` tool.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.scripted_tokens import install_plugin
from tests.server import Server, sdk_for, start_server
from tests.web_world import World, world

__all__ = ["world"]  # the loopback web's module fixture, used here by name

MODEL = "gpt-oss-scripted"
REPO = Path(__file__).resolve().parent.parent

# The shape of gpt-oss's own template, reduced to what these tests render: the browser
# namespace when asked for it, functions in a developer message, past calls and results.
TEMPLATE = """<|start|>system<|message|>You are a helpful assistant.
{%- if builtin_tools and 'browser' in builtin_tools %}

# Tools

## browser

namespace browser {
type search = (_: {query: string, topn?: number}) => any;
type open = (_: {id?: number | string, cursor?: number, loc?: number}) => any;
type find = (_: {pattern: string, cursor?: number}) => any;
} // namespace browser
{%- endif %}
# Valid channels: analysis, commentary, final.<|end|>
{%- if tools %}<|start|>developer<|message|># Tools

## functions

namespace functions {
{%- for tool in tools %}
type {{ tool.function.name }} = (_: {{ tool.function.parameters | tojson }}) => any;
{%- endfor %}
} // namespace functions<|end|>
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'assistant' and message.tool_calls %}
{%- for call in message.tool_calls %}<|start|>assistant<|channel|>commentary \
to=functions.{{ call.function.name }} <|constrain|>json<|message|>\
{{ call.function.arguments | tojson }}<|call|>
{%- endfor %}
{%- elif message.role == 'tool' %}<|start|>functions.{{ message.name or 'tool' }} \
to=assistant<|channel|>commentary<|message|>{{ message.content }}<|end|>
{%- elif message.role == 'assistant' %}<|start|>assistant<|channel|>final<|message|>\
{{ message.content }}<|end|>
{%- else %}<|start|>{{ message.role }}<|message|>{{ message.content }}<|end|>
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|start|>assistant{% endif %}"""

# Trigger (the latest one found in the prompt wins) → what the "model" says. A reply ends
# where gpt-oss's end-of-generation token (<|return|> or <|call|>) would come.
REPLIES = {
    "Say hello": "<|channel|>analysis<|message|>The user wants a greeting.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>Hello there!",
    "weather in Paris": "<|channel|>analysis<|message|>I should look it up.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
    '<|message|>{"city": "Paris"}',
    "sunny, 21 C": "<|channel|>final<|message|>It is sunny in Paris.",
    # Offered only as the browser namespace: without it this reply is never chosen.
    "namespace browser": "<|channel|>analysis<|message|>Search first.<|end|>"
    "<|start|>assistant<|channel|>analysis to=browser.search code"
    '<|message|>{"query": "capital of France"}',
    "Paris travel facts": "<|channel|>final<|message|>Paris [1]",
    # Browsing: search (low context: the second result is a snippet), open the second
    # result by its number, find in it, answer. Each trigger is text that only the previous
    # step's tool output holds (the medium search above reads the same pages).
    "Browse for Lyon food": "<|channel|>analysis to=browser.search code"
    '<|message|>{"query": "Lyon food"}',
    "its bouchons.\n\n[3] Plain notes": "<|channel|>analysis to=browser.open code"
    '<|message|>{"id": 2}',
    "meets the Saone.<|end|>": "<|channel|>analysis to=browser.find code"
    '<|message|>{"pattern": "bouchons"}',
    "Saone.…": "<|channel|>final<|message|>Lyon is known for its bouchons [2].",
    # A later turn reads that browsing back in the browser's own messages: the page it
    # opened, then its find, as gpt-oss calls them (not as functions.web_search).
    " (read on an earlier turn).<|end|><|start|>assistant<|channel|>analysis "
    'to=browser.find code<|message|>{"pattern": "bouchons"': "<|channel|>final<|message|>"
    "As I read before: bouchons.",
    "Open a local file": "<|channel|>analysis to=browser.open code"
    '<|message|>{"id": "file:///etc/passwd"}',
    "Could not open the page": "<|channel|>final<|message|>I could not open it.",
    # Grammars: each reply breaks the format the request asks for.
    "Weather, chatty please": '<|channel|>final<|message|>I think you mean {"city": "Paris"} ok?',
    "Describe Paris as JSON": "<|channel|>analysis<|message|>Let me think.<|end|>"
    '<|start|>assistant<|channel|>final<|message|>Sure! {"city": "Paris", "sunny": tru}',
    "JSON after thinking": "<|channel|>analysis<|message|>Think.<|end|>"
    '<|start|>assistant<|channel|>final<|message|>Result: {"city": "Lyon", "sunny": false} ok',
    # Answers instead of calling, naming a tool that is not offered on the way.
    "Time in Tokyo, no tools": "<|channel|>commentary to=functions.get_secret <|constrain|>json"
    '<|message|>{"key": 1}<|call|><|start|>assistant<|channel|>final<|message|>'
    'I know it: get_time says {"zone": "Asia/Tokyo"} ok',
}
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "sunny": {"type": "boolean"}},
    "required": ["city", "sunny"],
    "additionalProperties": False,
}
CITY_SCHEMA = {"name": "city", "schema": CITY, "strict": True}
CITY_FORMAT = {"format": {"type": "json_schema", **CITY_SCHEMA}}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


TIME = {
    "type": "function",
    "name": "get_time",
    "description": "The time in a zone.",
    "parameters": {
        "type": "object",
        "properties": {"zone": {"type": "string"}},
        "required": ["zone"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, world: World) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("harmony")
    script = root / "gpt-oss-script.json"
    script.write_text(json.dumps({"chat_template": TEMPLATE, "replies": REPLIES}))
    site = install_plugin(root / "site")
    path = os.pathsep.join(p for p in (str(site), str(REPO), os.environ.get("PYTHONPATH")) if p)
    srv = start_server(
        root / "data",
        config={"models": [{"id": MODEL, "engine": "scripted-tokens", "path": str(script)}]},
        env={"PYTHONPATH": path, **world.env},
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def sdk(server: Server) -> Iterator[OpenAI]:
    with sdk_for(server, "sk-test") as client:
        yield client


def test_analysis_is_reasoning_and_final_is_the_message(sdk: OpenAI) -> None:
    with sdk.responses.stream(model=MODEL, input="Say hello") as stream:
        events = list(stream)
    response = stream.get_final_response()
    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert "".join(c.text for c in reasoning.content or []) == "The user wants a greeting."
    assert response.output_text == "Hello there!"  # no marker leaks into the text
    assert "response.reasoning_text.delta" in {e.type for e in events}
    chat = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello"}]
    )
    message = chat.choices[0].message
    assert message.content == "Hello there!"
    assert message.reasoning_content == "The user wants a greeting."  # type: ignore[attr-defined]


def test_a_commentary_call_is_a_function_call_and_its_output_continues(sdk: OpenAI) -> None:
    first = sdk.responses.create(
        model=MODEL,
        input="What is the weather in Paris?",
        tools=[WEATHER],  # type: ignore[list-item]
    )
    call = first.output[-1]
    assert call.type == "function_call"
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    second = sdk.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.output_text == "It is sunny in Paris."

    chat = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[{"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}],  # type: ignore[list-item,misc]
    )
    choice = chat.choices[0]
    assert choice.finish_reason == "tool_calls"
    (tool_call,) = choice.message.tool_calls or []
    assert tool_call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]


def test_web_search_is_offered_as_the_browser_tool(sdk: OpenAI, world: World) -> None:
    response = sdk.responses.create(
        model=MODEL,
        input="Which city is the capital of France?",
        tools=[{"type": "web_search"}],
        max_tool_calls=1,
    )
    kinds = [item.type for item in response.output]
    assert kinds[0] == "reasoning" and "web_search_call" in kinds, kinds
    search = next(item for item in response.output if item.type == "web_search_call")
    assert search.action.type == "search"  # type: ignore[union-attr]
    assert search.action.query == "capital of France"  # type: ignore[union-attr]
    assert world.searches[-1]["q"] == ["capital of France"]
    message = response.output[-1]
    assert message.type == "message" and response.output_text == "Paris [1]"
    (citation,) = message.content[0].annotations  # type: ignore[union-attr]
    assert citation.type == "url_citation"
    assert citation.url == world.results()[0]["url"]


def test_browser_open_and_find_read_a_result_through_web_search(sdk: OpenAI, world: World) -> None:
    with sdk.responses.stream(
        model=MODEL,
        input="Browse for Lyon food",
        tools=[{"type": "web_search", "search_context_size": "low"}],
    ) as stream:
        events = list(stream)
    response = stream.get_final_response()
    actions = [item.action for item in response.output if item.type == "web_search_call"]
    lyon = world.results()[1]["url"]
    assert [a.type for a in actions] == ["search", "open_page", "open_page", "find_in_page"]
    assert actions[0].query == "Lyon food"  # type: ignore[union-attr]
    assert actions[1].url == world.results()[0]["url"]  # the search reads its top page
    assert actions[2].url == lyon  # type: ignore[union-attr]  # {"id": 2}: the second result
    assert actions[3].pattern == "bouchons" and actions[3].url == lyon  # type: ignore[union-attr]
    assert all(item.status == "completed" for item in response.output[:-1])  # type: ignore[union-attr]
    assert response.output_text == "Lyon is known for its bouchons [2]."
    (citation,) = response.output[-1].content[0].annotations  # type: ignore[union-attr]
    assert citation.type == "url_citation" and citation.url == lyon
    kinds = [e.type for e in events]
    assert kinds.count("response.web_search_call.completed") == 4

    # Chained, the model reads its search, the page it opened and its find again, as the
    # browser's calls and messages (the page read by the search itself is not repeated).
    again = sdk.responses.create(
        model=MODEL,
        previous_response_id=response.id,
        input="What did you read?",
        tools=[{"type": "web_search", "search_context_size": "low"}],
    )
    assert again.output_text == "As I read before: bouchons."


def test_browser_open_goes_through_the_url_policy(sdk: OpenAI) -> None:
    response = sdk.responses.create(
        model=MODEL, input="Open a local file", tools=[{"type": "web_search"}]
    )
    opened = response.output[0]
    assert opened.type == "web_search_call" and opened.status == "failed"
    assert opened.action.type == "open_page"
    assert opened.action.url == "file:///etc/passwd"  # type: ignore[union-attr]
    assert response.output_text == "I could not open it."


def test_a_forced_function_is_called_with_arguments_under_its_schema(sdk: OpenAI) -> None:
    # The script answers in the final channel with prose around the JSON; the forced
    # header makes it a call of get_weather, and the grammar keeps only valid arguments.
    response = sdk.responses.create(
        model=MODEL,
        input="Weather, chatty please",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
    )
    (call,) = response.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    chat = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather, chatty please"}],
        tools=[{"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}],  # type: ignore[list-item,misc]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    (tool_call,) = chat.choices[0].message.tool_calls or []
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert chat.choices[0].finish_reason == "stop"  # as OpenAI ends a call it was told to make


def test_a_json_schema_format_holds_in_the_final_channel(sdk: OpenAI) -> None:
    # The script would think, then write "Sure! {... "sunny": tru}": the final header is
    # forced and its body kept to the schema.
    response = sdk.responses.create(model=MODEL, input="Describe Paris as JSON", text=CITY_FORMAT)  # type: ignore[arg-type]
    assert json.loads(response.output_text) == {"city": "Paris", "sunny": True}
    chat = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Paris as JSON"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": CITY, "strict": True},
        },  # type: ignore[typeddict-item]
    )
    assert json.loads(chat.choices[0].message.content or "") == {"city": "Paris", "sunny": True}


def test_a_format_beside_tools_holds_once_the_model_answers(sdk: OpenAI) -> None:
    # Tools may still be called, so nothing is forced up front: the model thinks, and from
    # the final header it writes on, the answer keeps to the schema.
    response = sdk.responses.create(
        model=MODEL,
        input="JSON after thinking",
        tools=[WEATHER],  # type: ignore[list-item]
        text=CITY_FORMAT,  # type: ignore[arg-type]
    )
    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning = response.output[0]
    assert "".join(c.text for c in reasoning.content or []) == "Think."  # type: ignore[union-attr]
    assert json.loads(response.output_text) == {"city": "Lyon", "sunny": False}


def test_required_among_several_tools_calls_one_of_them(sdk: OpenAI) -> None:
    # The script names a tool that is not offered, then answers in prose: "required"
    # forces the header's start, and the grammar keeps the recipient to an offered tool
    # and the body to that tool's schema.
    response = sdk.responses.create(
        model=MODEL,
        input="Time in Tokyo, no tools",
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice="required",
    )
    (call,) = response.output
    assert call.type == "function_call" and call.name == "get_time"
    arguments = json.loads(call.arguments)  # what the script had left, under the schema
    assert set(arguments) == {"zone"} and isinstance(arguments["zone"], str)
    chat = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Time in Tokyo, no tools"}],
        tools=[
            {"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}  # type: ignore[misc]
            for t in (WEATHER, TIME)
        ],
        tool_choice="required",
    )
    (tool_call,) = chat.choices[0].message.tool_calls or []
    assert tool_call.function.name == "get_time"  # type: ignore[union-attr]
    assert json.loads(tool_call.function.arguments) == arguments  # type: ignore[union-attr]


def test_the_required_grammar_admits_only_offered_recipients() -> None:
    from oasis.core.constraints import ConstraintState, harmony_call_grammar
    from oasis.core.conversation import FunctionTool
    from oasis.core.harmony import CHANNEL, call_header, header_lark
    from tests.scripted_tokens import ScriptedEngine

    engine = ScriptedEngine.__new__(ScriptedEngine)  # only its vocabulary is used
    engine._markers = ["<|call|>", "<|channel|>", "<|constrain|>", "<|message|>"]
    engine._guidance = None
    tools = [
        FunctionTool("get_time", None, TIME["parameters"]),  # type: ignore[arg-type]
        FunctionTool(
            "web_search", None, {"type": "object", "properties": {"query": {"type": "string"}}}
        ),
    ]
    headers = [
        header_lark(call_header(tool.name, builtin).removeprefix(CHANNEL), lambda _: True)
        for tool, builtin in zip(tools, [None, "browser.search"], strict=True)
    ]
    grammar = harmony_call_grammar(headers, tools, ["tools[0].parameters", "tools[1].parameters"])

    def written(text: str) -> str:
        """What of ``text`` the grammar lets through, token by token."""
        state = ConstraintState(engine._guidance_tokenizer(), grammar, engine.vocab_size())
        out = b""
        for token in engine.tokenize(text):
            if not state.allows(token):
                break
            out += engine._bytes(token)
            if state.advance(token, engine._bytes(token)):
                break
        return out.decode()

    good = 'commentary to=functions.get_time <|constrain|>json<|message|>{"zone": "UTC"}'
    assert written(good) == good
    browse = 'analysis to=browser.search code<|message|>{"query": "x"}'
    assert written(browse) == browse
    refused = written("commentary to=functions.get_secret <|constrain|>json<|message|>{}")
    assert refused == "commentary to=functions.get_"
    assert written("final<|message|>Hello") == ""
    # The body keeps to the chosen tool's schema (get_time allows only "zone").
    body = written('commentary to=functions.get_time <|constrain|>json<|message|>{"city"')
    assert body.endswith('{"')


def test_the_parser_reads_markers_cut_across_pieces() -> None:
    from oasis.core.harmony import HarmonyParser, ThoughtPiece
    from oasis.core.tool_calls import CallArguments, CallDone, CallStarted, TextPiece

    stream = (
        "<|channel|>analysis<|message|>a < b<|end|><|start|>assistant<|channel|>commentary "
        'to=browser.search code<|message|>{"query": "x"}<|call|>'
        "<|start|>assistant<|channel|>final<|message|>Done."
    )
    parser = HarmonyParser({"browser.search": "web_search"})
    events = [e for ch in stream for e in parser.feed(ch)] + parser.finish()
    assert "".join(e.text for e in events if isinstance(e, ThoughtPiece)) == "a < b"
    assert "".join(e.text for e in events if isinstance(e, TextPiece)) == "Done."
    (started,) = [e for e in events if isinstance(e, CallStarted)]
    assert started.name == "web_search"
    assert "".join(e.delta for e in events if isinstance(e, CallArguments)) == '{"query": "x"}'
    (done,) = [e for e in events if isinstance(e, CallDone)]
    assert done.call.arguments == '{"query": "x"}' and parser.calls == [done.call]
    assert parser.text == "Done." and parser.reasoning == "a < b"
