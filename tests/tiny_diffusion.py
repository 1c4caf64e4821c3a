"""Build tiny, randomly initialised diffusers pipelines on disk, offline.

They have the layout of a real Stable Diffusion checkout (``model_index.json``, ``unet/``,
``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``), so the server loads them
through exactly the code path a real SD-Turbo directory takes. Their images are noise;
what the tests check is everything around the model (sizes, formats, masks, events).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The CLIP tokenizer is byte-level BPE: one vocabulary entry per byte symbol, plain and as
# a word end, and no merges, so every text tokenizes without a downloaded vocabulary.
_SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def _byte_symbols() -> list[str]:
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def _tokenizer(directory: Path) -> int:
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    vocab: dict[str, int] = {}
    for token in [*_SPECIALS, *symbols, *(s + "</w>" for s in symbols)]:
        vocab.setdefault(token, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    tokenizer.save_pretrained(str(directory))
    return len(vocab)


def _text_encoder(vocab_size: int) -> object:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=vocab_size,
        max_position_embeddings=77,
    )
    return CLIPTextModel(config).eval()


def _unet(in_channels: int, time_cond_proj_dim: int | None = None) -> object:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,  # 64 px with the 8x VAE below: the model's native size
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
        # LCM conditions on the guidance scale through this embedding.
        time_cond_proj_dim=time_cond_proj_dim,
    )


def _vae() -> object:
    from diffusers import AutoencoderKL

    # Four blocks downsample 8x, as SD's VAE does, so latents stay small at large sizes.
    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        mid_block_add_attention=False,
    )


def build_pipeline(
    directory: Path, *, inpainting: bool = False, lcm: bool = False, seed: int = 0
) -> Path:
    """Save a tiny text-to-image (or 9-channel inpainting) SD pipeline into ``directory``.

    ``lcm`` saves the same modules as a latent consistency model pipeline instead: a
    text-to-image pipeline that diffusers has no inpainting variant for.
    """
    import torch
    from diffusers import (
        EulerDiscreteScheduler,
        LatentConsistencyModelPipeline,
        LCMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
    )

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer_dir = directory / "tokenizer"
    vocab_size = _tokenizer(tokenizer_dir)
    from transformers import CLIPTokenizer

    cls: type[Any] = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
    scheduler: Any = EulerDiscreteScheduler(timestep_spacing="trailing", steps_offset=1)
    if lcm:
        cls, scheduler = LatentConsistencyModelPipeline, LCMScheduler()
    pipe = cls(
        vae=_vae(),
        text_encoder=_text_encoder(vocab_size),
        tokenizer=CLIPTokenizer.from_pretrained(str(tokenizer_dir)),
        unet=_unet(9 if inpainting else 4, 32 if lcm else None),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(directory), safe_serialization=True)
    (directory / "oasis-test.json").write_text(json.dumps({"inpainting": inpainting}))
    return directory


if __name__ == "__main__":  # python -m tests.tiny_diffusion TEXT2IMAGE [INPAINTING [LCM]]
    import sys

    build_pipeline(Path(sys.argv[1]))
    if len(sys.argv) > 2:
        build_pipeline(Path(sys.argv[2]), inpainting=True)
    if len(sys.argv) > 3:
        build_pipeline(Path(sys.argv[3]), lcm=True)


# Ids the session server gives the tiny pipelines (see ``image_model_configs``).
TEXT_TO_IMAGE = "tiny-sd"
INPAINTING = "tiny-sd-inpainting"
NO_INPAINTING = "tiny-lcm"  # text-to-image and img2img, but no inpainting variant
TEXT_TO_IMAGE_ALIAS = "gpt-image-1"
CONFIG_SEED = 1234


def image_model_configs(root: Path) -> list[dict[str, object]]:
    """Build both tiny pipelines under ``root`` and return their ``[[models]]`` entries.

    The build runs in a child process so that the test process never imports torch (and
    diffusers' import-time warnings cannot trip ``-W error``).
    """
    import subprocess
    import sys

    text_dir, inpaint_dir, lcm_dir = root / "tiny-sd", root / "tiny-sd-inpainting", root / "lcm"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.tiny_diffusion",
            str(text_dir),
            str(inpaint_dir),
            str(lcm_dir),
        ],
        check=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return [
        {
            "id": TEXT_TO_IMAGE,
            "kind": "images",
            "engine": "diffusers",
            "path": str(text_dir),
            "aliases": [TEXT_TO_IMAGE_ALIAS],
            # 4 steps leave room for 3 previews; the seed makes outputs reproducible.
            "options": {"steps": 4, "seed": CONFIG_SEED},
        },
        {
            "id": INPAINTING,
            "kind": "images",
            "engine": "diffusers",
            "path": str(inpaint_dir),
            "options": {"steps": 2, "max_pixels": 256 * 256},
        },
        {
            "id": NO_INPAINTING,
            "kind": "images",
            "engine": "diffusers",
            "path": str(lcm_dir),
            "options": {"steps": 1},
        },
    ]
