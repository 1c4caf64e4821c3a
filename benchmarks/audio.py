"""Audio through oasis against the libraries called directly, side by side in one run.

1. Transcription real-time factor (wall seconds per audio second) through oasis
   (``POST /v1/audio/transcriptions`` with the SDK) ÷ faster-whisper called directly on
   the same file with the same settings (int8, greedy, temperature fallback, all cores).
   Target: ≤ 1.05.
2. Speech: time to the first audio byte when streaming, and time to the whole file, for
   the same text; with hibari's own time to its first sentence and to the whole text.

    .venv/bin/python benchmarks/audio.py [--seconds 60] [--runs 3]

Results go to ``benchmarks/results/audio.json`` with the machine's core count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from openai import OpenAI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.audio_helpers import encode  # noqa: E402

from harness import served, write_result  # noqa: E402
from oasis.models.assets import resolve_source  # noqa: E402
from oasis.models.catalog import WHISPER_BASE  # noqa: E402

# Varied sentences: a passage that repeats within one 30-second window would make Whisper
# fall back to sampling (its compression-ratio check), and random sampling makes the two
# sides do different work.
PARAGRAPH = (
    "The committee met on a cold morning to review the plans for the new library. "
    "Several members wanted a larger reading room, while others argued for more study spaces. "
    "After a long discussion, they agreed to ask the architect for two different designs. "
    "The budget would be reviewed again in the spring, once the first estimates arrived. "
    "Meanwhile, the old building would stay open, with shorter hours on the weekend. "
    "A local bakery offered to supply bread for the opening ceremony at no charge. "
    "Children from the primary school painted a mural for the entrance hall. "
    "The mayor said she was proud of how many volunteers had come forward to help. "
    "Some residents worried about parking, since the street is already busy at noon. "
    "The council promised a traffic study before any final decision is made. "
    "In other news, the river rose nearly a metre after three days of heavy rain. "
    "Farmers to the north reported flooded fields and damaged fences. "
    "Emergency crews worked through the night to clear fallen trees from the main road. "
    "By Sunday afternoon the sky had cleared, and the water began to recede. "
    "Forecasters expect a dry and sunny week, with cooler nights toward the weekend. "
    "At the harbour, a small fishing boat returned with its largest catch of the season. "
    "The captain credited calm seas and an early start before sunrise. "
    "Tourists gathered on the pier to watch the crew unload crates of fresh cod. "
)
SPEECH_TEXT = (
    "Welcome to the afternoon news. Heavy rain is expected across the region tonight. "
    "Drivers should take care on the roads and allow extra time for their journeys. "
    "In sports, the home team won its third match in a row. "
    "And finally, the city zoo welcomed two new penguins this week."
)


def make_speech_file(seconds: float, workdir: Path) -> tuple[Path, float]:
    """About ``seconds`` of hibari speech, as an mp3 file (a typical upload)."""
    from hibari import Hibari

    tts = Hibari()
    parts: list[np.ndarray] = []
    total = 0.0
    while total < seconds:
        for chunk in tts.stream(PARAGRAPH, seed=0):
            parts.append(chunk)
            total += len(chunk) / tts.sample_rate
    audio = np.concatenate(parts)
    path = workdir / "speech.mp3"
    path.write_bytes(encode(audio, tts.sample_rate, "mp3"))
    return path, len(audio) / tts.sample_rate


def bench_transcription(
    client: OpenAI, path: Path, audio_seconds: float, model_dir: Path, threads: int, runs: int
) -> dict[str, object]:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)

    def direct() -> str:
        segments, _ = model.transcribe(
            str(path),
            beam_size=1,
            best_of=1,
            condition_on_previous_text=True,
            vad_filter=False,
        )
        return "".join(s.text for s in segments)

    def through_oasis() -> str:
        with path.open("rb") as fh:
            return client.audio.transcriptions.create(model="whisper-1", file=fh).text

    direct()  # warm both sides (model load, caches)
    through_oasis()
    direct_times: list[float] = []
    oasis_times: list[float] = []
    texts: dict[str, str] = {}
    for _ in range(runs):  # interleaved, so drift in machine load hits both sides alike
        start = time.perf_counter()
        texts["direct"] = direct()
        direct_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        texts["oasis"] = through_oasis()
        oasis_times.append(time.perf_counter() - start)
    rtf_direct = statistics.median(direct_times) / audio_seconds
    rtf_oasis = statistics.median(oasis_times) / audio_seconds
    return {
        "audio_seconds": round(audio_seconds, 2),
        "runs": runs,
        "direct_seconds": [round(t, 3) for t in direct_times],
        "oasis_seconds": [round(t, 3) for t in oasis_times],
        "rtf_direct": round(rtf_direct, 4),
        "rtf_oasis": round(rtf_oasis, 4),
        "rtf_ratio_oasis_over_direct": round(rtf_oasis / rtf_direct, 4),
        # Fastest run of each side: the least disturbed by other work on a shared machine.
        "rtf_ratio_fastest_runs": round(min(oasis_times) / min(direct_times), 4),
        "target_ratio": 1.05,
        "same_text": texts["direct"].strip() == texts["oasis"].strip(),
    }


def bench_speech(base_url: str, runs: int) -> dict[str, object]:
    from hibari import Hibari

    tts = Hibari()
    tts("Warm up.")
    first_direct: list[float] = []
    whole_direct: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        stream = tts.stream(SPEECH_TEXT)
        next(stream)
        first_direct.append(time.perf_counter() - start)
        for _ in stream:
            pass
        whole_direct.append(time.perf_counter() - start)

    results: dict[str, object] = {
        "hibari_direct_first_sentence_s": round(statistics.median(first_direct), 4),
        "hibari_direct_whole_s": round(statistics.median(whole_direct), 4),
    }
    with httpx.Client(
        base_url=base_url, headers={"Authorization": "Bearer sk"}, timeout=120
    ) as http:
        for fmt in ("pcm", "mp3"):
            body = {
                "model": "tts-1",
                "voice": "alloy",
                "input": SPEECH_TEXT,
                "response_format": fmt,
            }
            http.post("/v1/audio/speech", json=body).raise_for_status()  # warm
            firsts: list[float] = []
            wholes: list[float] = []
            size = 0
            for _ in range(runs):
                start = time.perf_counter()
                first = None
                size = 0
                with http.stream("POST", "/v1/audio/speech", json=body) as response:
                    for piece in response.iter_raw():
                        if first is None and piece:
                            first = time.perf_counter() - start
                        size += len(piece)
                wholes.append(time.perf_counter() - start)
                firsts.append(first or wholes[-1])
            results[fmt] = {
                "time_to_first_byte_s": round(statistics.median(firsts), 4),
                "time_to_whole_file_s": round(statistics.median(wholes), 4),
                "bytes": size,
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the test audio")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="oasis-bench-audio-") as tmp:
        workdir = Path(tmp)
        data_dir = workdir / "data"
        model_dir = resolve_source(WHISPER_BASE, data_dir)
        path, audio_seconds = make_speech_file(args.seconds, workdir)
        config = {"preload": ["whisper-base", "hibari"], "threads": args.threads}
        with served(data_dir, config) as server:
            with OpenAI(base_url=server.api_url, api_key="sk", max_retries=0, timeout=600) as sdk:
                transcription = bench_transcription(
                    sdk, path, audio_seconds, model_dir, args.threads, args.runs
                )
            speech = bench_speech(server.base_url, args.runs)

    result = {
        "threads": args.threads,
        "transcription": transcription,
        "speech": speech,
    }
    write_result("audio", result)


if __name__ == "__main__":
    main()
