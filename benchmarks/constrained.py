"""Constrained vs unconstrained decoding speed on one model, side by side in one run.

Both sides run the oasis llama.cpp engine on the same prompt, threads and greedy
sampling; end-of-generation is banned so the free side always produces ``--tokens``
tokens, and the constrained side follows a JSON schema long enough (``minItems``) that it
cannot finish first. Repetitions alternate between the sides so machine noise hits both.
A second part times the two per-token grammar operations on their own: the cheap check
("may this sampled token come next?") and the full mask over the vocabulary.

    .venv/bin/python benchmarks/constrained.py --reps 5 --tokens 128

Prints decode tokens/s for each side and their ratio (target: the constraint costs at
most 20 %, i.e. ratio >= 0.8); writes benchmarks/results/constrained.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from oasis.config import Settings  # noqa: E402
from oasis.core.constraints import ConstraintState, response_format_grammar  # noqa: E402
from oasis.core.conversation import Conversation, Message  # noqa: E402
from oasis.core.templates import ChatTemplate  # noqa: E402
from oasis.core.types import SamplingParams  # noqa: E402
from oasis.engines.llamacpp import LlamaCppEngine  # noqa: E402
from oasis.models.assets import is_installed, resolve_source  # noqa: E402
from oasis.models.catalog import QWEN_CODER_05B, SMOLLM2  # noqa: E402

PROMPT = "List fictional people as JSON: each with a name, an age and a home city."
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "people": {
            "type": "array",
            "minItems": 60,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 24},
                    "age": {"type": "integer", "minimum": 0, "maximum": 120},
                    "city": {"type": "string", "maxLength": 24},
                },
                "required": ["name", "age", "city"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["people"],
    "additionalProperties": False,
}


async def decode_rate(
    engine: LlamaCppEngine, prompt: list[int], params: SamplingParams
) -> tuple[float, int, str]:
    """(decode tokens/s after the first token, tokens, text) for one generation."""
    first = last = 0.0
    count = 0
    pieces: list[bytes] = []
    async for token in engine.generate(prompt, params):
        if token.end_of_generation:
            break
        now = time.perf_counter()
        if count == 0:
            first = now
        last = now
        count += 1
        pieces.append(token.piece)
    rate = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    return rate, count, b"".join(pieces).decode("utf-8", "replace")


def grammar_op_costs(engine: LlamaCppEngine, text: str) -> dict[str, float]:
    """Median microseconds per token of the cheap check and of the full mask."""
    constraint = response_format_grammar(SCHEMA, strict=True, param="schema")
    tokens = engine.tokenize(text)
    n_vocab = engine.vocab_size()
    import ctypes

    logits = (ctypes.c_float * n_vocab)()
    state = ConstraintState(engine._guidance_tokenizer(), constraint, n_vocab)
    check: list[float] = []
    mask: list[float] = []
    for token in tokens:
        started = time.perf_counter()
        allowed = state.allows(token)
        check.append(time.perf_counter() - started)
        started = time.perf_counter()
        state.mask_logits(ctypes.addressof(logits))
        mask.append(time.perf_counter() - started)
        if not allowed or state.advance(token, engine.piece(token)):
            break
    return {
        "check_us": statistics.median(check) * 1e6,
        "mask_us": statistics.median(mask) * 1e6,
        "tokens_timed": len(check),
    }


async def bench(spec_name: str, reps: int, tokens: int, threads: int) -> dict[str, Any]:
    spec = {"smollm2": SMOLLM2, "qwen": QWEN_CODER_05B}[spec_name]
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), threads=threads)
        path = resolve_source(spec, settings.data_dir)
        engine = LlamaCppEngine(spec, path, settings)
        template = ChatTemplate(engine.chat_template, engine.bos_token, engine.eos_token)
        text = template.render(Conversation((Message("user", PROMPT),)))
        prompt = engine.tokenize(text)
        ban = {engine._llm.token_eos(): -100.0}
        free = SamplingParams(max_tokens=tokens, temperature=0.0, logit_bias=ban)
        constraint = response_format_grammar(SCHEMA, strict=True, param="schema")
        bound = SamplingParams(max_tokens=tokens, temperature=0.0, constraint=constraint)
        # Warm up both paths (KV cache, llguidance tokenizer).
        await decode_rate(engine, prompt, free)
        _, _, sample = await decode_rate(engine, prompt, bound)
        free_rates: list[float] = []
        bound_rates: list[float] = []
        bound_tokens = 0
        for _ in range(reps):
            rate, _, _ = await decode_rate(engine, prompt, free)
            free_rates.append(rate)
            rate, bound_tokens, sample = await decode_rate(engine, prompt, bound)
            bound_rates.append(rate)
        costs = grammar_op_costs(engine, sample)
        await engine.close()
    free_tps = statistics.median(free_rates)
    bound_tps = statistics.median(bound_rates)
    return {
        "model": spec.id,
        "unconstrained_tokens_per_s": round(free_tps, 1),
        "constrained_tokens_per_s": round(bound_tps, 1),
        "ratio": round(bound_tps / free_tps, 3),
        "constrained_tokens": bound_tokens,
        "unconstrained_runs": [round(r, 1) for r in free_rates],
        "constrained_runs": [round(r, 1) for r in bound_rates],
        "grammar_check_us_per_token": round(costs["check_us"], 1),
        "grammar_mask_us_per_token": round(costs["mask_us"], 1),
        "sample_output": sample[:160],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--models", default="smollm2,qwen")
    args = parser.parse_args()
    results = []
    for name in args.models.split(","):
        if name == "qwen" and not is_installed(QWEN_CODER_05B):
            print("qwen: not installed, skipped (oasis models install qwen2.5-coder-0.5b-instruct)")
            continue
        result = asyncio.run(bench(name, args.reps, args.tokens, args.threads))
        results.append(result)
        print(
            f"{result['model']}: unconstrained {result['unconstrained_tokens_per_s']} tok/s, "
            f"constrained {result['constrained_tokens_per_s']} tok/s, "
            f"ratio {result['ratio']} (target >= 0.8); grammar check "
            f"{result['grammar_check_us_per_token']} us/token, full mask "
            f"{result['grammar_mask_us_per_token']} us/token"
        )
    out = ROOT / "benchmarks" / "results" / "constrained.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "constrained",
        "cores": os.cpu_count(),
        "threads": args.threads,
        "reps": args.reps,
        "tokens": args.tokens,
        "results": results,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
