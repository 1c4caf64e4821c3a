"""Unit tests of the audio helpers: chunked decoding, encoders, subtitles, form folding."""

from __future__ import annotations

import io

import numpy as np
import pytest

from oasis.audio.decode import AudioReader, InvalidAudioError, quiet_cut
from oasis.audio.encode import OUTPUT_FORMATS, AudioEncoder, TempoStretcher
from oasis.services.audio.speech import OPENAI_VOICES, local_voice
from oasis.services.audio.subtitles import timestamp, to_srt, to_vtt
from oasis.wire.base import form_fields
from tests.audio_helpers import decode, encode

RATE = 24_000


def tone_with_gaps() -> np.ndarray:
    """0.4 s tone, 0.2 s silence, repeated: every 0.5 s stretch holds some silence."""
    t = np.arange(int(0.4 * RATE)) / RATE
    tone = (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    gap = np.zeros(int(0.2 * RATE), np.float32)
    return np.concatenate([tone, gap] * 14)


def test_chunks_cover_the_file_and_cut_in_silence() -> None:
    audio = tone_with_gaps()
    reader = AudioReader(io.BytesIO(encode(audio, RATE, "flac")), 16_000)
    chunks = list(reader.chunks(max_seconds=2.0))
    reader.close()
    assert len(chunks) >= 4
    assert all(len(c.samples) <= 2 * 16_000 for c in chunks)
    total = sum(len(c.samples) for c in chunks)
    assert total == reader.decoded_samples
    assert reader.decoded_seconds == pytest.approx(len(audio) / RATE, abs=0.01)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.offset == pytest.approx(before.offset + len(before.samples) / 16_000)
        # each cut lands in a gap: the samples around it are silent
        assert float(np.abs(before.samples[-80:]).max()) < 0.05
        assert float(np.abs(after.samples[:80]).max()) < 0.05


def test_quiet_cut_prefers_the_quietest_window() -> None:
    samples = np.ones(1000, np.float32)
    samples[600:640] = 0.0
    assert 600 <= quiet_cut(samples, 500, 1000, 20) < 640


def test_reader_rejects_non_audio() -> None:
    with pytest.raises(InvalidAudioError) as info:
        AudioReader(io.BytesIO(b"definitely not audio" * 10), 16_000)
    assert info.value.param == "file" and info.value.status_code == 400


@pytest.mark.parametrize("fmt", sorted(OUTPUT_FORMATS))
def test_encoder_streams_every_format(fmt: str) -> None:
    audio = tone_with_gaps()[: 2 * RATE]
    encoder = AudioEncoder(fmt, RATE)
    parts = [encoder.encode(piece) for piece in np.array_split(audio, 4)]
    parts.append(encoder.finish())
    assert sum(1 for p in parts[:-1] if p) >= 2, "bytes must come out before the end"
    data = b"".join(parts)
    if fmt == "pcm":
        assert len(data) == 2 * len(audio)
        return
    samples, rate = decode(data)
    assert len(samples) / rate == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("factor", [0.25, 0.5, 1.5, 2.0])
def test_tempo_stretcher(factor: float) -> None:
    audio = tone_with_gaps()[: 2 * RATE]
    stretcher = TempoStretcher(factor, RATE)
    out = [stretcher.process(p) for p in np.array_split(audio, 3)] + [stretcher.finish()]
    seconds = sum(len(o) for o in out) / RATE
    assert seconds == pytest.approx(2.0 / factor, rel=0.05)


def test_subtitles() -> None:
    class Cue:
        def __init__(self, start: float, end: float, text: str) -> None:
            self.start, self.end, self.text = start, end, text

    cues = [Cue(0.0, 1.5, " Hello."), Cue(3661.25, 3662.0, " World.")]
    assert timestamp(3661.25, ",") == "01:01:01,250"
    assert to_srt(cues) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello.\n\n2\n01:01:01,250 --> 01:01:02,000\nWorld.\n"
    )
    assert to_vtt(cues).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello.\n")


def test_form_fields_fold_brackets() -> None:
    folded = form_fields(
        [
            ("model", "m"),
            ("timestamp_granularities[]", "word"),
            ("timestamp_granularities[]", "segment"),
            ("chunking_strategy[type]", "server_vad"),
        ]
    )
    assert folded == {
        "model": "m",
        "timestamp_granularities": ["word", "segment"],
        "chunking_strategy": {"type": "server_vad"},
    }


def test_voice_mapping() -> None:
    assert local_voice("alloy", {"alloy": "emma"}, ("heart", "emma")) == "emma"
    assert local_voice("emma", {}, ("heart", "emma")) == "emma"
    assert all(local_voice(v, {}, ("heart",)) == "heart" for v in OPENAI_VOICES)
    with pytest.raises(Exception) as info:
        local_voice("nobody", {}, ("heart",))
    assert getattr(info.value, "param", None) == "voice"


def test_decoder_close_waits_for_a_decode_in_flight() -> None:
    """A cancelled request closes its reader only after the decode thread is done with it
    (closing an ffmpeg container under a running decode can crash the process)."""
    import asyncio
    import threading

    from oasis.services.audio.transcription import _Decoder

    gate = threading.Event()
    blocked = threading.Event()

    class SlowFile(io.BytesIO):
        """Reads block on ``gate`` once it is armed: a decode that is still running."""

        armed = False
        reads_after_close: list[int] = []
        closed_at: float | None = None

        def read(self, size: int = -1) -> bytes:  # type: ignore[override]
            if self.armed and not gate.is_set():
                blocked.set()
                gate.wait(10)
            return super().read(size)

    # The first 60 s piece needs many more reads than opening the file did.
    upload = SlowFile(encode(np.concatenate([tone_with_gaps()] * 12), RATE, "wav"))

    async def main() -> None:
        decoder = _Decoder()
        reader = await decoder.open(upload, 16_000, 60.0)
        upload.armed = True
        task = asyncio.ensure_future(decoder.next_piece())
        assert await asyncio.to_thread(blocked.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        decoder.close()  # returns at once: the close is queued behind the decode
        assert not gate.is_set()
        gate.set()
        await asyncio.to_thread(decoder._thread.shutdown, wait=True)
        # The decode finished on its own thread, then the container was closed.
        assert reader.decoded_samples > 0
        with pytest.raises(AssertionError, match="not open"):  # PyAV's closed container
            next(reader._container.demux())

    asyncio.run(main())
