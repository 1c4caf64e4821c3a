"""End to end: token arrays sent under OpenAI's model names are OpenAI's tokens.

LangChain's ``OpenAIEmbeddings`` sends cl100k_base token ids by default, and OpenAI's
examples send token prompts to ``/v1/completions``. Under an OpenAI name (an alias) the ids
are decoded with that model's encoding and the text is used; under the model's own id they
keep meaning the model's own tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import bpe_openai
import httpx
import numpy as np
import pytest
from openai import OpenAI

from tests.server import Server

CL100K = bpe_openai.get_encoding("cl100k_base")
O200K = bpe_openai.get_encoding("o200k_base")
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Héllo wörld — 你好, 🦜 parrots!",
    "Embeddings turn text into vectors. " * 12,
]


def _vectors(client: OpenAI, model: str, texts: Any) -> np.ndarray[Any, Any]:
    answer = client.embeddings.create(model=model, input=texts, encoding_format="float")
    return np.array([item.embedding for item in answer.data])


def test_cl100k_ids_under_an_openai_name_embed_their_text(client: OpenAI) -> None:
    ids = [CL100K.encode(text) for text in TEXTS]
    as_text = _vectors(client, "text-embedding-3-small", TEXTS)
    as_ids = _vectors(client, "text-embedding-3-small", ids)
    np.testing.assert_allclose(as_ids, as_text, atol=1e-5)
    one = _vectors(client, "text-embedding-ada-002", ids[0])  # a single token array
    np.testing.assert_allclose(one[0], as_text[0], atol=1e-5)


def test_the_model_own_id_keeps_its_own_token_ids(client: OpenAI, http: httpx.Client) -> None:
    ids = CL100K.encode(TEXTS[0])
    own = http.post(
        "/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": [ids]}
    )  # MiniLM's vocabulary has 30522 ids: cl100k's large ids are not among them
    assert own.status_code == 400 and own.json()["error"]["param"] == "input"
    small = [101, 7592, 2088, 102]  # MiniLM's own ids stay its own
    assert len(_vectors(client, "all-minilm-l6-v2", [small])[0]) == 384


def test_ids_outside_the_encoding_are_400_naming_input(http: httpx.Client) -> None:
    for bad in ([15339, 100256], [15339, 100277], [-1]):
        answer = http.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": bad})
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["param"] == "input" and "cl100k_base" in error["message"]


def test_token_prompts_under_openai_names_on_completions(client: OpenAI) -> None:
    text = "The capital of France is"
    for model, encoding in (("gpt-3.5-turbo-instruct", CL100K), ("gpt-4o-mini", O200K)):
        plain = client.completions.create(model=model, prompt=text, max_tokens=6, temperature=0)
        tokens = client.completions.create(
            model=model, prompt=encoding.encode(text), max_tokens=6, temperature=0
        )
        assert tokens.choices[0].text == plain.choices[0].text
        assert tokens.usage is not None and plain.usage is not None
        assert tokens.usage.prompt_tokens == plain.usage.prompt_tokens


@pytest.fixture
def tiktoken_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken's cl100k_base file, rebuilt from bpe-openai's embedded ranks into tiktoken's
    cache, so LangChain (which tokenizes with tiktoken) runs with no network. tiktoken
    checks the file against OpenAI's published sha256, so a wrong rebuild fails loudly."""
    lines = []
    for rank in range(CL100K.n_vocab):
        try:
            piece = CL100K.decode_single_token_bytes(rank)
        except KeyError:
            continue
        if rank < 100256:  # the special tokens are not in the file
            lines.append(base64.b64encode(piece) + b" " + str(rank).encode())
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))


def test_langchain_openai_embeddings_with_its_defaults(
    server: Server, client: OpenAI, tiktoken_offline: None
) -> None:
    from langchain_openai import OpenAIEmbeddings

    sent: list[Any] = []

    def record(request: httpx.Request) -> None:
        sent.append(json.loads(request.content)["input"])

    with httpx.Client(event_hooks={"request": [record]}) as recording:
        embedder = OpenAIEmbeddings(
            model="text-embedding-3-small",
            base_url=server.api_url,
            api_key="sk-test",  # type: ignore[arg-type]
            http_client=recording,
        )
        vectors = np.array(embedder.embed_documents(TEXTS))
        query = np.array(embedder.embed_query(TEXTS[0]))
    # What LangChain sends by default: cl100k token arrays, not strings.
    assert sent and all(isinstance(item, list) for batch in sent for item in batch)
    assert sent[0][0] == CL100K.encode(TEXTS[0])
    expected = _vectors(client, "text-embedding-3-small", TEXTS)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(query, expected[0], atol=1e-5)
