"""Transcriptions and translations on the packaged whisper-base, through the official SDK.

The speech comes from the server itself (hibari), so every test is a real round trip.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.audio import (
    Transcription,
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    TranscriptionVerbose,
    Translation,
    TranslationVerbose,
)

from oasis.models.assets import resolve_source
from oasis.models.catalog import WHISPER_BASE
from tests.audio_helpers import CONTAINERS, encode, pcm16_to_float, word_error_rate
from tests.server import Server, start_server

SENTENCE = (
    "The quick brown fox jumps over the lazy dog. "
    "A journey of a thousand miles begins with a single step."
)
SHORT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def speech(client: OpenAI) -> Any:
    """SENTENCE spoken by the server, as float32 samples at 24 kHz."""
    pcm = client.audio.speech.create(
        model="tts-1", voice="alloy", input=SENTENCE, response_format="pcm"
    ).content
    return pcm16_to_float(pcm)


@pytest.fixture(scope="module")
def wav(speech: Any) -> bytes:
    return encode(speech, 24_000, "wav")


@pytest.fixture(scope="module")
def short_speech(client: OpenAI) -> Any:
    """SHORT spoken by the server (about 3 s), for the tests that repeat a lot."""
    pcm = client.audio.speech.create(
        model="tts-1", voice="alloy", input=SHORT, response_format="pcm"
    ).content
    return pcm16_to_float(pcm)


@pytest.fixture(scope="module")
def short_wav(short_speech: Any) -> bytes:
    return encode(short_speech, 24_000, "wav")


def transcribe(client: OpenAI, data: bytes, name: str = "speech.wav", **kwargs: Any) -> Any:
    return client.audio.transcriptions.create(
        model=kwargs.pop("model", "whisper-1"), file=(name, data), **kwargs
    )


def test_round_trip_word_error_rate(client: OpenAI, wav: bytes) -> None:
    result = transcribe(client, wav)
    assert isinstance(result, Transcription)
    assert word_error_rate(SENTENCE, result.text) <= 0.25, result.text
    assert result.usage is not None and result.usage.type == "duration"
    assert 5 < result.usage.seconds < 12


@pytest.mark.parametrize("kind", sorted(CONTAINERS))
def test_every_common_container_decodes(client: OpenAI, short_speech: Any, kind: str) -> None:
    data = encode(short_speech, 24_000, kind)
    result = transcribe(client, data, name=f"speech.{kind}", model="gpt-4o-transcribe")
    assert word_error_rate(SHORT, result.text) <= 0.25, (kind, result.text)


def test_text_srt_and_vtt(client: OpenAI, wav: bytes, short_wav: bytes) -> None:
    text = transcribe(client, short_wav, response_format="text")
    assert isinstance(text, str) and word_error_rate(SHORT, text) <= 0.25
    srt = transcribe(client, wav, response_format="srt")
    cues = re.findall(r"(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)\n", srt)
    assert cues and [int(c[0]) for c in cues] == list(range(1, len(cues) + 1))
    assert word_error_rate(SENTENCE, " ".join(c[3] for c in cues)) <= 0.25
    vtt = transcribe(client, short_wav, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n")
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n\S", vtt)


def test_text_formats_are_plain_text(http: httpx.Client, short_wav: bytes) -> None:
    response = http.post(
        "/v1/audio/transcriptions",
        data={"model": "whisper-1", "response_format": "srt"},
        files={"file": ("speech.wav", short_wav, "audio/wav")},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


def test_verbose_json_segments_and_words(client: OpenAI, wav: bytes) -> None:
    verbose = transcribe(client, wav, response_format="verbose_json")
    assert isinstance(verbose, TranscriptionVerbose)
    assert verbose.language == "english" and 5 < verbose.duration < 12
    assert verbose.segments and verbose.words is None
    assert [s.id for s in verbose.segments] == list(range(len(verbose.segments)))
    assert all(s.start <= s.end <= verbose.duration + 0.5 for s in verbose.segments)
    both = transcribe(
        client, wav, response_format="verbose_json", timestamp_granularities=["word", "segment"]
    )
    assert both.segments and both.words
    assert word_error_rate(SENTENCE, " ".join(w.word for w in both.words)) <= 0.25
    starts = [w.start for w in both.words]
    assert starts == sorted(starts) and all(w.start <= w.end for w in both.words)
    words_only = transcribe(
        client, wav, response_format="verbose_json", timestamp_granularities=["word"]
    )
    assert words_only.words and words_only.segments is None


def test_language_prompt_and_temperature(client: OpenAI, short_wav: bytes) -> None:
    result = transcribe(
        client, short_wav, language="en", prompt="Proverbs and pangrams.", temperature=0.2
    )
    assert word_error_rate(SHORT, result.text) <= 0.25


def test_streaming_deltas_concatenate_to_the_final_text(client: OpenAI, wav: bytes) -> None:
    events = list(transcribe(client, wav, stream=True))
    deltas = [e for e in events if isinstance(e, TranscriptionTextDeltaEvent)]
    assert deltas and isinstance(events[0], TranscriptionTextDeltaEvent)
    done = events[-1]
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert "".join(d.delta for d in deltas) == done.text
    assert word_error_rate(SENTENCE, done.text) <= 0.25
    assert done.usage is not None and done.usage.output_tokens > 0
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens


# translations.create is marked deprecated in the SDK; the endpoint is what is tested.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("response_format", ["json", "text", "srt", "vtt", "verbose_json"])
def test_translation_formats(client: OpenAI, short_wav: bytes, response_format: str) -> None:
    result = client.audio.translations.create(
        model="whisper-1",
        file=("speech.wav", short_wav),
        response_format=response_format,  # type: ignore[arg-type]
    )
    if response_format == "json":
        assert isinstance(result, Translation)
        text = result.text
    elif response_format == "verbose_json":
        assert isinstance(result, TranslationVerbose)
        assert result.language == "english" and result.segments
        text = result.text
    else:
        assert isinstance(result, str)
        text = result
    assert "quick brown fox" in text.lower()


def test_concurrent_requests(client: OpenAI, short_wav: bytes) -> None:
    def one(i: int) -> str:
        if i % 2:
            return str(transcribe(client, short_wav).text)
        audio = client.audio.speech.create(
            model="tts-1", voice="alloy", input=SHORT, response_format="wav"
        ).content
        return str(transcribe(client, audio).text)

    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(one, range(4)))
    assert all(word_error_rate(SHORT, t) <= 0.25 for t in texts), texts


# --- bad input -------------------------------------------------------------------------


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.mp3", b"\x00\x01\x02 this is not audio " * 200),
        ("empty.wav", b""),
        ("notes.txt", b"just some text, not audio at all\n" * 50),
        ("list.m3u8", b"#EXTM3U\n#EXTINF:1,\n/etc/hostname\n"),
        ("concat.txt", b"ffconcat version 1.0\nfile /etc/hostname\n"),
    ],
)
def test_undecodable_files_are_400(http: httpx.Client, name: str, content: bytes) -> None:
    response = http.post(
        "/v1/audio/transcriptions",
        data={"model": "whisper-1"},
        files={"file": (name, content, "application/octet-stream")},
    )
    assert response.status_code == 400, response.text
    error = _error(response)
    assert error["param"] == "file" and error["type"] == "invalid_request_error"


def test_undecodable_file_is_400_when_streaming_too(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        transcribe(client, b"not audio" * 100, name="x.wav", stream=True)
    assert info.value.param == "file"


def test_audio_too_short_is_400(client: OpenAI, short_speech: Any) -> None:
    tiny = encode(short_speech[:240], 24_000, "wav")  # 10 ms
    with pytest.raises(openai.BadRequestError) as info:
        transcribe(client, tiny)
    assert info.value.param == "file" and info.value.code == "audio_too_short"


def test_truncated_file_still_transcribes_what_is_there(client: OpenAI, short_speech: Any) -> None:
    mp3 = encode(short_speech, 24_000, "mp3")
    result = transcribe(client, mp3[: len(mp3) // 2], name="half.mp3")
    assert "quick" in result.text.lower()


def test_file_over_25_mb_is_413(http: httpx.Client, short_wav: bytes) -> None:
    big = short_wav + b"\x00" * (25 * 1024 * 1024 + 1 - len(short_wav))
    response = http.post(
        "/v1/audio/transcriptions",
        data={"model": "whisper-1"},
        files={"file": ("big.wav", big, "audio/wav")},
    )
    assert response.status_code == 413
    assert _error(response)["param"] == "file"


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"model": "whisper-1", "language": "xx"}, "language"),
        ({"model": "whisper-1", "temperature": "2"}, "temperature"),
        ({"model": "whisper-1", "temperature": "warm"}, "temperature"),
        ({"model": "whisper-1", "response_format": "doc"}, "response_format"),
        ({"model": "whisper-1", "response_format": "diarized_json"}, "response_format"),
        (
            {"model": "whisper-1", "timestamp_granularities[]": "letter"},
            "timestamp_granularities[0]",
        ),
        ({}, "model"),
    ],
)
def test_bad_fields_are_400_naming_the_param(
    http: httpx.Client, short_wav: bytes, data: dict[str, str], param: str
) -> None:
    response = http.post(
        "/v1/audio/transcriptions",
        data=data,
        files={"file": ("speech.wav", short_wav, "audio/wav")},
    )
    assert response.status_code == 400, response.text
    assert _error(response)["param"] == param


def test_missing_file_wrong_body_and_wrong_model(http: httpx.Client, client: OpenAI) -> None:
    response = http.post(
        "/v1/audio/transcriptions", files={"model": (None, "whisper-1"), "file": (None, "x")}
    )
    assert response.status_code == 400 and _error(response)["param"] == "file"
    response = http.post("/v1/audio/transcriptions", data={"model": "whisper-1", "file": "x"})
    assert response.status_code == 400 and "multipart" in _error(response)["message"]
    response = http.post("/v1/audio/transcriptions", files={"model": (None, "whisper-1")})
    assert response.status_code == 400 and _error(response)["param"] == "file"
    response = http.post("/v1/audio/translations", json={"model": "whisper-1"})
    assert response.status_code == 400
    with pytest.raises(openai.NotFoundError) as info:
        transcribe(client, b"RIFF", model="tts-1")
    assert info.value.code == "model_not_found"


# --- long audio: a server whose whisper model cuts the audio into 6-second pieces ------------


@pytest.fixture(scope="module")
def chunked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("oasis-chunked")
    model_dir = resolve_source(WHISPER_BASE, data_dir)
    config = {
        "preload": [],
        "models": [
            {
                "id": "whisper-chunked",
                "kind": "speech-to-text",
                "path": str(model_dir),
                "options": {"chunk_seconds": 6, "threads": 1},
            }
        ],
    }
    server = start_server(data_dir, config=config)
    yield server
    server.stop()


def test_long_audio_is_transcribed_in_pieces(chunked_server: Server, speech: Any) -> None:
    import numpy as np

    pause = np.zeros(12_000, np.float32)  # 0.5 s
    long_audio = np.concatenate([speech, pause, speech, pause, speech])
    data = encode(long_audio, 24_000, "flac")
    with OpenAI(
        base_url=chunked_server.api_url,
        api_key="sk",
        max_retries=0,
        _strict_response_validation=True,
        timeout=300,
    ) as sdk:
        verbose = sdk.audio.transcriptions.create(
            model="whisper-chunked",
            file=("long.flac", io.BytesIO(data)),
            response_format="verbose_json",
        )
    assert verbose.duration == pytest.approx(len(long_audio) / 24_000, abs=0.05)
    assert word_error_rate(" ".join([SENTENCE] * 3), verbose.text) <= 0.25, verbose.text
    assert verbose.segments is not None
    starts = [s.start for s in verbose.segments]
    assert starts == sorted(starts) and verbose.segments[-1].end > 2 * verbose.duration / 3
    assert [s.id for s in verbose.segments] == list(range(len(verbose.segments)))


def test_a_client_that_gives_up_mid_file_leaves_no_error(
    chunked_server: Server, speech: Any
) -> None:
    """A transcription whose client hangs up mid-file is cancelled cleanly: no error in the
    log, and the model serves the next request. (The decode thread lets go of the upload
    before the form's file is closed; the race that ordering prevents is too narrow to
    hit from outside, so this checks the clean end, not the race.)"""
    import numpy as np

    pause = np.zeros(12_000, np.float32)
    data = encode(np.concatenate([speech, pause] * 8), 24_000, "flac")
    before = len(chunked_server.log())
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{chunked_server.api_url}/audio/transcriptions",
            data={"model": "whisper-chunked"},
            files={"file": ("long.flac", data)},
            timeout=httpx.Timeout(60, read=1.0),
        )
    deadline = time.monotonic() + 30
    while "its work is cancelled" not in chunked_server.log()[before:]:
        assert time.monotonic() < deadline, chunked_server.log()[before:]
        time.sleep(0.1)
    short = encode(speech, 24_000, "wav")
    with OpenAI(base_url=chunked_server.api_url, api_key="sk", max_retries=0) as sdk:
        text = sdk.audio.transcriptions.create(
            model="whisper-chunked", file=("short.wav", io.BytesIO(short)), response_format="text"
        )
    assert word_error_rate(SENTENCE, str(text)) <= 0.25
    logged = chunked_server.log()[before:]
    assert "Traceback" not in logged and "ValueError" not in logged, logged


def test_model_dir_is_assembled_and_checked(tmp_path: Path) -> None:
    model_dir = resolve_source(WHISPER_BASE, tmp_path)
    assert {p.name for p in model_dir.iterdir()} >= {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }
