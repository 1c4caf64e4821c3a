"""Decode an uploaded audio file lazily into mono float32 chunks (PyAV).

The whole decoded file is never held at once: a 25 MB upload of low-bitrate audio can be
hours long, which is gigabytes of float32. Instead :meth:`AudioReader.chunks` yields pieces
of at most ``max_seconds``, each cut at the quietest point near its end so a word is not
split between two pieces.

Everything here blocks (ffmpeg work): call it from a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import av
import numpy as np
from numpy.typing import NDArray

from oasis.errors import InvalidRequestError

log = logging.getLogger(__name__)

# Demuxers an upload may use. Playlist and concat demuxers (hls, concat, ...) could make
# ffmpeg open other files or URLs named inside the upload, so only plain media containers
# are allowed. A name matches any demuxer whose comma-separated name list contains it.
ALLOWED_DEMUXERS = (
    "wav,w64,mp3,mov,ogg,matroska,flac,aac,mpeg,mpegts,aiff,caf,asf,avi,amr,au,"
    "loas,ac3,eac3,wv,ape,tta,dts,truehd,mp4,m4a,webm,opus,oga"
)
# Packets that fail to decode are skipped (as ffmpeg's CLI does) up to this many.
_MAX_BAD_PACKETS = 50
# The window in which to look for a quiet cut point at the end of a chunk.
_CUT_SEARCH_SECONDS = 10.0
_CUT_WINDOW_SECONDS = 0.02

Samples = NDArray[np.float32]


class InvalidAudioError(InvalidRequestError):
    """The upload is not audio that can be decoded (a 400 naming ``file``)."""

    def __init__(self, message: str, code: str = "invalid_file_format") -> None:
        super().__init__(message, param="file", code=code)


@dataclass(frozen=True)
class AudioChunk:
    """A piece of the decoded audio; ``offset`` is its start in the file, in seconds."""

    offset: float
    samples: Samples


def _to_float(pcm: NDArray[Any]) -> Samples:
    return pcm.reshape(-1).astype(np.float32) / np.float32(32768.0)


def quiet_cut(samples: Samples, lo: int, hi: int, window: int) -> int:
    """The index in ``[lo, hi]`` at the centre of the quietest ``window``-sample stretch."""
    lo = max(0, lo)
    span = samples[lo:hi]
    n = len(span) // window
    if n < 2:
        return hi
    energy = np.square(span[: n * window].reshape(n, window), dtype=np.float64).mean(axis=1)
    # Prefer the latest of equally quiet windows so chunks stay as long as allowed.
    best = n - 1 - int(np.argmin(energy[::-1]))
    return lo + best * window + window // 2


class AudioReader:
    """One opened upload. Iterate :meth:`chunks` once; :meth:`close` when done."""

    def __init__(self, file: IO[bytes], sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.decoded_samples = 0
        try:
            file.seek(0)
            self._container: Any = av.open(
                file, mode="r", options={"format_whitelist": ALLOWED_DEMUXERS}
            )
        except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
            raise InvalidAudioError(
                "The audio file could not be decoded or its format is not supported. "
                "Supported formats: flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav, webm."
            ) from exc
        streams = self._container.streams.audio
        if not streams:
            self._container.close()
            raise InvalidAudioError("The file contains no audio stream.")
        self._stream = streams[0]

    @property
    def decoded_seconds(self) -> float:
        """How much audio has been decoded so far (all of it, once iteration ends)."""
        return self.decoded_samples / self.sample_rate

    def close(self) -> None:
        self._container.close()

    def _frames(self) -> Iterator[Samples]:
        # 16-bit, then float: the same samples faster-whisper's own decoder produces, so
        # a file gives the same transcript through oasis as through the library.
        resampler = av.AudioResampler(format="s16", layout="mono", rate=self.sample_rate)
        bad = 0
        try:
            for packet in self._container.demux(self._stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    bad += 1
                    if bad > _MAX_BAD_PACKETS:
                        raise
                    continue
                for frame in frames:
                    for out in resampler.resample(frame):
                        yield _to_float(out.to_ndarray())
            for out in resampler.resample(None):
                yield _to_float(out.to_ndarray())
        except (av.FFmpegError, ValueError) as exc:
            raise InvalidAudioError(
                f"The audio file is corrupt: decoding failed after "
                f"{self.decoded_seconds:.1f} seconds."
            ) from exc

    def chunks(self, max_seconds: float) -> Iterator[AudioChunk]:
        """Decoded audio in pieces of at most ``max_seconds``, cut at quiet points."""
        limit = max(1, int(max_seconds * self.sample_rate))
        search = int(min(_CUT_SEARCH_SECONDS, max_seconds / 4) * self.sample_rate)
        window = max(1, int(_CUT_WINDOW_SECONDS * self.sample_rate))
        pending: list[Samples] = []
        size = 0
        offset = 0
        for frame in self._frames():
            pending.append(frame)
            size += len(frame)
            self.decoded_samples += len(frame)
            while size >= limit:
                data = np.concatenate(pending)
                cut = quiet_cut(data, limit - search, limit, window)
                yield AudioChunk(offset / self.sample_rate, data[:cut])
                offset += cut
                pending = [data[cut:]]
                size = len(data) - cut
        if size:
            yield AudioChunk(offset / self.sample_rate, np.concatenate(pending))
