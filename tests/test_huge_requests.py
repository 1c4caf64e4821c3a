"""Huge requests: refused by their length before tokenizing where the answer is known, and
never holding up other clients while the server renders and tokenizes them."""

from __future__ import annotations

import random
import threading
import time

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.server import Server
from tests.smollm2 import CONTEXT_LENGTH, MAX_TOKEN_BYTES

TEN_MB = 10 * 1024 * 1024
EMBEDDER, TRUNCATING_EMBEDDER = "all-minilm-l6-v2", "minilm-by-path"


def _words(size: int, seed: int = 7) -> str:
    """``size`` bytes of varied words: a few bytes per token, slow to tokenize."""
    rng = random.Random(seed)
    # Each word and its space take at most 9 bytes, at least 4.
    words = [f"w{rng.randrange(10**6)}x" for _ in range(size // 4 + 1)]
    return " ".join(words)[:size]


def test_a_ten_megabyte_prompt_is_refused_from_its_length(client: OpenAI) -> None:
    huge = "lorem ipsum " * (TEN_MB // 12)
    for create in (
        lambda: client.responses.create(model="gpt-4o-mini", input=huge),
        lambda: client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": huge}]
        ),
        lambda: client.completions.create(model="gpt-4o-mini", prompt=huge),
    ):
        with pytest.raises(openai.BadRequestError) as info:
            create()
        assert info.value.code == "context_length_exceeded"
        assert "resulted in at least" in info.value.message  # known without tokenizing


def test_the_length_bound_refuses_only_what_cannot_fit(client: OpenAI) -> None:
    """At the bound a prompt is refused from its length; just under it, it is tokenized."""
    at_bound = _words(MAX_TOKEN_BYTES * CONTEXT_LENGTH)
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="gpt-4o-mini", prompt=at_bound)
    assert f"resulted in at least {CONTEXT_LENGTH} tokens" in info.value.message
    # Far more tokens than fit, but that is only known by counting them.
    under = _words(MAX_TOKEN_BYTES * (CONTEXT_LENGTH - 1) - 2000)
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="gpt-4o-mini", prompt=under)
    assert info.value.code == "context_length_exceeded"
    assert "at least" not in info.value.message


def test_a_ten_megabyte_embedding_input_is_refused(client: OpenAI) -> None:
    huge = "lorem ipsum " * (TEN_MB // 12)
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=EMBEDDER, input=["short", huge], encoding_format="float")
    assert info.value.code == "context_length_exceeded"
    assert "input[1]" in info.value.message
    # With truncation on, it is cut after its first tokens, as a short text would be.
    cut = client.embeddings.create(model=TRUNCATING_EMBEDDER, input=huge, encoding_format="float")
    head = client.embeddings.create(
        model=TRUNCATING_EMBEDDER, input="lorem ipsum " * 300, encoding_format="float"
    )
    assert cut.usage.prompt_tokens == head.usage.prompt_tokens
    assert np.allclose(cut.data[0].embedding, head.data[0].embedding, atol=1e-5)


def _health_while_busy(server: Server, body: dict[str, object]) -> tuple[list[float], int]:
    """Latencies of /health calls made while ``body`` was being prepared, and its status."""
    done = threading.Event()
    status: list[int] = []

    def heavy() -> None:
        try:
            response = httpx.post(
                f"{server.api_url}/responses",
                json=body,
                headers={"Authorization": "Bearer sk-test"},
                timeout=300,
            )
            status.append(response.status_code)
        finally:
            done.set()

    latencies: list[float] = []
    worker = threading.Thread(target=heavy)
    with httpx.Client(timeout=60) as health:
        health.get(f"{server.base_url}/health")  # the connection is open before the test
        worker.start()
        while not done.is_set():
            began = time.monotonic()
            health.get(f"{server.base_url}/health").raise_for_status()
            # Every call sent while the heavy request ran counts, even one answered after
            # it: a blocked event loop answers the heavy request first, then this one.
            latencies.append(time.monotonic() - began)
            time.sleep(0.01)
    worker.join()
    return latencies, status[0]


def test_health_answers_while_a_huge_prompt_is_tokenized(server: Server) -> None:
    """A prompt of megabytes is rendered and tokenized off the event loop.

    The text is as long as a prompt can be and still need tokenizing (just under the
    length bound), so the server does the full work. Timing on a busy machine is noisy:
    the check passes when one of three tries sees every /health call answered in 100 ms.
    """
    text = _words(MAX_TOKEN_BYTES * (CONTEXT_LENGTH - 1) - 2000, seed=11)
    body = {"model": "gpt-4o-mini", "input": text}
    tries: list[tuple[int, float]] = []
    for _ in range(3):
        latencies, status = _health_while_busy(server, body)
        assert status == 400  # far too many tokens, found by tokenizing
        tries.append((len(latencies), max(latencies, default=0.0)))
        if len(latencies) >= 3 and max(latencies) < 0.1:
            return
    pytest.fail(f"(calls during the request, worst latency in s) per try: {tries}")
