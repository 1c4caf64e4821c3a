"""Audio helpers for the audio tests: PyAV encode/decode and word error rate."""

from __future__ import annotations

import io
import re
from fractions import Fraction

import av
import numpy as np

# (container, codec) for each upload format a client may send.
CONTAINERS: dict[str, tuple[str, str]] = {
    "wav": ("wav", "pcm_s16le"),
    "mp3": ("mp3", "libmp3lame"),
    "m4a": ("ipod", "aac"),
    "ogg": ("ogg", "libopus"),
    "webm": ("webm", "libopus"),
    "flac": ("flac", "flac"),
}


def pcm16_to_float(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def encode(samples: np.ndarray, rate: int, kind: str) -> bytes:
    """``samples`` (float32 mono) as a file of ``kind`` (a key of :data:`CONTAINERS`)."""
    container_name, codec = CONTAINERS[kind]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container_name) as out:
        # Opus only takes 48 kHz input in webm/ogg muxers' eyes; let PyAV resample.
        out_rate = 48_000 if codec == "libopus" else rate
        stream = out.add_stream(codec, rate=out_rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = 0
        frame.time_base = Fraction(1, rate)
        if out_rate != rate:
            resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=out_rate)
            frames = resampler.resample(frame) + resampler.resample(None)
        else:
            frames = [frame]
        for f in frames:
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """All samples (mono float32) of an audio file and its sample rate."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        chunks = [
            frame.to_ndarray().astype(np.float32).reshape(frame.samples, -1).mean(axis=1)
            if frame.format.is_packed
            else frame.to_ndarray().astype(np.float32).mean(axis=0)
            for frame in container.decode(stream)
        ]
        rate = stream.codec_context.sample_rate
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), rate


def duration(data: bytes) -> float:
    samples, rate = decode(data)
    return len(samples) / rate


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference length (case and punctuation ignored)."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))
