"""``POST /v1/audio/speech`` on the packaged hibari voice, through the official SDK."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.audio_helpers import decode, duration, pcm16_to_float

TEXT = "The quick brown fox jumps over the lazy dog."
THREE_SENTENCES = (
    "The first sentence is short. The second one is a little longer than the first. "
    "And the third sentence ends the paragraph."
)
FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]


def speak(client: OpenAI, **kwargs: object) -> bytes:
    params: dict[str, object] = {"model": "tts-1", "voice": "alloy", "input": TEXT, **kwargs}
    return client.audio.speech.create(**params).content  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def reference_seconds(client: OpenAI) -> float:
    """The duration of TEXT at speed 1 (24 kHz PCM)."""
    return len(speak(client, response_format="pcm")) / 2 / 24_000


@pytest.mark.parametrize("response_format", FORMATS)
def test_every_format_decodes_to_plausible_audio(
    client: OpenAI, response_format: str, reference_seconds: float
) -> None:
    raw = client.audio.speech.with_raw_response.create(
        model="tts-1",
        voice="alloy",
        input=TEXT,
        response_format=response_format,  # type: ignore[arg-type]
    )
    data = raw.content
    content_type = raw.headers["content-type"]
    assert content_type.startswith(
        {
            "mp3": "audio/mpeg",
            "opus": "audio/opus",
            "aac": "audio/aac",
            "flac": "audio/flac",
            "wav": "audio/wav",
            "pcm": "audio/pcm",
        }[response_format]
    )
    if response_format == "pcm":
        seconds = len(data) / 2 / 24_000
        samples = pcm16_to_float(data)
    else:
        samples, rate = decode(data)
        seconds = len(samples) / rate
        if response_format in {"wav", "flac"}:
            assert rate == 24_000
    # About 3 s of speech for 9 words; codecs add at most a few frames of padding.
    assert 1.5 < seconds < 6.0
    assert abs(seconds - reference_seconds) < 0.2
    assert float(np.sqrt(np.mean(samples**2))) > 0.01, "the audio is silent"


def test_pcm_is_24khz_16bit_mono_and_wav_matches(client: OpenAI) -> None:
    wav = speak(client, response_format="wav")
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    channels, rate, _, _, bits = np.frombuffer(wav[22:36], dtype="<u2,<u4,<u4,<u2,<u2")[0]
    assert (channels, rate, bits) == (1, 24_000, 16)


@pytest.mark.parametrize("speed", [0.25, 0.5, 2.0, 4.0])
def test_speed_changes_duration(client: OpenAI, speed: float, reference_seconds: float) -> None:
    seconds = len(speak(client, response_format="pcm", speed=speed)) / 2 / 24_000
    ratio = seconds / reference_seconds
    assert 0.7 / speed < ratio < 1.3 / speed


def test_every_openai_voice_and_instructions_are_accepted(client: OpenAI) -> None:
    for voice in [
        "ash",
        "ballad",
        "coral",
        "echo",
        "fable",
        "onyx",
        "nova",
        "sage",
        "shimmer",
        "verse",
        "marin",
        "cedar",
    ]:
        assert len(speak(client, voice=voice, input="Hi.", response_format="pcm")) > 0
    data = speak(
        client,
        model="gpt-4o-mini-tts",
        voice="heart",
        response_format="wav",
        instructions="Speak cheerfully.",
    )
    assert duration(data) > 1.0
    custom = speak(client, voice={"id": "alloy"}, input="Hi.", response_format="pcm")
    assert len(custom) > 0


def sse_deltas(http: httpx.Client, text: str) -> list[bytes]:
    """The audio of each ``speech.audio.delta`` of a pcm SSE stream of ``text``."""
    body = {
        "model": "tts-1",
        "voice": "alloy",
        "input": text,
        "response_format": "pcm",
        "stream_format": "sse",
    }
    response = http.post("/v1/audio/speech", json=body)
    assert response.status_code == 200, response.text
    events = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    return [base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta"]


def test_audio_streams_sentence_by_sentence(http: httpx.Client) -> None:
    """Each sentence goes out as soon as it is synthesised: with pcm (no encoder delay) the
    stream has exactly one piece per sentence, in order."""
    sentences = [
        "One.",
        "The second sentence is much longer than the first one, and longer than the third.",
        "Then a third.",
    ]
    deltas = sse_deltas(http, " ".join(sentences))
    assert len(deltas) == len(sentences)
    seconds = [len(d) / 2 / 24_000 for d in deltas]
    assert seconds[1] > seconds[2] > seconds[0], seconds
    assert len(sse_deltas(http, sentences[1])) == 1

    body = {"model": "tts-1", "voice": "alloy", "input": THREE_SENTENCES, "response_format": "pcm"}
    with http.stream("POST", "/v1/audio/speech", json=body) as response:
        assert response.status_code == 200
        assert response.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in response.headers
        total = b"".join(response.iter_raw())
    assert len(total) % 2 == 0 and len(total) / 2 / 24_000 > 4.0


def test_sse_stream_format(http: httpx.Client) -> None:
    body = {
        "model": "gpt-4o-mini-tts",
        "voice": "nova",
        "input": THREE_SENTENCES,
        "response_format": "pcm",
        "stream_format": "sse",
    }
    response = http.post("/v1/audio/speech", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) >= 2 and events[-1]["type"] == "speech.audio.done"
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    assert len(audio) / 2 / 24_000 > 4.0
    usage = events[-1]["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_sdk_streaming_response(client: OpenAI) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=THREE_SENTENCES, response_format="mp3"
    ) as response:
        data = b"".join(response.iter_bytes())
    assert duration(data) > 4.0


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"input": "x" * 4097}, "input"),
        ({"input": "   "}, "input"),
        ({"speed": 4.5}, "speed"),
        ({"speed": 0.1}, "speed"),
        ({"response_format": "ogg"}, "response_format"),
        ({"voice": "nobody"}, "voice"),
        ({"stream_format": "chunks"}, "stream_format"),
    ],
)
def test_bad_requests_are_400_naming_the_param(
    client: OpenAI, changes: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        speak(client, **changes)
    assert info.value.param == param


def test_input_of_4096_characters_is_accepted(http: httpx.Client) -> None:
    text = ("Hello there. " * 400)[:4096]
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"}
    with http.stream("POST", "/v1/audio/speech", json=body) as response:
        assert response.status_code == 200
        first = next(response.iter_raw())  # streaming starts; no need to wait for it all
        assert len(first) > 0


def test_missing_fields_and_wrong_models(http: httpx.Client, client: OpenAI) -> None:
    response = http.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hi."})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "voice"
    with pytest.raises(openai.NotFoundError) as info:
        speak(client, model="no-such-tts")
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        speak(client, model="whisper-1")  # a speech-to-text model cannot speak


def test_full_queue_is_a_503_before_the_stream_starts(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """With the model's one slot taken, a streamed speech request gets a 503 status (with
    the error envelope), not a 200 whose stream then fails."""
    import threading

    from tests.server import start_server

    srv = start_server(
        tmp_path_factory.mktemp("busy-speech"), config={"max_queue": 1, "preload": []}
    )
    try:
        # Long enough that the first job is still synthesising when the second arrives.
        long_text = " ".join(f"This is sentence number {i} of a long reading." for i in range(80))
        started, release = threading.Event(), threading.Event()

        def occupy() -> None:
            body = {
                "model": "tts-1",
                "voice": "alloy",
                "input": long_text,
                "response_format": "pcm",
            }
            with httpx.stream("POST", f"{srv.api_url}/audio/speech", json=body, timeout=120) as r:
                for _ in r.iter_raw():
                    started.set()
                    if release.is_set():
                        break  # leaving cancels the synthesis

        worker = threading.Thread(target=occupy)
        worker.start()
        try:
            assert started.wait(60)
            for stream_format in ("sse", "audio"):
                busy = httpx.post(
                    f"{srv.api_url}/audio/speech",
                    json={"model": "tts-1", "voice": "alloy", "input": "Hi.",
                          "stream_format": stream_format},
                    timeout=60,
                )  # fmt: skip
                assert busy.status_code == 503, (stream_format, busy.text[:200])
                assert busy.headers["content-type"].startswith("application/json")
                assert busy.json()["error"]["type"]
        finally:
            release.set()
            worker.join(60)
    finally:
        srv.stop()
