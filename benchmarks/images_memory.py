"""What real image models need: weights by architecture, and a measured SD-Turbo run.

No image weights can be installed here, so this builds the published architectures of
SD-Turbo (SD 2.1) and SDXL-Turbo from their configs with random weights:

* ``--count``: parameters per sub-model, counted on the ``meta`` device (no memory), and
  the bytes of their weights in fp16 and fp32;
* ``--run``: an SD-Turbo-shaped pipeline in fp32 on this CPU, one 512x512 picture at 1 step
  (as SD-Turbo is used): seconds and peak resident memory of the process.

    .venv/bin/python benchmarks/images_memory.py --count --run

Writes benchmarks/results/images_memory.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import write_result  # noqa: E402

SD_TURBO_UNET: dict[str, Any] = {
    "block_out_channels": (320, 640, 1280, 1280),
    "attention_head_dim": (5, 10, 20, 20),
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "sample_size": 64,
    "layers_per_block": 2,
}
SDXL_TURBO_UNET: dict[str, Any] = {
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 64,
    "layers_per_block": 2,
}
VAE: dict[str, Any] = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
}
OPENCLIP_H_TEXT: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "projection_dim": 1024,
    "hidden_act": "gelu",
}
CLIP_L_TEXT: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "projection_dim": 768,
}
OPENCLIP_BIGG_TEXT: dict[str, Any] = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "projection_dim": 1280,
    "hidden_act": "gelu",
}


def _modules(arch: str) -> dict[str, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def text(cfg: dict[str, Any], projection: bool = False) -> Any:
        config = CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, **cfg)
        return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)

    if arch == "sd-turbo":
        return {
            "unet": UNet2DConditionModel(**SD_TURBO_UNET),
            "vae": AutoencoderKL(**VAE),
            "text_encoder": text(OPENCLIP_H_TEXT),
        }
    return {
        "unet": UNet2DConditionModel(**SDXL_TURBO_UNET),
        "vae": AutoencoderKL(**VAE, force_upcast=True),
        "text_encoder": text(CLIP_L_TEXT),
        "text_encoder_2": text(OPENCLIP_BIGG_TEXT, projection=True),
    }


def count(arch: str) -> dict[str, Any]:
    import torch

    with torch.device("meta"):
        modules = _modules(arch)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}
    total = sum(params.values())
    return {
        "parameters": params,
        "total_parameters": total,
        "weights_gib_fp16": round(total * 2 / 2**30, 2),
        "weights_gib_fp32": round(total * 4 / 2**30, 2),
    }


def run_sd_turbo() -> dict[str, Any]:
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
    from tests.tiny_diffusion import _tokenizer

    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "oasis-images-memory-tokenizer"
    _tokenizer(tmp)
    from transformers import CLIPTokenizer

    torch.manual_seed(0)
    started = time.perf_counter()
    pipe = StableDiffusionPipeline(
        **_modules("sd-turbo"),
        tokenizer=CLIPTokenizer.from_pretrained(str(tmp)),
        scheduler=EulerDiscreteScheduler(timestep_spacing="trailing", steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    built = time.perf_counter() - started
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        with torch.inference_mode():
            pipe("a cat", num_inference_steps=1, guidance_scale=0.0, width=512, height=512)
        timings.append(round(time.perf_counter() - started, 2))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "dtype": "float32",
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "build_s": round(built, 1),
        "seconds_512px_1_step": timings,
        "peak_rss_gib": round(peak_kib / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", action="store_true")
    parser.add_argument("--run", action="store_true")
    args = parser.parse_args()
    summary: dict[str, Any] = {}
    if args.count:
        summary["architectures"] = {arch: count(arch) for arch in ("sd-turbo", "sdxl-turbo")}
    if args.run:
        summary["sd_turbo_cpu_run"] = run_sd_turbo()
    write_result("images_memory", summary)


if __name__ == "__main__":
    main()
