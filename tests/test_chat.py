"""POST /v1/chat/completions on the packaged SmolLM2, through the official SDK."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from openai import OpenAI

from tests.logprob_helpers import spelled
from tests.server import Server
from tests.smollm2 import NEVER_END

MODEL = "gpt-4o-mini"  # an alias of smollm2-135m-instruct
HELLO = [{"role": "user", "content": "Write one sentence about the sea."}]


def test_basic_completion(client: OpenAI) -> None:
    # Sampled at the default temperature, but seeded: the same answer every run, so an
    # end-of-text drawn as the first token cannot empty the content by chance.
    completion = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=24, seed=11)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    assert choice.logprobs is None
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_every_role_and_text_parts(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3+3?"},
        ],
        max_completion_tokens=8,
        temperature=0,
    )
    assert completion.choices[0].message.content is not None


def test_tool_role_in_history_is_accepted(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
        ],
        max_tokens=12,
    )
    assert completion.choices[0].message.content is not None


def test_length_limit_and_exact_usage(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=7, temperature=0, logprobs=True
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 7
    assert choice.logprobs is not None and choice.logprobs.content is not None
    # One logprob entry per generated token, and together they spell the content.
    assert len(choice.logprobs.content) == 7
    assert spelled(t.bytes for t in choice.logprobs.content) == choice.message.content


def test_a_repeated_prompt_is_served_from_the_cache(client: OpenAI) -> None:
    ask = {"model": MODEL, "messages": HELLO, "max_tokens": 3, "temperature": 0}
    client.chat.completions.create(**ask)  # type: ignore[call-overload]
    again = client.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    # All but the last prompt token come from the cache (one is evaluated for fresh logits).
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1
    chunks = list(
        client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True})
    )
    streamed = chunks[-1].usage
    assert streamed is not None and streamed.prompt_tokens_details is not None
    assert streamed.prompt_tokens_details.cached_tokens == streamed.prompt_tokens - 1


def test_prompt_tokens_are_stable(client: OpenAI) -> None:
    a = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=1)
    b = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=1)
    longer = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": HELLO[0]["content"] + " Please."}],
        max_tokens=1,
    )
    assert a.usage and b.usage and longer.usage
    assert a.usage.prompt_tokens == b.usage.prompt_tokens
    assert longer.usage.prompt_tokens > a.usage.prompt_tokens


def test_same_seed_same_text(client: OpenAI) -> None:
    kwargs = dict(model=MODEL, messages=HELLO, max_tokens=24, temperature=1.0, seed=1234)
    first = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    second = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    assert first.choices[0].message.content == second.choices[0].message.content
    others = {
        client.chat.completions.create(**{**kwargs, "seed": s}).choices[0].message.content  # type: ignore[call-overload]
        for s in (1, 2, 3)
    }
    assert len(others) > 1  # the seed really drives sampling


def test_temperature_zero_is_greedy(client: OpenAI) -> None:
    outs = {
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=16, temperature=0)
        .choices[0]
        .message.content
        for _ in range(2)
    }
    assert len(outs) == 1


def test_top_p_tiny_is_greedy(client: OpenAI) -> None:
    greedy = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=16, temperature=0
    )
    nucleus = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=16, temperature=1.5, top_p=1e-9, seed=7
    )
    assert greedy.choices[0].message.content == nucleus.choices[0].message.content


def test_stop_sequence_is_left_out(client: OpenAI) -> None:
    base = (
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=24, temperature=0)
        .choices[0]
        .message.content
    )
    assert base and len(base) > 6
    stop = base[4:7]
    stopped = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=24, temperature=0, stop=[stop, "zzzz"]
    )
    choice = stopped.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content == base[: base.index(stop)]


def test_n_choices(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=8, n=3, seed=5, logprobs=True
    )
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert completion.usage is not None
    generated = sum(len(c.logprobs.content or []) for c in completion.choices)  # type: ignore[union-attr]
    assert completion.usage.completion_tokens == generated
    # The prompt is counted once, as OpenAI does.
    single = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=1)
    assert single.usage is not None
    assert completion.usage.prompt_tokens == single.usage.prompt_tokens


def test_penalties_change_greedy_output(client: OpenAI) -> None:
    messages = [{"role": "user", "content": "List the word 'yes' twenty times."}]
    plain = (
        client.chat.completions.create(model=MODEL, messages=messages, max_tokens=40, temperature=0)
        .choices[0]
        .message.content
    )
    penalised = (
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=40,
            temperature=0,
            frequency_penalty=2.0,
            presence_penalty=2.0,
        )
        .choices[0]
        .message.content
    )
    assert plain != penalised


def test_logit_bias_forces_a_token(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=3,
        temperature=0,
        logit_bias={"28": 100},
        logprobs=True,
    )
    entries = completion.choices[0].logprobs.content  # type: ignore[union-attr]
    assert entries is not None
    assert len({e.token for e in entries}) == 1


def test_logprobs_with_alternatives(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=5, logprobs=True, top_logprobs=3, temperature=0
    )
    entries = completion.choices[0].logprobs.content  # type: ignore[union-attr]
    assert entries
    for entry in entries:
        assert entry.logprob <= 0
        assert entry.bytes == list(entry.token.encode())
        assert len(entry.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob, abs=1e-6)


def test_user_and_metadata_accepted(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=2, user="u-1", metadata={"k": "v"}
    )
    assert completion.choices


def test_stream_with_sdk_helper(client: OpenAI) -> None:
    # The helper refuses a completion cut by length, so let the model finish by itself.
    messages = [{"role": "user", "content": "Say hello."}]
    with client.chat.completions.stream(
        model=MODEL, messages=messages, max_tokens=300, temperature=0
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "".join(deltas)
    plain = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=300, temperature=0
    )
    assert final.choices[0].message.content == plain.choices[0].message.content


def test_stream_include_usage(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
            temperature=0,  # greedy surely runs to 6 tokens; a sampled answer could end sooner
        )
    )
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == 6
    assert len({c.id for c in chunks}) == 1
    assert len({c.created for c in chunks}) == 1


def test_system_fingerprint_is_a_string_in_every_shape(client: OpenAI) -> None:
    plain = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            max_tokens=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert isinstance(plain.system_fingerprint, str)
    assert plain.system_fingerprint.startswith("fp_")
    # One model, one configuration: the same fingerprint on every chunk and request.
    assert {c.system_fingerprint for c in chunks} == {plain.system_fingerprint}


def test_stream_logprobs(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            max_tokens=6,
            stream=True,
            logprobs=True,
            top_logprobs=2,
            temperature=0,  # exactly 6 entries needs no end-of-text within 6 tokens
        )
    )
    entries = [
        e
        for c in chunks
        for ch in c.choices
        if ch.logprobs and ch.logprobs.content
        for e in ch.logprobs.content
    ]
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert len(entries) == 6
    assert spelled(e.bytes for e in entries) == text


def test_raw_sse_framing(http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 5, "stream": True, "n": 2}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"].startswith("req_")
        raw = response.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    roles: dict[int, int] = {}
    finishes: dict[int, str] = {}
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert "usage" not in chunk
        for choice in chunk["choices"]:
            if "role" in choice["delta"]:
                roles[choice["index"]] = roles.get(choice["index"], 0) + 1
            if choice["finish_reason"]:
                finishes[choice["index"]] = choice["finish_reason"]
    assert roles == {0: 1, 1: 1}  # the role exactly once per choice
    assert set(finishes) == {0, 1}


def test_concurrent_requests_are_not_corrupted(client: OpenAI) -> None:
    prompts = [f"Count from {i} to {i + 5}." for i in range(4)]

    def run(prompt: str) -> str | None:
        return (
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=20,
                temperature=0,
            )
            .choices[0]
            .message.content
        )

    sequential = [run(p) for p in prompts]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(run, prompts))
    assert concurrent == sequential


@pytest.mark.parametrize("stream", [True, False])
def test_disconnect_stops_generation(server: Server, stream: bool) -> None:
    """A client that leaves frees the model, whether it was reading a stream or waiting."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me a very long story."}],
        "max_tokens": 3000,
        "stream": stream,
        "logit_bias": NEVER_END,
    }
    marker = "generation stopped early"
    before = server.log().count(marker)
    with httpx.Client(base_url=server.base_url, timeout=httpx.Timeout(60, read=1.5)) as http:
        if stream:
            with http.stream("POST", "/v1/chat/completions", json=body) as response:
                for i, _ in enumerate(response.iter_lines()):
                    if i > 10:
                        break
        else:
            # Waits for the whole completion; gives up (and hangs up) after 1.5 s.
            try:
                response = http.post("/v1/chat/completions", json=body)
            except httpx.ReadTimeout:
                pass
            else:
                pytest.fail(f"answered before the client left: {response.text[:500]}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.log().count(marker) == before:
        time.sleep(0.2)
    stopped = [line for line in server.log().splitlines() if marker in line]
    assert len(stopped) > before, "the server never noticed the client left"
    produced = int(stopped[-1].rsplit("after ", 1)[1].split()[0])
    assert produced < 3000


# --- errors -------------------------------------------------------------------------


def _error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert response.headers["x-request-id"].startswith("req_")
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": MODEL}, "messages", "missing_required_parameter"),
        ({"messages": HELLO}, "model", "missing_required_parameter"),
        ({"model": MODEL, "messages": []}, "messages", "empty_array"),
        (
            {"model": MODEL, "messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role",
            "invalid_value",
        ),
        ({"model": MODEL, "messages": [{"role": "user"}]}, "messages[0]", "invalid_value"),
        ({"model": MODEL, "messages": HELLO, "temperature": 3}, "temperature", None),
        ({"model": MODEL, "messages": HELLO, "temperature": "hot"}, "temperature", "invalid_type"),
        ({"model": MODEL, "messages": HELLO, "n": 0}, "n", None),
        (
            {"model": MODEL, "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]},
            "stop",
            "invalid_value",
        ),
        ({"model": MODEL, "messages": HELLO, "top_logprobs": 2}, "top_logprobs", None),
        ({"model": MODEL, "messages": HELLO, "logit_bias": {"999999999": 5}}, "logit_bias", None),
        (
            {"model": MODEL, "messages": HELLO, "logit_bias": {"5": 500}},
            "logit_bias",
            "invalid_value",
        ),
        (
            {
                "model": MODEL,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                    }
                ],
            },
            "messages[0].content[0]",  # the default model reads text only
            "invalid_value",
        ),
        (
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": [{"type": "input_audio"}]}],
            },
            "messages[0].content[0].type",
            "unsupported_value",
        ),
        (
            {"model": MODEL, "messages": [{"role": "tool", "content": "x"}]},
            "messages[0]",
            "invalid_value",
        ),
    ],
)
def test_bad_requests_name_param(
    http: httpx.Client, body: dict[str, object], param: str, code: str | None
) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code


def test_unknown_model_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert info.value.code == "model_not_found"


def test_malformed_json_is_400(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "parse the JSON body" in str(_error(response)["message"])


def test_context_too_long_is_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "word " * 9000}], max_tokens=1
        )
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "messages"


def test_unknown_route_is_404_envelope(http: httpx.Client) -> None:
    response = http.get("/v1/nothing-here")
    assert response.status_code == 404
    _error(response)


def test_requests_survive_a_parallel_error(client: OpenAI) -> None:
    # A failing request next to a good one must not disturb it.
    results: list[object] = []

    def bad() -> None:
        try:
            client.chat.completions.create(model=MODEL, messages=HELLO, temperature=9)
        except openai.BadRequestError as exc:
            results.append(exc)

    thread = threading.Thread(target=bad)
    thread.start()
    good = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4)
    thread.join()
    assert good.choices[0].message.content is not None
    assert len(results) == 1


def test_logprobs_of_a_character_split_over_tokens(client: OpenAI) -> None:
    # The schema forces an emoji that the byte-level vocabulary spells with several tokens.
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give me a waving hand."}],
        logprobs=True,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "wave",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {"emoji": {"const": "👋🏻"}},
                    "required": ["emoji"],
                    "additionalProperties": False,
                },
            },
        },
    )
    choice = completion.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    entries = choice.logprobs.content
    assert json.loads(choice.message.content or "") == {"emoji": "👋🏻"}
    assert any("\ufffd" in e.token for e in entries)  # a token holding part of a character
    assert spelled(e.bytes for e in entries) == choice.message.content
