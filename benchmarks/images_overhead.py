"""Image generation through oasis vs the diffusers pipeline called directly, in one run.

No real image weights exist on PyPI, so both sides load the same randomly initialised
Stable-Diffusion-shaped pipeline (a scaled-down UNet and an 8x VAE, saved to a temp dir):
the work per picture is real UNet/VAE arithmetic, which is all that matters for overhead.
Both sides use the same steps, size, seed and torch thread count; repetitions alternate so
machine noise hits both alike.

    .venv/bin/python benchmarks/images_overhead.py --reps 5 --size 256 --steps 4 --threads 1

Prints seconds per picture for both sides and their ratio raw/oasis (target >= 0.95: the
HTTP layer, PNG encoding and base64 cost at most 5 %); writes
benchmarks/results/images_overhead.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tiny_diffusion import _text_encoder, _tokenizer  # noqa: E402

from harness import served, write_result  # noqa: E402


def build_small_pipeline(directory: Path) -> Path:
    """A random SD-shaped pipeline about 1/5 of SD's width (native size 256 px)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTokenizer

    torch.manual_seed(0)
    vocab_size = _tokenizer(directory / "tokenizer")
    unet = UNet2DConditionModel(
        block_out_channels=(64, 128, 256),
        layers_per_block=2,
        sample_size=32,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=32,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=_text_encoder(vocab_size),
        tokenizer=CLIPTokenizer.from_pretrained(str(directory / "tokenizer")),
        unet=unet,
        scheduler=EulerDiscreteScheduler(timestep_spacing="trailing", steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(directory))
    return directory


def raw_run(pipe: Any, size: int, steps: int, seed: int) -> float:
    import torch

    started = time.perf_counter()
    result = pipe(
        "a lighthouse in a storm",
        num_inference_steps=steps,
        width=size,
        height=size,
        generator=[torch.Generator().manual_seed(seed)],
        output_type="pil",
    )
    assert result.images[0].size == (size, size)
    return time.perf_counter() - started


def oasis_run(client: httpx.Client, size: int, seed: int) -> float:
    started = time.perf_counter()
    response = client.post(
        "/v1/images/generations",
        json={
            "model": "bench-sd",
            "prompt": "a lighthouse in a storm",
            "size": f"{size}x{size}",
            "seed": seed,
        },
    )
    response.raise_for_status()
    assert response.json()["data"][0]["b64_json"]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads on both sides (0: torch's default)"
    )
    args = parser.parse_args()

    import torch
    from diffusers import DiffusionPipeline

    env: dict[str, str] = {}
    if args.threads:
        torch.set_num_threads(args.threads)
        env["OMP_NUM_THREADS"] = str(args.threads)  # the server's torch reads it at import
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_small_pipeline(Path(tmp) / "bench-sd")
        pipe = DiffusionPipeline.from_pretrained(str(model_dir))
        pipe.set_progress_bar_config(disable=True)
        config = {
            "preload": ["bench-sd"],
            "models": [
                {
                    "id": "bench-sd",
                    "kind": "images",
                    "path": str(model_dir),
                    "options": {"steps": args.steps, "max_batch": 1},
                }
            ],
        }
        results: dict[str, list[float]] = {"raw": [], "oasis": []}
        with (
            served(Path(tmp) / "data", config, env=env, timeout=300) as server,
            httpx.Client(
                base_url=server.base_url, timeout=600, headers={"Authorization": "Bearer bench"}
            ) as client,
        ):
            raw_run(pipe, args.size, args.steps, 0)  # warm both sides once
            oasis_run(client, args.size, 0)
            for rep in range(args.reps):
                results["raw"].append(raw_run(pipe, args.size, args.steps, rep))
                results["oasis"].append(oasis_run(client, args.size, rep))
                print(
                    f"rep {rep + 1}: raw {results['raw'][-1]:.3f} s, "
                    f"oasis {results['oasis'][-1]:.3f} s",
                    flush=True,
                )

    raw = statistics.median(results["raw"])
    oasis = statistics.median(results["oasis"])
    summary = {
        "torch_threads": threads,
        "size": f"{args.size}x{args.size}",
        "steps": args.steps,
        "reps": args.reps,
        "raw_s_per_image": round(raw, 4),
        "oasis_s_per_image": round(oasis, 4),
        "ratio_raw_over_oasis": round(raw / oasis, 3),
        "overhead_ms": round((oasis - raw) * 1000, 1),
        "all_s": {side: [round(v, 4) for v in values] for side, values in results.items()},
        "targets": {"ratio_raw_over_oasis": ">= 0.95"},
    }
    write_result("images_overhead", summary)


if __name__ == "__main__":
    main()
