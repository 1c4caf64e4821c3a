"""Continuous batching in the llama.cpp engine: concurrent requests decode together, on the
real model, and each gets exactly what it would get alone.

The session server runs the default ``parallel`` (4 sequences at once); the cancellation
test starts a server of its own with two sequences and a short wait limit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jsonschema
import pytest
from openai import OpenAI

from tests.server import Server, start_server
from tests.smollm2 import NEVER_END

MODEL = "smollm2-135m-instruct"
QUESTIONS = [
    "Tell me a story about a cat.",
    "What is the capital of France? Explain.",
    "Write a short poem about the sea.",
    "List some fruits.",
]


def _ask(question: str, max_tokens: int = 32) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "logit_bias": NEVER_END,  # every stream runs its whole length, side by side
    }


def _solo(client: OpenAI, body: dict[str, Any]) -> str:
    reply = client.chat.completions.create(**body)
    return reply.choices[0].message.content or ""


def _streamed(client: OpenAI, body: dict[str, Any], begun: threading.Barrier | None = None) -> str:
    """The streamed text of ``body``; with ``begun``, waits after its first piece until
    every other stream has one too (so they are all running at once)."""
    pieces: list[str] = []
    stream = client.chat.completions.create(**body, stream=True)
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
                if begun is not None and len(pieces) == 1:
                    begun.wait(timeout=600)
    return "".join(pieces)


def _together(calls: list[Callable[[], str]]) -> list[str]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(call) for call in calls]]


def test_concurrent_greedy_streams_equal_their_solo_text(client: OpenAI) -> None:
    bodies = [_ask(q) for q in QUESTIONS]
    alone = [_solo(client, body) for body in bodies]
    begun = threading.Barrier(len(bodies))
    together = _together([lambda b=body: _streamed(client, b, begun) for body in bodies])  # type: ignore[misc]
    assert together == alone
    assert len(set(alone)) == len(alone)  # four different texts: no stream got another's


def test_a_long_prompt_admitted_mid_way_leaves_the_running_ones_intact(client: OpenAI) -> None:
    running = [_ask(q, max_tokens=48) for q in QUESTIONS[:2]]
    long_prompt = _ask(
        "Summarize this: " + " ".join(f"Fact {i}: the river runs north." for i in range(120)), 8
    )
    alone = [_solo(client, body) for body in [*running, long_prompt]]
    begun = threading.Barrier(len(running) + 1)

    def late() -> str:
        begun.wait(timeout=600)  # both streams are decoding when this prompt arrives
        return _solo(client, long_prompt)

    together = _together([*[lambda b=b: _streamed(client, b, begun) for b in running], late])  # type: ignore[misc]
    assert together == alone


def test_seeded_choices_repeat_and_match_single_runs(client: OpenAI) -> None:
    """``n`` choices share their prompt (copied cells): each is exactly the single run with
    its own seed (choice ``i`` samples with ``seed + i``)."""
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Name an animal and describe it."}],
        "max_tokens": 16,
        "temperature": 1.0,
        "seed": 11,
        "logit_bias": NEVER_END,
    }
    first = client.chat.completions.create(**body, n=3)
    second = client.chat.completions.create(**body, n=3)
    texts = [c.message.content for c in sorted(first.choices, key=lambda c: c.index)]
    assert texts == [c.message.content for c in sorted(second.choices, key=lambda c: c.index)]
    singles = [_solo(client, {**body, "seed": 11 + i}) for i in range(3)]
    assert texts == singles
    assert len(set(texts)) > 1


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_structured_outputs_under_concurrency_are_all_valid(client: OpenAI) -> None:
    patient = client.with_options(timeout=900)  # four grammars at once on a loaded machine

    def structured(question: str) -> str:
        reply = patient.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Describe a person. {question}"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": SCHEMA, "strict": True},
            },
            max_tokens=100,
            temperature=0.7,
            seed=3,
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "stop", choice.message.content
        return choice.message.content or ""

    outputs = _together([lambda q=q: structured(q) for q in QUESTIONS])  # type: ignore[misc]
    for output in outputs:
        jsonschema.validate(json.loads(output), SCHEMA)


def test_a_chained_turn_reuses_its_cache_after_other_clients(client: OpenAI) -> None:
    """A finished conversation keeps its cells: other clients served in between take
    other sequences, and the next turn evaluates only what is new."""
    history: list[dict[str, str]] = [
        {
            "role": "user",
            "content": "Remember these numbers: "
            + ", ".join(str(7 * i) for i in range(80))
            + ". Which is the largest?",
        }
    ]
    first = client.chat.completions.create(
        model=MODEL,
        messages=history,
        max_tokens=12,
        temperature=0,  # type: ignore[arg-type]
    )
    assert first.usage is not None
    _together([lambda q=q: _solo(client, _ask(q, 6)) for q in QUESTIONS[:3]])  # type: ignore[misc]
    history += [
        {"role": "assistant", "content": first.choices[0].message.content or ""},
        {"role": "user", "content": "And the smallest?"},
    ]
    second = client.chat.completions.create(
        model=MODEL,
        messages=history,
        max_tokens=4,
        temperature=0,  # type: ignore[arg-type]
    )
    assert second.usage is not None and second.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens


def test_a_prompt_asked_again_after_a_long_answer_comes_from_the_cache(client: OpenAI) -> None:
    """The sequence that answered a prompt at length holds that prompt whole: asked again
    (a retry, a regenerated answer, a benchmark's next round), the prompt comes from it,
    though the old answer it gives up is longer than the prompt."""
    body = _ask("Describe a lighthouse in a storm.", max_tokens=96)
    first = client.chat.completions.create(**body)
    assert first.usage is not None
    assert first.usage.completion_tokens > first.usage.prompt_tokens  # the case at hand
    again = client.chat.completions.create(**{**body, "max_tokens": 4})
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    # All but the last prompt token, which is always evaluated afresh.
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1


@pytest.fixture(scope="module")
def two_slots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two sequences at once, and a request that waits 20 s for one gets 503."""
    srv = start_server(
        tmp_path_factory.mktemp("two-slots"),
        config={"parallel": 2, "queue_timeout": 20, "context_length": 4096},
    )
    yield srv
    srv.stop()


def test_a_cancelled_stream_frees_its_slot_while_the_others_finish(two_slots: Server) -> None:
    """Both sequences busy with long streams; one client leaves, and a waiting request gets
    its sequence at once (well inside the wait limit) while the other stream runs on."""
    srv = two_slots
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me a very long story."}],
        "max_tokens": 3000,  # far longer than the wait limit at any speed seen here
        "temperature": 0,
        "logit_bias": NEVER_END,
        "stream": True,
    }
    headers = {"Authorization": "Bearer k"}
    begun = threading.Barrier(3)
    leave = threading.Event()  # the first client goes away
    served = threading.Event()  # the waiting request has its answer
    after_served: list[int] = []

    def stream(stays: bool) -> None:
        pieces = 0
        with httpx.stream(
            "POST", f"{srv.api_url}/chat/completions", json=body, headers=headers, timeout=600
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    pieces += 1
                    if pieces == 2:
                        begun.wait(timeout=600)
                if not stays and leave.is_set():
                    return  # the client goes away: the server stops this generation
                if stays and served.is_set():
                    after_served.append(pieces)  # still decoding once the other was served
                    return

    threads = [threading.Thread(target=stream, args=(stays,)) for stays in (False, True)]
    for thread in threads:
        thread.start()
    try:
        begun.wait(timeout=600)
        leave.set()
        with OpenAI(base_url=srv.api_url, api_key="k", max_retries=0, timeout=600) as sdk:
            reply = sdk.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
    finally:
        served.set()
        for thread in threads:
            thread.join()
    assert reply.choices[0].message.content is not None
    assert after_served


def test_a_prompt_cache_key_keeps_a_shared_prefix_in_use(client: OpenAI) -> None:
    """Two prompts that share only a system-like prefix (less than half of what the first
    left cached): without a key the second goes to another sequence and evaluates it all;
    with the same ``prompt_cache_key`` it reuses the first one's prefix."""

    def cached_after(prefix: str, key: str | None) -> tuple[int, int]:
        shared = prefix + ", ".join(str(7 * i) for i in range(60)) + ".\n"
        long_tail = "Notes: " + ", ".join(str(13 * i) for i in range(150)) + ".\n"
        extra: dict[str, Any] = {} if key is None else {"extra_body": {"prompt_cache_key": key}}
        first = client.completions.create(
            model=MODEL, prompt=shared + long_tail, max_tokens=2, temperature=0, **extra
        )
        second = client.completions.create(
            model=MODEL, prompt=shared + "Question: sum?\n", max_tokens=2, temperature=0, **extra
        )
        assert first.usage is not None and second.usage is not None
        details = second.usage.prompt_tokens_details
        assert details is not None and details.cached_tokens is not None
        return details.cached_tokens, first.usage.prompt_tokens

    without, _ = cached_after("Ledger of the north depot: ", None)
    assert without < 10  # the shared part was evaluated again, in another sequence
    keyed, first_prompt = cached_after("Ledger of the south depot: ", "depot-south")
    assert 100 < keyed < first_prompt / 2  # the shared part came from the first's cache
