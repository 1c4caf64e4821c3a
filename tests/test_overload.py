"""Overload: a full queue or a long wait is a 503 with Retry-After before the first byte,
on every endpoint, streamed or not."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest
from openai import OpenAI

from tests.server import Server, start_server
from tests.smollm2 import NEVER_END

HEADERS = {"Authorization": "Bearer k"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"model": "gpt-4o-mini", "prompt": "Once upon a time", "max_tokens": 4}


@contextmanager
def occupied(srv: Server) -> Iterator[None]:
    """The model busy with a long stream (its first tokens out) until the block ends."""
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "max_tokens": 4000,
        "stream": True,
        "logit_bias": NEVER_END,
    }
    started = threading.Event()
    release = threading.Event()

    def occupy() -> None:
        with httpx.stream(
            "POST", f"{srv.api_url}/chat/completions", json=body, headers=HEADERS, timeout=300
        ) as response:
            for i, _ in enumerate(response.iter_lines()):
                if i == 2:
                    started.set()
                if release.is_set():
                    break  # leaving stops the generation

    worker = threading.Thread(target=occupy)
    worker.start()
    try:
        assert started.wait(120)
        yield
    finally:
        release.set()
        worker.join()
        _until_free(srv)


def _until_free(srv: Server) -> None:
    """Wait until the model takes a request again.

    A stream that was left stops at its next token, once the server has seen the client
    go: on a busy machine that can take a moment, and the next test needs the model free.
    """
    deadline = time.monotonic() + 120
    while True:
        response = httpx.post(
            f"{srv.api_url}/chat/completions",
            json={**CHAT, "max_tokens": 1},
            headers=HEADERS,
            timeout=120,
        )
        if response.status_code != 503 or time.monotonic() > deadline:
            response.raise_for_status()
            return
        time.sleep(0.2)


def _sdk(srv: Server, *, strict: bool = True) -> OpenAI:
    """The SDK, without retries. Not strict for streamed completions: the SDK's Completion
    type cannot validate a chunk whose ``finish_reason`` is still null (as OpenAI sends it).
    """
    return OpenAI(
        base_url=srv.api_url,
        api_key="k",
        max_retries=0,
        timeout=60,
        _strict_response_validation=strict,
    )


def _refused_before_any_byte(srv: Server, path: str, body: dict[str, object]) -> None:
    """A raw stream request gets 503, Retry-After and the error envelope, no SSE at all."""
    with httpx.stream(
        "POST", f"{srv.api_url}{path}", json=body, headers=HEADERS, timeout=60
    ) as response:
        raw = response.read()
    assert response.status_code == 503, raw
    assert int(response.headers["retry-after"]) >= 1
    assert not response.headers["content-type"].startswith("text/event-stream")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One request at a time and no waiting room: a second request overflows."""
    srv = start_server(tmp_path_factory.mktemp("busy"), config={"max_queue": 1, "parallel": 1})
    yield srv
    srv.stop()


def test_overload_is_503_with_retry_after(busy: Server) -> None:
    with occupied(busy):
        response = httpx.post(f"{busy.api_url}/chat/completions", json=CHAT, headers=HEADERS)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_streamed_chat_overload_is_503_before_the_first_byte(busy: Server) -> None:
    with occupied(busy), _sdk(busy) as sdk:
        _refused_before_any_byte(busy, "/chat/completions", {**CHAT, "stream": True})
        with pytest.raises(openai.InternalServerError) as info:
            sdk.chat.completions.create(model="gpt-4o-mini", messages=CHAT["messages"], stream=True)  # type: ignore[arg-type]
        assert info.value.status_code == 503
        assert info.value.response.headers["retry-after"]
        # The SDK's stream helper too: refused when opened, not part-way through.
        with (
            pytest.raises(openai.InternalServerError),
            sdk.chat.completions.stream(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
            ),
        ):
            pass


def test_streamed_completions_overload_is_503_before_the_first_byte(busy: Server) -> None:
    with occupied(busy), _sdk(busy) as sdk:
        _refused_before_any_byte(busy, "/completions", {**COMPLETION, "stream": True})
        # echo is sent before generating: it must not go out before the queue took the job.
        _refused_before_any_byte(busy, "/completions", {**COMPLETION, "stream": True, "echo": True})
        with pytest.raises(openai.InternalServerError) as info:
            sdk.completions.create(model="gpt-4o-mini", prompt="Hello", stream=True)
        assert info.value.status_code == 503


def test_streams_still_work_when_the_model_is_free(busy: Server) -> None:
    with _sdk(busy) as sdk:
        with sdk.chat.completions.stream(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=3
        ) as stream:
            parts = [event.chunk for event in stream if event.type == "chunk"]
        assert parts[-1].choices[0].finish_reason in {"stop", "length"}
    with _sdk(busy, strict=False) as sdk:
        chunks = list(
            sdk.completions.create(
                model="gpt-4o-mini", prompt="Hello", max_tokens=3, stream=True, echo=True
            )
        )
        assert chunks[0].choices[0].text.startswith("Hello")


@pytest.fixture(scope="module")
def waiting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Room to wait, for one second at most, behind one sequence at a time."""
    srv = start_server(
        tmp_path_factory.mktemp("wait"),
        config={"max_queue": 8, "queue_timeout": 1, "parallel": 1},
    )
    yield srv
    srv.stop()


def test_queue_wait_limit_is_503_before_the_first_byte(waiting: Server) -> None:
    srv = waiting
    with occupied(srv), _sdk(srv) as sdk:
        began = time.monotonic()
        _refused_before_any_byte(srv, "/chat/completions", {**CHAT, "stream": True})
        waited = time.monotonic() - began
        _refused_before_any_byte(srv, "/completions", {**COMPLETION, "stream": True})
        with pytest.raises(openai.InternalServerError) as info:
            sdk.chat.completions.create(model="gpt-4o-mini", messages=CHAT["messages"])  # type: ignore[arg-type]
        assert info.value.status_code == 503
        assert "1 s" in info.value.message
        with pytest.raises(openai.InternalServerError):
            sdk.responses.create(model="gpt-4o-mini", input="hi", stream=True)
    assert waited >= 0.9  # it was queued, not refused as overflow
    with _sdk(srv) as sdk:  # a request that gets its turn in time is served as before
        reply = sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    assert reply.choices[0].message.content is not None


WAIT_LIMIT = 10  # seconds; long enough for a few tokens on a busy machine


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("patient"),
        # One sequence at a time: with more, the choices and the rival would all run at once.
        config={"max_queue": 8, "queue_timeout": WAIT_LIMIT, "parallel": 1},
    )
    yield srv
    srv.stop()


def test_a_later_choice_is_queued_with_the_first(patient: Server) -> None:
    """A request's choices are queued together, so a later one never waits behind another
    request (and is never refused or timed out half-way through the stream).

    A rival stream sent while choice 0 runs goes after choice 1, not between the two.
    """
    srv = patient
    rival_began: list[float] = []

    def rival() -> None:
        body = {**CHAT, "max_tokens": 4, "stream": True}
        with httpx.stream(
            "POST", f"{srv.api_url}/chat/completions", json=body, headers=HEADERS, timeout=120
        ) as response:
            assert response.status_code == 200
            for _ in response.iter_lines():
                rival_began.append(time.monotonic())
                break

    finished: dict[int, str | None] = {}
    second_began: float | None = None
    thread = threading.Thread(target=rival)
    try:
        with _sdk(srv) as sdk:
            stream = sdk.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Tell me a story."}],
                n=2,
                max_tokens=8,
                logit_bias=NEVER_END,
                stream=True,
            )
            for chunk in stream:
                for choice in chunk.choices:
                    if choice.index == 0 and choice.delta.content and thread.ident is None:
                        thread.start()  # queued while choice 0 runs
                    if choice.index == 1 and second_began is None:
                        second_began = time.monotonic()
                    if choice.finish_reason is not None:
                        finished[choice.index] = choice.finish_reason
    finally:
        if thread.ident is not None:
            thread.join()  # before the server can stop under it
    assert finished == {0: "length", 1: "length"}
    assert second_began is not None and rival_began
    assert rival_began[0] > second_began
