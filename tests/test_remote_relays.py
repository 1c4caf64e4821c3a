"""Embeddings, speech-to-text and text-to-speech served by a remote engine (``openai``).

The upstream is a second real oasis server on loopback serving the packaged
all-MiniLM-L6-v2, whisper-base and hibari models: an OpenAI-compatible server like any
other. Every answer through the front server is compared with the upstream's own answer
to the same request.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from openai import OpenAI

from tests.audio_helpers import encode, pcm16_to_float
from tests.server import Server, free_port, sdk_for, start_server
from tests.test_vector_stores import DOCUMENTS

EMBED = "remote-minilm"
WHISPER = "remote-whisper"
TTS = "remote-hibari"
DEAD = {"embeddings": "dead-embed", "speech-to-text": "dead-whisper", "text-to-speech": "dead-tts"}
SENTENCES = ["A man is eating food.", "The girl is carrying a baby.", "ok"]
SPOKEN = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("upstream"), config={"preload": []})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, upstream: Server) -> Iterator[Server]:
    dead_url = f"http://127.0.0.1:{free_port()}/v1"
    options = {"health_interval": 0}
    config = {
        "preload": [],
        "models": [
            # Chunks are counted in the packaged tokenizer (the upstream model's own) and
            # cut below the upstream's 256-token limit before they are sent.
            {"id": EMBED, "kind": "embeddings", "url": upstream.api_url,
             "upstream_model": "all-minilm-l6-v2",
             "options": {**options, "tokenizer": "all-minilm-l6-v2", "max_input_tokens": 250}},
            {"id": WHISPER, "kind": "speech-to-text", "url": upstream.api_url,
             "upstream_model": "whisper-base", "options": options},
            {"id": TTS, "kind": "text-to-speech", "url": upstream.api_url,
             "upstream_model": "hibari", "options": {**options, "voices": {"alloy": "heart"}}},
            *({"id": name, "kind": kind, "url": dead_url, "options": options}
              for kind, name in DEAD.items()),
        ],
        "vector_stores": {"embedding_model": EMBED},
    }  # fmt: skip
    srv = start_server(tmp_path_factory.mktemp("front"), config=config)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(front: Server) -> Iterator[OpenAI]:
    with sdk_for(front, "sk-test") as sdk:
        yield sdk


@pytest.fixture(scope="module")
def direct(upstream: Server) -> Iterator[OpenAI]:
    with sdk_for(upstream, "sk-test") as sdk:
        yield sdk


@pytest.fixture(scope="module")
def http(front: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=front.api_url, timeout=300) as raw:
        yield raw


@pytest.fixture(scope="module")
def up_http(upstream: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=upstream.api_url, timeout=300) as raw:
        yield raw


@pytest.fixture(scope="module")
def wav(direct: OpenAI) -> bytes:
    pcm = direct.audio.speech.create(
        model="hibari", voice="alloy", input=SPOKEN, response_format="pcm"
    ).content
    return encode(pcm16_to_float(pcm), 24_000, "wav")


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


# --- embeddings ---------------------------------------------------------------------------


def test_embeddings_equal_the_upstream_s(client: OpenAI, direct: OpenAI) -> None:
    ours = client.embeddings.create(model=EMBED, input=SENTENCES, encoding_format="float")
    theirs = direct.embeddings.create(
        model="all-minilm-l6-v2", input=SENTENCES, encoding_format="float"
    )
    assert ours.model == EMBED
    assert [d.embedding for d in ours.data] == [d.embedding for d in theirs.data]
    assert len(ours.data[0].embedding) == 384
    assert ours.usage.prompt_tokens == theirs.usage.prompt_tokens > 0
    # `dimensions` goes upstream: the same shortened, renormalised vectors.
    short = client.embeddings.create(
        model=EMBED, input=SENTENCES[0], dimensions=64, encoding_format="float"
    )
    short_direct = direct.embeddings.create(
        model="all-minilm-l6-v2", input=SENTENCES[0], dimensions=64, encoding_format="float"
    )
    assert short.data[0].embedding == short_direct.data[0].embedding
    assert len(short.data[0].embedding) == 64


def test_embeddings_base64_and_token_arrays(http: httpx.Client, up_http: httpx.Client) -> None:
    body = {"input": SENTENCES, "encoding_format": "base64"}
    ours = http.post("/embeddings", json={**body, "model": EMBED}).json()
    theirs = up_http.post("/embeddings", json={**body, "model": "all-minilm-l6-v2"}).json()
    assert [d["embedding"] for d in ours["data"]] == [d["embedding"] for d in theirs["data"]]
    assert len(base64.b64decode(ours["data"][0]["embedding"])) == 384 * 4
    tokens = {"input": [[101, 7592, 2088, 102]], "encoding_format": "float"}  # the model's ids
    ours = http.post("/embeddings", json={**tokens, "model": EMBED}).json()
    theirs = up_http.post("/embeddings", json={**tokens, "model": "all-minilm-l6-v2"}).json()
    assert ours["data"][0]["embedding"] == theirs["data"][0]["embedding"]
    assert ours["usage"] == theirs["usage"]


def test_a_vector_store_over_the_remote_model_ranks_the_right_file_first(
    client: OpenAI,
) -> None:
    # The long file is one 800-token chunk (the default) that the upstream refuses whole
    # (256 tokens at most): it is indexed only if the chunk is cut before it is sent.
    railways = "Railways carried coal, grain and passengers across the plains. " * 60
    documents = {**DOCUMENTS, "railways.txt": railways}
    store = client.vector_stores.create(name="remote")
    ids: dict[str, str] = {}
    for name, text in documents.items():
        done = client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id,
            file=(name, io.BytesIO(text.encode())),
            poll_interval_ms=100,
        )
        assert done.status == "completed", done.last_error
        ids[name] = done.id
    try:
        page = client.vector_stores.search(store.id, query="How tall is Kilimanjaro?")
        assert page.data[0].file_id == ids["volcano.md"]
        assert "5,895" in page.data[0].content[0].text
        trains = client.vector_stores.search(store.id, query="What did the trains carry?")
        assert trains.data[0].file_id == ids["railways.txt"]
        rings = client.vector_stores.search(store.id, query="what are planetary rings made of")
        assert rings.data[0].file_id == ids["saturn.html"]
    finally:
        client.vector_stores.delete(store.id)


def test_embeddings_errors(http: httpx.Client) -> None:
    # The upstream refuses it with a 400 naming `dimensions`; so do we.
    error = _error(
        http.post("/embeddings", json={"model": EMBED, "input": "hi", "dimensions": 1000}), 400
    )
    assert error["param"] == "dimensions" and "1000" in error["message"]
    # Refused before it is sent: an empty input.
    error = _error(http.post("/embeddings", json={"model": EMBED, "input": [""]}), 400)
    assert error["param"] == "input"
    dead = http.post("/embeddings", json={"model": DEAD["embeddings"], "input": "hi"})
    _error(dead, 503)
    assert dead.headers["x-should-retry"] == "true"


# --- text to speech -------------------------------------------------------------------------


def same_speech(ours: bytes, theirs: bytes) -> None:
    """The same 16-bit speech, up to the synthesiser's own run-to-run jitter (its ONNX
    runtime does not add up in the same order every time)."""
    a, b = pcm16_to_float(ours), pcm16_to_float(theirs)
    assert len(a) == len(b) > 24_000  # over a second, sample for sample as long
    assert float(np.corrcoef(a, b)[0, 1]) > 0.99


def test_speech_equals_the_upstream_s(client: OpenAI, direct: OpenAI, http: httpx.Client) -> None:
    for fmt in ("pcm", "mp3"):
        ours = client.audio.speech.create(
            model=TTS, voice="alloy", input=SPOKEN, response_format=fmt, speed=1.25
        )
        theirs = direct.audio.speech.create(
            model="hibari", voice="heart", input=SPOKEN, response_format=fmt, speed=1.25
        )
        assert ours.response.headers["content-type"] == theirs.response.headers["content-type"]
        if fmt == "pcm":
            same_speech(ours.content, theirs.content)
    pcm = direct.audio.speech.create(
        model="hibari", voice="heart", input=SPOKEN, response_format="pcm"
    ).content
    # stream_format "sse": the upstream's own events, relayed.
    with http.stream(
        "POST",
        "/audio/speech",
        json={"model": TTS, "voice": "alloy", "input": SPOKEN, "response_format": "pcm",
              "stream_format": "sse"},
    ) as response:  # fmt: skip
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data:")]
    events = [json.loads(line[5:]) for line in lines]
    assert [e["type"] for e in events][-1] == "speech.audio.done"
    same_speech(b"".join(base64.b64decode(e["audio"]) for e in events[:-1]), pcm)
    assert events[-1]["usage"]["output_tokens"] > 0


def test_speech_errors(http: httpx.Client) -> None:
    bad = http.post("/audio/speech", json={"model": TTS, "voice": "nobody", "input": "Hi."})
    assert _error(bad, 400)["param"] == "voice"
    bad = http.post("/audio/speech", json={"model": TTS, "voice": "alloy", "input": "  "})
    assert _error(bad, 400)["param"] == "input"
    dead = http.post(
        "/audio/speech", json={"model": DEAD["text-to-speech"], "voice": "alloy", "input": "Hi."}
    )
    _error(dead, 503)
    assert dead.headers["x-should-retry"] == "true"


# --- speech to text -------------------------------------------------------------------------


def test_transcripts_equal_the_upstream_s(client: OpenAI, direct: OpenAI, wav: bytes) -> None:
    ours = client.audio.transcriptions.create(model=WHISPER, file=("a.wav", wav))
    theirs = direct.audio.transcriptions.create(model="whisper-base", file=("a.wav", wav))
    assert ours.text == theirs.text and "fox" in ours.text.lower()
    assert ours.usage == theirs.usage
    verbose = client.audio.transcriptions.create(
        model=WHISPER,
        file=("a.wav", wav),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        language="en",
    )
    verbose_direct = direct.audio.transcriptions.create(
        model="whisper-base",
        file=("a.wav", wav),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        language="en",
    )
    assert verbose.model_dump() == verbose_direct.model_dump()
    assert verbose.words and verbose.segments  # the upstream's timestamps, kept
    for fmt in ("srt", "vtt", "text"):
        relayed = client.audio.transcriptions.create(
            model=WHISPER, file=("a.wav", wav), response_format=fmt
        )
        assert relayed == direct.audio.transcriptions.create(
            model="whisper-base", file=("a.wav", wav), response_format=fmt
        )


# translations.create is marked deprecated in the SDK; the endpoint is what is tested.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_translation_is_relayed(client: OpenAI, direct: OpenAI, wav: bytes) -> None:
    for fmt in ("json", "verbose_json"):
        ours = client.audio.translations.create(
            model=WHISPER, file=("a.wav", wav), response_format=fmt
        )
        theirs = direct.audio.translations.create(
            model="whisper-base", file=("a.wav", wav), response_format=fmt
        )
        assert ours.model_dump() == theirs.model_dump() and "fox" in ours.text.lower()


def test_streamed_transcript_is_relayed(client: OpenAI, direct: OpenAI, wav: bytes) -> None:
    events = list(
        client.audio.transcriptions.create(model=WHISPER, file=("a.wav", wav), stream=True)
    )
    expected = list(
        direct.audio.transcriptions.create(model="whisper-base", file=("a.wav", wav), stream=True)
    )
    assert [e.model_dump() for e in events] == [e.model_dump() for e in expected]
    assert events[-1].type == "transcript.text.done" and "fox" in events[-1].text.lower()


def test_transcription_errors(http: httpx.Client, wav: bytes) -> None:
    bad = http.post(
        "/audio/transcriptions",
        data={"model": WHISPER, "language": "xx"},
        files={"file": ("a.wav", wav)},
    )
    assert _error(bad, 400)["param"] == "language"
    bad = http.post(
        "/audio/transcriptions",
        data={"model": WHISPER},
        files={"file": ("a.wav", b"not audio at all")},
    )
    assert _error(bad, 400)["param"] == "file"
    dead = http.post(
        "/audio/transcriptions",
        data={"model": DEAD["speech-to-text"]},
        files={"file": ("a.wav", wav)},
    )
    _error(dead, 503)
    assert dead.headers["x-should-retry"] == "true"
