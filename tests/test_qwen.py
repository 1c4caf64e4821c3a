"""The larger optional model, Qwen2.5-Coder 0.5B Instruct: install, serve, native tools.

Skipped as a whole unless its packages are installed
(``oasis models install qwen2.5-coder-0.5b-instruct``). Its chat template renders tools
natively (``<tool_call>`` JSON), which the generation core uses instead of the generic
tool prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openai import OpenAI

from oasis.core.templates import ChatTemplate
from oasis.core.tool_calls import template_speaks_calls
from oasis.models.assets import is_installed
from oasis.models.catalog import QWEN_CODER_05B
from oasis.models.specs import PackagedAsset

pytestmark = pytest.mark.skipif(
    not is_installed(QWEN_CODER_05B),
    reason="optional model; install with `oasis models install qwen2.5-coder-0.5b-instruct`",
)

QWEN = QWEN_CODER_05B.id
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def _oasis(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "oasis.cli", *args]
    env = {**os.environ, "COLUMNS": "200"}  # rich would cut the table's ids otherwise
    return subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, env=env
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``oasis models install`` into a fresh data dir: (data dir, the command's output)."""
    data_dir = tmp_path_factory.mktemp("qwen-data")
    done = _oasis("models", "install", QWEN, "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stdout
    return data_dir, done.stdout


def test_install_assembles_and_checks_the_file(installed: tuple[Path, str]) -> None:
    data_dir, output = installed
    assert "is ready" in output
    source = QWEN_CODER_05B.source
    assert isinstance(source, PackagedAsset)
    files = list(data_dir.rglob(source.filename))
    assert len(files) == 1
    assert files[0].stat().st_size == 491_400_064
    digest = hashlib.sha256()
    with files[0].open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    assert digest.hexdigest() == source.sha256
    listed = _oasis("models", "list", "--data-dir", str(data_dir))
    assert listed.returncode == 0
    assert QWEN in listed.stdout


def test_template_speaks_native_tool_calls(installed: tuple[Path, str]) -> None:
    import llama_cpp

    source = QWEN_CODER_05B.source
    assert isinstance(source, PackagedAsset)
    path = next(installed[0].rglob(source.filename))
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, verbose=False, vocab_only=True)
    template = llm.metadata["tokenizer.chat_template"]
    llm.close()
    assert template_speaks_calls(template)
    assert ChatTemplate(template, "", "<|im_end|>").supports_tools


def test_serves_plain_chat(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=QWEN, messages=[{"role": "user", "content": "Say hi."}], max_tokens=20, seed=3
    )
    assert completion.model == QWEN
    assert completion.choices[0].message.content


def _valid_call(call: Any) -> dict[str, Any]:
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])
    return arguments


def test_forced_call(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=QWEN,
        messages=[{"role": "user", "content": "Weather in Lisbon, please."}],
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=80,
        # Greedy: a sampled city may be empty or ramble past the budget (finish "length").
        temperature=0,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls and len(choice.message.tool_calls) == 1
    assert _valid_call(choice.message.tool_calls[0])["city"]


def test_auto_call_then_answer_from_the_result(client: OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.chat.completions.create(
        model=QWEN, messages=messages, tools=[WEATHER], temperature=0, max_tokens=80
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls
    assert "tool_call" not in (choice.message.content or "")
    call = choice.message.tool_calls[0]
    assert _valid_call(call)["city"] == "Paris"
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 degrees, sunny"})
    second = client.chat.completions.create(
        model=QWEN,
        messages=messages,
        tools=[WEATHER],
        tool_choice="none",
        temperature=0,
        max_tokens=60,
    )
    answer = second.choices[0].message.content or ""
    assert "18" in answer


def test_streamed_auto_call_through_the_sdk_helper(client: OpenAI) -> None:
    tools: Any = [WEATHER]
    with client.chat.completions.stream(
        model=QWEN,
        messages=[{"role": "user", "content": "What's the weather in Tokyo?"}],
        tools=tools,
        temperature=0,
        max_tokens=80,
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls
    arguments = _valid_call(message.tool_calls[0])
    assert message.tool_calls[0].function.parsed_arguments == arguments
