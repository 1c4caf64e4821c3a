"""POST /v1/completions (legacy text completions) on the packaged SmolLM2, through the SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from oasis.models.assets import resolve_source
from oasis.models.catalog import SMOLLM2
from tests.server import Server
from tests.smollm2 import NEVER_END

MODEL = "gpt-4o-mini"
# Token prompts in the model's own vocabulary go to its own id: under an OpenAI name they
# are OpenAI's tokens (tests/test_openai_tokens.py).
OWN = "smollm2-135m-instruct"
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The model's own tokenizer (llama.cpp, vocabulary only), to build token prompts."""
    import llama_cpp

    path = resolve_source(SMOLLM2, Path(tmp_path_factory.mktemp("vocab")))
    yield llama_cpp.Llama(str(path), vocab_only=True, verbose=False)


@pytest.fixture(scope="module")
def loose(server: Server) -> Iterator[OpenAI]:
    """A default client: the SDK's Completion type cannot validate a stream chunk, whose
    ``finish_reason`` is null until its choice ends (as OpenAI sends it)."""
    with OpenAI(base_url=server.api_url, api_key="sk-test", max_retries=0) as sdk:
        yield sdk


def test_a_prompt_is_continued_as_it_is(client: OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt=PROMPT, temperature=0)
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.model == MODEL
    (choice,) = completion.choices
    assert choice.index == 0 and choice.text and choice.logprobs is None
    assert "<|im_start|>" not in choice.text  # no chat template around the prompt
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 16  # OpenAI's default max_tokens
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_system_fingerprint_is_a_string(client: OpenAI, loose: OpenAI) -> None:
    plain = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=2)
    chunks = list(
        loose.completions.create(
            model=MODEL,
            prompt=PROMPT,
            max_tokens=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert isinstance(plain.system_fingerprint, str)
    assert plain.system_fingerprint.startswith("fp_")
    assert {c.system_fingerprint for c in chunks} == {plain.system_fingerprint}


def test_max_tokens_and_finish_reason(client: OpenAI) -> None:
    completion = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=7, logit_bias=NEVER_END, temperature=0
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 7


def test_several_prompts_and_choices_are_indexed_in_order(client: OpenAI) -> None:
    completion = client.completions.create(
        model=MODEL, prompt=["Once upon a time", "1, 2, 3,"], n=2, max_tokens=6, temperature=0
    )
    assert [c.index for c in completion.choices] == [0, 1, 2, 3]
    texts = [c.text for c in completion.choices]
    # Greedy: both choices of one prompt agree; the two prompts differ.
    assert texts[0] == texts[1] and texts[2] == texts[3] and texts[0] != texts[2]


def test_token_prompt_equals_text_prompt(client: OpenAI, vocab: object) -> None:
    tokens = vocab.tokenize(PROMPT.encode(), add_bos=True)  # type: ignore[attr-defined]
    as_text = client.completions.create(model=OWN, prompt=PROMPT, max_tokens=6, temperature=0)
    as_tokens = client.completions.create(model=OWN, prompt=tokens, max_tokens=6, temperature=0)
    assert as_tokens.choices[0].text == as_text.choices[0].text
    assert as_tokens.usage is not None and as_tokens.usage.prompt_tokens == len(tokens)
    both = client.completions.create(
        model=OWN, prompt=[tokens, tokens], max_tokens=6, temperature=0
    )
    assert [c.text for c in both.choices] == [as_text.choices[0].text] * 2


def test_echo_puts_the_prompt_first(client: OpenAI) -> None:
    completion = client.completions.create(
        model=MODEL, prompt=PROMPT, echo=True, max_tokens=5, temperature=0
    )
    assert completion.choices[0].text.startswith(PROMPT)
    only_prompt = client.completions.create(model=MODEL, prompt=PROMPT, echo=True, max_tokens=0)
    assert only_prompt.choices[0].text == PROMPT
    assert only_prompt.usage is not None and only_prompt.usage.completion_tokens == 0


def test_stop_sequences(client: OpenAI) -> None:
    completion = client.completions.create(
        model=MODEL, prompt="1, 2, 3,", stop=[" 6"], max_tokens=30, temperature=0
    )
    assert completion.choices[0].finish_reason == "stop"
    assert " 6" not in completion.choices[0].text and completion.choices[0].text


def test_legacy_logprobs(client: OpenAI) -> None:
    completion = client.completions.create(
        model=MODEL, prompt=PROMPT, logprobs=2, max_tokens=6, temperature=0
    )
    choice = completion.choices[0]
    lp = choice.logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert lp.text_offset is not None
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 6
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(6)]
    for chosen, top in zip(lp.token_logprobs, lp.top_logprobs, strict=True):
        assert len(top) <= 2 and chosen <= 0
        assert max(top.values()) == pytest.approx(chosen, abs=1e-6)  # greedy takes the best


def _token_bytes(token: str) -> bytes:
    if token.startswith("bytes:"):
        return bytes(int(h, 16) for h in token[len("bytes:") :].split("\\x")[1:])
    return token.encode()


def test_legacy_logprobs_of_characters_split_over_tokens(client: OpenAI) -> None:
    completion = client.completions.create(
        model=MODEL, prompt="Stars: 🌟🌟🌟", logprobs=1, max_tokens=12, temperature=0
    )
    choice = completion.choices[0]
    lp = choice.logprobs
    assert lp is not None and lp.tokens is not None and lp.text_offset is not None
    # Greedy SmolLM2 goes on with stars, each spelled by several byte tokens.
    assert any(t.startswith("bytes:") for t in lp.tokens)
    assert b"".join(_token_bytes(t) for t in lp.tokens) == choice.text.encode()
    # Offsets count characters; a token that starts inside one sits where it starts.
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[-1] < len(choice.text)
    for token, offset in zip(lp.tokens, lp.text_offset, strict=True):
        if not token.startswith("bytes:"):
            assert choice.text[offset : offset + len(token)] == token


def test_echo_with_logprobs_scores_the_prompt(loose: OpenAI, vocab: object) -> None:
    """What evaluation harnesses ask: the logprob of every prompt token given the ones
    before it. Scoring a prompt that ends in the token a greedy run chose must give that
    token the logprob the run reported for it."""
    prompt = vocab.tokenize(PROMPT.encode(), add_bos=True)  # type: ignore[attr-defined]
    run = loose.completions.create(
        model=OWN, prompt=prompt, max_tokens=1, logprobs=1, temperature=0
    )
    generated = run.choices[0].logprobs
    assert generated is not None and generated.tokens and generated.token_logprobs
    chosen = vocab.tokenize(generated.tokens[0].encode(), add_bos=False, special=True)  # type: ignore[attr-defined]
    assert len(chosen) == 1

    scored = loose.completions.create(
        model=OWN, prompt=prompt + chosen, echo=True, logprobs=2, max_tokens=0
    )
    choice = scored.choices[0]
    lp = choice.logprobs
    assert lp is not None and lp.tokens is not None and lp.token_logprobs is not None
    assert choice.text == PROMPT + generated.tokens[0]
    assert len(lp.tokens) == len(prompt) + 1
    assert lp.token_logprobs[0] is None and lp.top_logprobs is not None
    assert lp.top_logprobs[0] is None  # as OpenAI: the first token has nothing before it
    assert all(x is not None and x <= 0 for x in lp.token_logprobs[1:])
    assert lp.token_logprobs[-1] == pytest.approx(generated.token_logprobs[0], abs=1e-3)
    assert lp.text_offset is not None and lp.text_offset[-1] == len(PROMPT)

    # Generation after a scored prompt goes on as usual, and streams the same entries.
    chunks = list(
        loose.completions.create(
            model=OWN,
            prompt=prompt,
            echo=True,
            logprobs=1,
            max_tokens=3,
            temperature=0,
            stream=True,
        )
    )
    streamed = [
        token
        for c in chunks
        if c.choices[0].logprobs is not None
        for token in c.choices[0].logprobs.tokens or []
    ]
    assert len(streamed) == len(prompt) + 3
    assert "".join(c.choices[0].text for c in chunks).startswith(PROMPT)


def test_an_empty_or_null_prompt_starts_a_document(client: OpenAI) -> None:
    for prompt in ("", None):
        completion = client.completions.create(
            model=MODEL,
            prompt=prompt,  # type: ignore[arg-type]
            max_tokens=4,
            logit_bias=NEVER_END,
            temperature=0,
        )
        assert completion.choices[0].text
        assert completion.usage is not None and completion.usage.prompt_tokens == 1


def test_stream_matches_the_whole_answer(client: OpenAI, loose: OpenAI) -> None:
    whole = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0)
    chunks = list(
        loose.completions.create(
            model=MODEL,
            prompt=PROMPT,
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert all(c.usage is None for c in chunks[:-1])
    assert all("usage" in c.model_fields_set for c in chunks)  # sent as null, not left out
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert reasons[-1] in {"stop", "length"} and set(reasons[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_stream_with_echo_and_logprobs(loose: OpenAI) -> None:
    echoed = list(
        loose.completions.create(
            model=MODEL, prompt=PROMPT, echo=True, max_tokens=5, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in echoed).startswith(PROMPT)
    with_logprobs = list(
        loose.completions.create(
            model=MODEL, prompt=PROMPT, logprobs=1, max_tokens=5, temperature=0, stream=True
        )
    )
    entries = [
        t
        for c in with_logprobs
        if c.choices[0].logprobs
        for t in c.choices[0].logprobs.tokens or []
    ]
    assert len(entries) == 5


def test_too_many_completions_in_one_request_is_400(http: httpx.Client) -> None:
    body = {"model": MODEL, "prompt": ["a"] * 20, "n": 128, "max_tokens": 1}
    response = http.post("/v1/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "n"


def test_a_repeated_prompt_is_served_from_the_cache(client: OpenAI) -> None:
    ask = {"model": MODEL, "prompt": "Roses are red, violets are", "max_tokens": 2}
    client.completions.create(**ask)  # type: ignore[call-overload]
    again = client.completions.create(**ask)  # type: ignore[call-overload]
    details = again.usage.prompt_tokens_details  # type: ignore[union-attr]
    assert details is not None and details.cached_tokens == again.usage.prompt_tokens - 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL}, "prompt"),
        ({"model": MODEL, "prompt": []}, "prompt"),
        ({"model": MODEL, "prompt": [10**9]}, "prompt"),
        ({"model": MODEL, "prompt": "x", "suffix": "y"}, "suffix"),
        ({"model": MODEL, "prompt": "x", "best_of": 3}, "best_of"),
        ({"model": MODEL, "prompt": "x", "logprobs": 6}, "logprobs"),
        ({"model": MODEL, "prompt": "x", "max_tokens": -1}, "max_tokens"),
        ({"model": MODEL, "prompt": "x", "logit_bias": {"999999999": 1}}, "logit_bias"),
    ],
)
def test_bad_requests_are_400_with_param(
    http: httpx.Client, body: dict[str, object], param: str
) -> None:
    response = http.post("/v1/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_unknown_model_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="no-such-model", prompt="x")
    assert caught.value.code == "model_not_found"
