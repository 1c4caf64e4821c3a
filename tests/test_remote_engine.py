"""A chat model served by a remote OpenAI-compatible engine (``engine = "openai"``).

The engine is llama-cpp-python's own server on the packaged model, started on loopback;
oasis in front of it keeps the API's state (stored and chained responses, background
jobs) while the engine templates, parses tool calls and constrains output itself.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.server import Server, free_port, sdk_for, start_server, write_config
from tests.smollm2 import NEVER_END
from tests.upstream_engine import Engine, RefusingEngine, start_engine, start_refusing_engine

MODEL = "remote-smol"
PAIR = "remote-pair"  # two upstreams: the module's engine and one started by a test
DEAD = "remote-dead"  # nothing listens at its URL
REFUSING = "remote-refusing"  # refuses long prompts with a 400, the rest with a 500
WRONG_KEY = "remote-wrong-key"  # the engine, with a key it does not take
ENGINE_KEY = "sk-engine"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
# llama-cpp-python's server takes a schema as {"type": "json_object", "schema": …}.
OPTIONS = {"structured_output": "json_object_schema", "health_interval": 0.5}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with start_engine(tmp_path_factory.mktemp("engine"), n_ctx=2048, api_key=ENGINE_KEY) as up:
        yield up


@pytest.fixture(scope="module")
def refusing() -> Iterator[RefusingEngine]:
    with start_refusing_engine() as up:
        yield up


@pytest.fixture(scope="module")
def second_port() -> int:
    """Where the second upstream of ``PAIR`` will listen once a test starts it."""
    return free_port()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    engine: Engine,
    refusing: RefusingEngine,
    second_port: int,
) -> Iterator[Server]:
    config = {
        "preload": [MODEL],
        "models": [
            {"id": MODEL, "kind": "chat", "url": engine.url, "upstream_model": "smol",
             "api_key": ENGINE_KEY, "options": OPTIONS},
            {"id": PAIR, "kind": "chat", "engine": "openai", "api_key": ENGINE_KEY,
             "urls": [f"http://127.0.0.1:{second_port}/v1", engine.url], "options": OPTIONS},
            {"id": WRONG_KEY, "kind": "chat", "url": engine.url, "api_key": "sk-wrong"},
            {"id": DEAD, "kind": "chat", "url": f"http://127.0.0.1:{free_port()}/v1",
             "api_key": "sk-upstream"},
            {"id": REFUSING, "kind": "chat", "url": refusing.url},
        ],
    }  # fmt: skip
    with start_server(tmp_path_factory.mktemp("oasis-remote"), config=config) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[OpenAI]:
    with sdk_for(server, "sk-test") as sdk:
        yield sdk


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=300) as raw:
        yield raw


def test_chat_plain_and_streamed(client: OpenAI) -> None:
    done = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        logit_bias=NEVER_END,  # the engine's token ids, passed through
    )
    assert done.model == MODEL
    assert done.choices[0].finish_reason == "length" and done.choices[0].message.content
    assert done.usage is not None and 0 < done.usage.completion_tokens <= 8
    with client.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "Count to five."}],
        max_tokens=12,
        logit_bias=NEVER_END,
        stream_options={"include_usage": True},
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.current_completion_snapshot  # the final one raises on "length"
    assert final.choices[0].finish_reason == "length"
    assert "".join(deltas) == final.choices[0].message.content and deltas
    # This engine reports no usage when streaming: its chunks (one per token) are counted.
    assert final.usage is not None and 0 < final.usage.completion_tokens <= 12


def test_completions(client: OpenAI) -> None:
    done = client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=6, logit_bias=NEVER_END
    )
    assert done.choices[0].finish_reason == "length" and done.choices[0].text
    assert done.usage is not None and 0 < done.usage.completion_tokens <= 6


def test_responses_stored_chained_streamed(client: OpenAI) -> None:
    first = client.responses.create(
        model=MODEL, input="My name is Ada.", max_output_tokens=16, store=True, temperature=0
    )
    assert first.status in {"completed", "incomplete"} and first.output_text
    assert client.responses.retrieve(first.id).output_text == first.output_text
    with client.responses.stream(
        model=MODEL,
        input="What is my name?",
        previous_response_id=first.id,
        max_output_tokens=16,
        temperature=0,
    ) as stream:
        events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds
    assert kinds[-1] in {"response.completed", "response.incomplete"}  # max_output_tokens
    second = client.responses.retrieve(events[0].response.id)  # type: ignore[union-attr]
    assert second.previous_response_id == first.id and second.output_text
    assert second.usage is not None and second.usage.output_tokens > 0
    # The chain reached the engine: the second prompt holds the first turn.
    history = client.responses.input_items.list(second.id)
    texts = json.dumps([item.model_dump() for item in history.data])
    assert "My name is Ada." in texts and first.output_text[:10] in texts


def test_background_response(client: OpenAI) -> None:
    queued = client.responses.create(
        model=MODEL, input="Say hi.", background=True, max_output_tokens=8
    )
    assert queued.status in {"queued", "in_progress"}
    deadline = time.monotonic() + 120
    final = client.responses.retrieve(queued.id)
    while final.status in {"queued", "in_progress"} and time.monotonic() < deadline:
        time.sleep(0.2)
        final = client.responses.retrieve(queued.id)
    assert final.status in {"completed", "incomplete"}, final.error
    assert final.output_text


def test_function_tool_call(client: OpenAI) -> None:
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    chat = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=40,
        temperature=0,
    )
    choice = chat.choices[0]
    assert choice.finish_reason == "stop"  # as OpenAI ends a call the client named
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments, strict=False)["city"], str)

    # Responses: the call streams as a function_call item; its output continues the chain.
    with client.responses.stream(
        model=MODEL,
        input="What is the weather in Paris?",
        tools=[{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False}],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=40,
        temperature=0,
    ) as stream:
        kinds = [event.type for event in stream]
        called = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    call = next(item for item in called.output if item.type == "function_call")
    assert call.name == "get_weather" and "city" in json.loads(call.arguments, strict=False)
    answered = client.responses.create(
        model=MODEL,
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}],
        max_output_tokens=16,
    )
    assert answered.status in {"completed", "incomplete"} and answered.output_text


def test_structured_output(client: OpenAI) -> None:
    chat = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Invent a person."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON, "strict": True},
        },
        max_tokens=60,
        temperature=0,
    )
    # llama-cpp-python's JSON grammar lets raw control characters into strings.
    person = json.loads(chat.choices[0].message.content or "", strict=False)
    assert isinstance(person["name"], str) and isinstance(person["age"], int)
    response = client.responses.create(
        model=MODEL,
        input="Invent a person.",
        text={"format": {"type": "json_schema", "name": "person", "schema": PERSON}},
        max_output_tokens=60,
        temperature=0,
    )
    person = json.loads(response.output_text, strict=False)
    assert isinstance(person["name"], str) and isinstance(person["age"], int)


def test_upstream_400_names_the_param(http: httpx.Client) -> None:
    too_long = "hello world " * 300
    chat = http.post(
        "/v1/chat/completions",
        json={"model": REFUSING, "messages": [{"role": "user", "content": too_long}]},
    )
    assert chat.status_code == 400, chat.text
    error = chat.json()["error"]
    assert error["param"] == "messages" and error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error" and "context" in error["message"]
    # Responses calls it `input`; streamed, the refusal is still a status code.
    responses = http.post(
        "/v1/responses", json={"model": REFUSING, "input": too_long, "stream": True}
    )
    assert responses.status_code == 400, responses.text
    assert responses.json()["error"]["param"] == "input"


def test_upstream_500_is_a_retryable_503(http: httpx.Client) -> None:
    answer = http.post(
        "/v1/chat/completions",
        json={"model": REFUSING, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["x-should-retry"] == "true"
    error = answer.json()["error"]
    assert error["code"] == "engine_unavailable" and "CUDA out of memory" in error["message"]


def test_ready_asks_the_upstream(http: httpx.Client) -> None:
    ready = http.get("/health/ready")
    assert ready.status_code == 200, ready.text  # the preloaded remote model's server answers


def test_dead_upstream_is_a_retryable_503(http: httpx.Client) -> None:
    for stream in (False, True):
        answer = http.post(
            "/v1/chat/completions",
            json={"model": DEAD, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
        )
        assert answer.status_code == 503, answer.text
        assert answer.headers["x-should-retry"] == "true"
        error = answer.json()["error"]
        assert error["code"] == "engine_unavailable" and error["type"] == "server_error"
        assert "sk-upstream" not in answer.text


def test_engine_refusing_our_key_is_a_config_503(http: httpx.Client) -> None:
    answer = http.post(
        "/v1/chat/completions",
        json={"model": WRONG_KEY, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["x-should-retry"] == "false"  # fixing the config takes a person
    error = answer.json()["error"]
    assert error["code"] == "model_unavailable" and "api_key" in error["message"]
    assert "sk-wrong" not in answer.text


def test_hang_up_stops_the_upstream(server: Server, engine: Engine, client: OpenAI) -> None:
    before = engine.log().count("Disconnected from client")
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a long story."}],
        "max_tokens": 1500,
        "logit_bias": NEVER_END,
        "stream": True,
    }
    with (
        httpx.Client(base_url=server.base_url, timeout=120) as raw,
        raw.stream("POST", "/v1/chat/completions", json=body) as answer,
    ):
        assert answer.status_code == 200
        tokens = 0
        for line in answer.iter_lines():
            tokens += line.startswith("data: ") and '"content":"' in line
            if tokens >= 3:
                break  # hang up mid-generation
    # The engine runs one request at a time: it is free again only once it noticed.
    deadline = time.monotonic() + 60
    while engine.log().count("Disconnected from client") == before:
        assert time.monotonic() < deadline, "the engine never saw the client hang up"
        time.sleep(0.2)
    done = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4, timeout=60
    )
    assert done.choices[0].message is not None


def test_streams_reuse_their_connection(engine: Engine, client: OpenAI) -> None:
    """A stream read to its end leaves its connection in the pool for the next request
    (the engine's access log names each request's client port)."""
    before = len(engine.log())
    for _ in range(4):
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=2,
            logit_bias=NEVER_END,
            stream=True,
        )
        assert [chunk for chunk in stream]
    ports = re.findall(r':(\d+) - "POST /v1/chat/completions ', engine.log()[before:])
    assert len(ports) == 4 and len(set(ports)) < 4, ports


def test_two_urls_balanced_with_health_checks(
    tmp_path: Path, engine: Engine, second_port: int, client: OpenAI
) -> None:
    def ask() -> None:
        client.chat.completions.create(
            model=PAIR, messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )

    # The first upstream is down: requests move to the live one (connect errors only).
    ask()
    ask()
    with start_engine(tmp_path, port=second_port, n_ctx=512, api_key=ENGINE_KEY) as second:
        # The health check puts it back; requests then reach both.
        deadline = time.monotonic() + 60
        while second.requests() == 0:
            assert time.monotonic() < deadline, "the revived upstream got no request"
            ask()
        first_before = engine.requests()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: ask(), range(8)))
        assert engine.requests() > first_before
        assert second.requests() >= 2
    ask()  # down again: the live upstream still answers


def test_config_of_remote_models(tmp_path: Path) -> None:
    from oasis.config import ConfigError, load_settings
    from oasis.models.registry import spec_from_config

    def config(model: dict[str, Any]) -> Path:
        return write_config(tmp_path / "oasis.toml", {"models": [model]})

    settings = load_settings(
        config({"id": "m", "url": "http://e:8000/v1/", "api_key": "sk-secret-engine-key"})
    )
    spec = spec_from_config(settings.models[0])
    assert spec.engine == "openai" and spec.kind == "chat"
    assert "sk-secret-engine-key" not in repr(spec)  # nor in fingerprints or logs
    for wrong, says in [
        ({"id": "m", "url": "http://e/v1", "path": "/m.gguf"}, "no `path`"),
        ({"id": "m", "url": "http://e/v1", "urls": ["http://f/v1"]}, "not both"),
        ({"id": "m", "url": "e:8000/v1"}, r"not an http\(s\) URL"),
    ]:
        with pytest.raises(ConfigError, match=says):
            load_settings(config(wrong))
