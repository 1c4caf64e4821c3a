"""A scripted chat engine for protocol tests that need exact model output: loaded by a test
server through the ``tool_plugins`` setting (a module imported at start-up), it registers
the ``scripted`` engine as a third-party engine would.

Its one rule: when the ``python`` function (the code_interpreter tool) is offered and the
last message is the user's, it calls ``python`` with the user's text as the code; after a
tool result it answers ``Result: <the result>``; otherwise it answers ``ok`` followed by
the results of earlier calls it was shown (stored items replayed on a later turn). So a test
sends the exact code it wants the sandbox to run, through the real server and SDK.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from oasis.config import Settings
from oasis.core.backend import Prompt
from oasis.core.conversation import Conversation, ToolCall
from oasis.core.events import (
    Finished,
    GenerationEvent,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallDone,
    ToolCallStarted,
)
from oasis.core.options import GenerationOptions
from oasis.core.types import SamplingParams
from oasis.engines.registry import register_engine
from oasis.ids import new_id
from oasis.models.specs import ModelSpec


@dataclass(frozen=True)
class ScriptedPrompt(Prompt):
    call: ToolCall | None = None
    answer: str = ""


class ScriptedBackend:
    supports_prompt_logprobs = False
    supports_token_prompts = False
    supports_images = False
    vocab_size = None

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    async def prepare(
        self, conversation: Conversation, options: GenerationOptions, *, param: str
    ) -> Prompt:
        last = conversation.messages[-1]
        text = "\n".join(m.content for m in conversation.messages)
        offered = {t.name for t in options.tools} if options.tool_choice != "none" else set()
        if last.role == "user" and "python" in offered:
            arguments = json.dumps({"code": last.content})
            call = ToolCall(new_id("call"), "python", arguments)
            return ScriptedPrompt(text, len(text.split()), 100_000, call=call)
        seen = [m.content for m in conversation.messages if m.role == "tool"]
        if last.role == "tool":
            answer = f"Result: {last.content}"
        else:  # what it read of earlier calls (replayed from stored items)
            answer = "ok" + (f"; earlier results: {' / '.join(seen)}" if seen else "")
        return ScriptedPrompt(text, len(text.split()), 100_000, answer=answer)

    async def prepare_text(self, prompt: str | list[int], *, param: str) -> Prompt:
        return ScriptedPrompt(str(prompt), 1, 100_000, answer="ok")

    def generate(
        self, runs: Sequence[tuple[Prompt, SamplingParams]], stop: Sequence[str] | None = None
    ) -> list[Any]:
        return [self._one(prompt) for prompt, _ in runs]

    async def _one(self, prompt: Prompt) -> AsyncIterator[GenerationEvent]:
        assert isinstance(prompt, ScriptedPrompt)
        if prompt.call is not None:
            yield ToolCallStarted(0, prompt.call.id, prompt.call.name)
            yield ToolCallArgumentsDelta(0, prompt.call.arguments)
            yield ToolCallDone(0, prompt.call)
            yield Finished("tool_calls", "", prompt.token_count, 5, (prompt.call,))
            return
        yield TextDelta(prompt.answer)
        yield Finished("stop", prompt.answer, prompt.token_count, len(prompt.answer.split()))

    async def close(self) -> None:
        return None


def create_engine(spec: ModelSpec, settings: Settings) -> ScriptedBackend:
    return ScriptedBackend(spec)


register_engine("scripted", create_engine)
