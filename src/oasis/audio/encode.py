"""Encode float32 mono audio incrementally into OpenAI's speech formats (PyAV).

Each call to :meth:`AudioEncoder.encode` returns the bytes that are ready so far, so speech
can be sent sentence by sentence. The output is written to a sink without ``seek``: muxers
then leave their "total length" fields unset (WAV gets ``0xFFFFFFFF`` sizes, as OpenAI's
streamed WAV does), which every decoder accepts.

Everything here blocks (ffmpeg work): call it from a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

Samples = NDArray[np.float32]


@dataclass(frozen=True)
class OutputFormat:
    """How one ``response_format`` is made: codec, container and Content-Type."""

    codec: str | None  # None: raw 16-bit little-endian PCM, no container
    container: str | None
    media_type: str
    bit_rate: int | None = None
    container_options: dict[str, str] = field(default_factory=dict)
    codec_options: dict[str, str] = field(default_factory=dict)


OUTPUT_FORMATS: dict[str, OutputFormat] = {
    # LAME quality 7 encodes ~40% faster than its default; at 64 kbit/s mono speech the
    # difference is not audible, and the encoder is what a streamed mp3 waits on.
    "mp3": OutputFormat(
        "libmp3lame", "mp3", "audio/mpeg", 64_000, codec_options={"compression_level": "7"}
    ),
    # Ogg pages every 20 ms, not every second, so opus streams as promptly as the rest.
    "opus": OutputFormat("libopus", "ogg", "audio/opus", 32_000, {"page_duration": "20000"}),
    "aac": OutputFormat("aac", "adts", "audio/aac", 64_000),
    "flac": OutputFormat("flac", "flac", "audio/flac"),
    "wav": OutputFormat("pcm_s16le", "wav", "audio/wav"),
    "pcm": OutputFormat(None, None, "audio/pcm"),
}


class _Sink:
    """A write-only file for PyAV: collects what the muxer writes until drained."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        return len(chunk)

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def float_frame(samples: Samples, sample_rate: int, pts: int) -> Any:
    """``samples`` as a mono float ``av.AudioFrame`` starting at sample ``pts``."""
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1),
        format="flt",
        layout="mono",
    )
    frame.sample_rate = sample_rate
    frame.pts = pts
    frame.time_base = Fraction(1, sample_rate)
    return frame


def to_pcm16(samples: Samples) -> bytes:
    """Float samples in [-1, 1] as signed 16-bit little-endian bytes."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class AudioEncoder:
    """Turns float32 mono chunks into the bytes of one output format, as they come."""

    def __init__(self, response_format: str, sample_rate: int) -> None:
        self.format = OUTPUT_FORMATS[response_format]
        self.sample_rate = sample_rate
        self._pts = 0
        self._container: Any = None
        if self.format.codec is None:
            return
        self._sink = _Sink()
        self._container = av.open(
            self._sink,
            mode="w",
            format=self.format.container,
            options=dict(self.format.container_options),
        )
        stream = self._container.add_stream(
            self.format.codec, rate=sample_rate, options=dict(self.format.codec_options)
        )
        stream.layout = "mono"
        if self.format.bit_rate:
            stream.bit_rate = self.format.bit_rate
        self._stream = stream

    @property
    def media_type(self) -> str:
        return self.format.media_type

    def encode(self, samples: Samples) -> bytes:
        """Encode ``samples``; returns whatever bytes are complete (may be empty)."""
        if self._container is None:
            return to_pcm16(samples)
        if len(samples) == 0:
            return b""
        frame = float_frame(samples, self.sample_rate, self._pts)
        self._pts += len(samples)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._sink.drain()

    def finish(self) -> bytes:
        """Flush the encoder and close the container; returns the last bytes."""
        if self._container is None:
            return b""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None
        return self._sink.drain()


class TempoStretcher:
    """Changes speed without changing pitch (ffmpeg's ``atempo``), chunk by chunk."""

    def __init__(self, factor: float, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._pts = 0
        graph = av.filter.Graph()
        source = graph.add_abuffer(
            format="flt",
            sample_rate=sample_rate,
            layout="mono",
            time_base=Fraction(1, sample_rate),
        )
        # One atempo accepts 0.5..100; chain halvings for slower factors.
        filters = []
        while factor < 0.5:
            filters.append(graph.add("atempo", "0.5"))
            factor /= 0.5
        filters.append(graph.add("atempo", f"{factor:.6f}"))
        sink = graph.add("abuffersink")
        chain = [source, *filters, sink]
        for a, b in zip(chain, chain[1:], strict=False):
            a.link_to(b)
        graph.configure()
        self._graph = graph

    def _pull(self) -> Samples:
        out: list[Samples] = []
        while True:
            try:
                frame = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            out.append(frame.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def process(self, samples: Samples) -> Samples:
        """Stretch ``samples``; returns what the filter has ready (it keeps a little back)."""
        if len(samples) == 0:
            return np.zeros(0, np.float32)
        frame = float_frame(samples, self.sample_rate, self._pts)
        self._pts += len(samples)
        self._graph.push(frame)
        return self._pull()

    def finish(self) -> Samples:
        """The audio still held in the filter."""
        self._graph.push(None)
        return self._pull()
