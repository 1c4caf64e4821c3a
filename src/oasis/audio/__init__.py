"""Audio codecs through PyAV (the ffmpeg inside its wheel; no system ffmpeg needed).

``decode`` turns an uploaded file of any common container into mono float32 chunks at the
rate a model wants; ``encode`` turns float32 audio into mp3, opus, aac, flac, wav or pcm
bytes incrementally, so speech can stream while it is synthesised.
"""

from oasis.audio.decode import AudioChunk, AudioReader, InvalidAudioError
from oasis.audio.encode import OUTPUT_FORMATS, AudioEncoder, TempoStretcher

__all__ = [
    "OUTPUT_FORMATS",
    "AudioChunk",
    "AudioEncoder",
    "AudioReader",
    "InvalidAudioError",
    "TempoStretcher",
]
