"""A tiny multimodal projector with random weights, written as llama.cpp's ``mmproj`` GGUF.

No vision weights can be installed where oasis is tested, so the vision tests pair the
packaged SmolLM2-135M (real weights) with this projector: a one-block ViT and gemma3's
projector (average-pool the patches, RMS-norm, one matrix into the text model's
embeddings). ``clip.cpp`` picks the graph by ``clip.projector_type``; gemma3's is the
smallest that projects a plain ViT into any text model (mtmd only checks that
``projection_dim`` matches the text model's embedding size).

A picture is resized to ``IMAGE_SIZE`` square, cut into ``PATCH`` square patches and pooled
by ``MERGE``: it takes :data:`IMAGE_TOKENS` positions. The weights are random but seeded,
so the model's answer is garbage yet deterministic and depends on the picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SIZE = 64
PATCH = 8
MERGE = 2
IMAGE_TOKENS = (IMAGE_SIZE // PATCH // MERGE) ** 2  # 16 positions per image
_EMBED = 32  # the vision tower's width
_FFN = 64
_HEADS = 2


def write_mmproj(path: Path, text_embedding: int, *, seed: int = 0) -> Path:
    """Write the projector for a text model whose embeddings have ``text_embedding``
    dimensions; returns ``path``."""
    import gguf

    rng = np.random.default_rng(seed)

    def random(*shape: int, scale: float) -> np.ndarray[tuple[int, ...], np.dtype[np.float32]]:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ones(n: int) -> np.ndarray[tuple[int, ...], np.dtype[np.float32]]:
        return np.ones(n, np.float32)

    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("clip.projector_type", "gemma3")
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", False)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH)
    writer.add_uint32("clip.vision.embedding_length", _EMBED)
    writer.add_uint32("clip.vision.feed_forward_length", _FFN)
    writer.add_uint32("clip.vision.projection_dim", text_embedding)
    writer.add_uint32("clip.vision.block_count", 1)
    writer.add_uint32("clip.vision.attention.head_count", _HEADS)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.projector.scale_factor", MERGE)
    # GGUF shapes are numpy's (outermost first); llama.cpp reads them reversed.
    writer.add_tensor("v.patch_embd.weight", random(_EMBED, 3, PATCH, PATCH, scale=0.2))
    writer.add_tensor("v.patch_embd.bias", random(_EMBED, scale=0.2))
    writer.add_tensor(
        "v.position_embd.weight", random((IMAGE_SIZE // PATCH) ** 2, _EMBED, scale=0.2)
    )
    for norm in ("ln1", "ln2"):
        writer.add_tensor(f"v.blk.0.{norm}.weight", ones(_EMBED))
        writer.add_tensor(f"v.blk.0.{norm}.bias", np.zeros(_EMBED, np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
        writer.add_tensor(f"v.blk.0.{name}.weight", random(_EMBED, _EMBED, scale=0.2))
        writer.add_tensor(f"v.blk.0.{name}.bias", random(_EMBED, scale=0.2))
    writer.add_tensor("v.blk.0.ffn_up.weight", random(_FFN, _EMBED, scale=0.2))
    writer.add_tensor("v.blk.0.ffn_up.bias", random(_FFN, scale=0.2))
    writer.add_tensor("v.blk.0.ffn_down.weight", random(_EMBED, _FFN, scale=0.2))
    writer.add_tensor("v.blk.0.ffn_down.bias", random(_EMBED, scale=0.2))
    writer.add_tensor("v.post_ln.weight", ones(_EMBED))
    writer.add_tensor("v.post_ln.bias", np.zeros(_EMBED, np.float32))
    # Pooled, normalised patches (unit RMS) into the text model's embedding space, at
    # about the scale of its token embeddings, so the image steers the answer.
    writer.add_tensor("mm.input_projection.weight", random(_EMBED, text_embedding, scale=0.05))
    writer.add_tensor("mm.soft_emb_norm.weight", ones(_EMBED))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
