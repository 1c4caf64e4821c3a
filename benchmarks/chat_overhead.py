"""Chat streaming through oasis vs raw llama-cpp-python, side by side in one run.

Both sides use the same GGUF file, prompt text, thread count, greedy sampling and token
count (end-of-generation tokens are banned on both sides so every run produces exactly
``--tokens`` tokens). Repetitions alternate between the two sides so that machine noise
hits both alike.

    .venv/bin/python benchmarks/chat_overhead.py --reps 5 --tokens 128

Prints decode tokens/s for both sides, their ratio (target >= 0.95) and the median
time-to-first-token overhead (target <= 15 ms); writes benchmarks/results/chat_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server import start_server  # noqa: E402

from oasis.core.conversation import Conversation, Message  # noqa: E402
from oasis.core.templates import ChatTemplate  # noqa: E402
from oasis.models.assets import resolve_source  # noqa: E402
from oasis.models.catalog import SMOLLM2  # noqa: E402

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."


def measure_stream(chunks: object, started: float) -> tuple[float, float, int]:
    """(time to first token, decode tokens/s after the first, tokens) for a token stream."""
    first = last = 0.0
    count = 0
    for _ in chunks:  # type: ignore[attr-defined]
        now = time.perf_counter()
        if count == 0:
            first = now
        last = now
        count += 1
    decode = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    return first - started, decode, count


def raw_run(
    llm: object, prompt: str, tokens: int, ban: dict[int, float]
) -> tuple[float, float, int]:
    started = time.perf_counter()
    stream = llm.create_completion(  # type: ignore[attr-defined]
        prompt,
        max_tokens=tokens,
        temperature=0.0,
        stream=True,
        logit_bias=ban,
        repeat_penalty=1.0,
        top_k=0,
        min_p=0.0,
        top_p=1.0,
    )
    texts = (chunk for chunk in stream if chunk["choices"][0]["text"])
    return measure_stream(texts, started)


def oasis_run(client: httpx.Client, tokens: int, ban: dict[int, float]) -> tuple[float, float, int]:
    body = {
        "model": SMOLLM2.id,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "logit_bias": {str(k): v for k, v in ban.items()},
    }
    started = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        events = (
            line
            for line in response.iter_lines()
            if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line
        )
        return measure_stream(events, started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    import llama_cpp

    with tempfile.TemporaryDirectory() as tmp:
        model_path = resolve_source(SMOLLM2, Path(tmp))
        llm = llama_cpp.Llama(
            model_path=str(model_path),
            n_ctx=8192,
            n_threads=args.threads,
            n_batch=512,
            verbose=False,
        )
        vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        ban = {t: -100.0 for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}
        template = ChatTemplate(
            llm.metadata.get("tokenizer.chat_template"),
            llm._model.token_get_text(llm.token_bos()),
            llm._model.token_get_text(llm.token_eos()),
        )
        prompt = template.render(Conversation((Message("user", PROMPT),)))

        server = start_server(
            Path(tmp) / "data",
            config={"preload": [SMOLLM2.id], "threads": args.threads},
        )
        results: dict[str, list[tuple[float, float, int]]] = {"raw": [], "oasis": []}
        try:
            with httpx.Client(
                base_url=server.base_url, timeout=600, headers={"Authorization": "Bearer bench"}
            ) as client:
                raw_run(llm, prompt, 8, ban)  # warm both sides once
                oasis_run(client, 8, ban)
                for rep in range(args.reps):
                    results["raw"].append(raw_run(llm, prompt, args.tokens, ban))
                    results["oasis"].append(oasis_run(client, args.tokens, ban))
                    print(
                        f"rep {rep + 1}: raw {results['raw'][-1][1]:.1f} tok/s, "
                        f"oasis {results['oasis'][-1][1]:.1f} tok/s",
                        flush=True,
                    )
        finally:
            server.stop()

    raw_tps = statistics.median(r[1] for r in results["raw"])
    oasis_tps = statistics.median(r[1] for r in results["oasis"])
    raw_ttft = statistics.median(r[0] for r in results["raw"])
    oasis_ttft = statistics.median(r[0] for r in results["oasis"])
    counts = {side: {r[2] for r in runs} for side, runs in results.items()}
    summary = {
        "benchmark": "chat_overhead",
        "cores": os.cpu_count(),
        "threads": args.threads,
        "tokens": args.tokens,
        "reps": args.reps,
        "tokens_seen": {k: sorted(v) for k, v in counts.items()},
        "raw_decode_tok_s": round(raw_tps, 2),
        "oasis_decode_tok_s": round(oasis_tps, 2),
        "decode_ratio": round(oasis_tps / raw_tps, 3),
        "raw_ttft_ms": round(raw_ttft * 1000, 2),
        "oasis_ttft_ms": round(oasis_ttft * 1000, 2),
        "ttft_overhead_ms": round((oasis_ttft - raw_ttft) * 1000, 2),
        "targets": {"decode_ratio": ">= 0.95", "ttft_overhead_ms": "<= 15"},
    }
    out = ROOT / "benchmarks" / "results" / "chat_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
