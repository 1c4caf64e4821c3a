"""Reasoning models: <think> … </think> becomes reasoning, never answer text.

No packaged model thinks, so the end-to-end tests serve SmolLM2 under a chat template
that opens a thinking block in the prompt (as DeepSeek-R1's does): everything the model
writes is then its thinking, and Responses must stream and store it as a reasoning item.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai import OpenAI

from oasis.core.reasoning import ReasoningSplitter
from oasis.models.assets import resolve_source
from oasis.models.catalog import SMOLLM2
from tests.server import Server, start_server

THINKING_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
)


# Greedy SmolLM2 thinks about this for far more than 12 tokens. (To "Is 7 prime?" it answers
# in 7 tokens and stops, so a sampled run often ended before the 12-token budget.)
LONG_THOUGHT = "Is 7 prime? Think it through step by step."


def _split(chunks: list[str], inside: bool = False) -> tuple[list[tuple[bool, str]], str, str]:
    splitter = ReasoningSplitter(inside=inside)
    pieces = [p for chunk in chunks for p in splitter.feed(chunk)] + splitter.flush()
    return pieces, splitter.reasoning, splitter.answer


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100])
def test_splitter_any_chunking(size: int) -> None:
    text = "<think>Let me think: 2+2.</think>\n\nThe answer is 4."
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    _, thought, answer = _split(chunks)
    assert thought == "Let me think: 2+2."
    assert answer == "The answer is 4."


def test_splitter_leaves_answers_without_thinking_alone() -> None:
    _, thought, answer = _split(["Plain answer ", "with <think> inside."])
    assert thought == ""
    assert answer == "Plain answer with <think> inside."


def test_splitter_block_opened_by_the_prompt() -> None:
    _, thought, answer = _split(["I reason", " here</thi", "nk>Done."], inside=True)
    assert (thought, answer) == ("I reason here", "Done.")


def test_splitter_unclosed_thinking_is_all_reasoning() -> None:
    _, thought, answer = _split(["still thinking </th"], inside=True)
    assert (thought, answer) == ("still thinking </th", "")


@pytest.fixture(scope="module")
def thinking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("oasis-thinking")
    gguf = resolve_source(SMOLLM2, data)
    model = {
        "id": "smollm2-thinking",
        "kind": "chat",
        "path": str(gguf),
        "options": {"chat_template": THINKING_TEMPLATE},
    }
    srv = start_server(data / "srv", config={"preload": [], "models": [model]})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def thinking_client(thinking_server: Server) -> Iterator[OpenAI]:
    with OpenAI(
        base_url=thinking_server.api_url,
        api_key="sk-think",
        _strict_response_validation=True,
        max_retries=0,
    ) as sdk:
        yield sdk


def test_responses_reasoning_item_end_to_end(thinking_client: OpenAI) -> None:
    with thinking_client.responses.stream(
        model="smollm2-thinking", input=LONG_THOUGHT, max_output_tokens=12, temperature=0
    ) as stream:
        events = list(stream)
    types = [event.type for event in events]
    # Greedy, the thinking never ends within 12 tokens: the stream ends with response.incomplete
    # (for which the SDK's get_final_response() has no result, as with OpenAI).
    assert types[-1] == "response.incomplete"
    final = events[-1].response  # type: ignore[union-attr]
    assert final.status == "incomplete"
    reasoning = [item for item in final.output if item.type == "reasoning"]
    assert len(reasoning) == 1
    text = "".join(part.text for part in reasoning[0].content or [])
    assert text.strip()
    assert final.output_text == ""  # the thinking never leaks into the answer
    assert "response.reasoning_text.delta" in types
    assert final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens > 0
    stored = thinking_client.responses.retrieve(final.id)
    assert [item.type for item in stored.output] == ["reasoning"]


def test_chat_gives_reasoning_beside_content(thinking_client: OpenAI) -> None:
    """Chat keeps the thinking out of ``content`` and returns it as ``reasoning_content``."""
    ask = {
        "model": "smollm2-thinking",
        "messages": [{"role": "user", "content": LONG_THOUGHT}],
        "max_tokens": 12,
        "temperature": 0,  # as above: greedy neither ends nor closes the block in 12 tokens
    }
    completion = thinking_client.chat.completions.create(**ask)  # type: ignore[call-overload]
    message = completion.choices[0].message
    assert message.content == ""
    thought = (message.model_extra or {}).get("reasoning_content")
    assert isinstance(thought, str) and thought.strip()
    assert completion.usage is not None and completion.usage.completion_tokens == 12
    details = completion.usage.completion_tokens_details
    assert details is not None and 0 < (details.reasoning_tokens or 0) <= 12

    chunks = list(
        thinking_client.chat.completions.create(
            **ask, stream=True, stream_options={"include_usage": True}
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    streamed = "".join((d.model_extra or {}).get("reasoning_content", "") for d in deltas)
    assert streamed == thought
    assert "".join(d.content or "" for d in deltas) == ""
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens_details == details


def test_chat_without_thinking_has_no_reasoning_field(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert "reasoning_content" not in (completion.choices[0].message.model_extra or {})
