"""The chat backend: what a chat model offers the request side.

Chat Completions, Completions and Responses speak to a model only through this protocol:
a conversation (or a raw prompt) is prepared into a :class:`Prompt` the backend owns, and
generating from it yields :mod:`oasis.core.events`. How the prompt becomes text and
tokens, how tool calls and reasoning are read back, is the backend's business: a local
token engine does it with the model's chat template and our parsers
(:mod:`oasis.engines.local_chat`); a remote OpenAI-compatible server would do its own
templating and tool parsing behind the same calls.

Callers branch on the declared capabilities (``supports_*``), never on model names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from oasis.core.conversation import Conversation
from oasis.core.events import GenerationEvent
from oasis.core.options import GenerationOptions
from oasis.core.types import SamplingParams
from oasis.models.specs import ModelSpec


@dataclass(frozen=True)
class Prompt:
    """A prompt prepared by one backend. Backends subclass it to carry their own state
    (token ids, grammar); callers read only these fields."""

    text: str  # the prompt as text: what Completions echoes
    token_count: int  # what it costs: ``usage.prompt_tokens``
    room: int  # tokens the context has left after it: the most one generation may add


class EventStream(Protocol):
    """One generation's events. ``aclose()`` stops it (and its engine job) at once, even
    before its first event was read."""

    def __aiter__(self) -> AsyncIterator[GenerationEvent]: ...

    async def __anext__(self) -> GenerationEvent: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ChatBackend(Protocol):
    """A chat model, loaded: conversation + options in, generation events out."""

    spec: ModelSpec
    # Completions `echo` with `logprobs`: the prompt's own tokens scored (PromptScored).
    supports_prompt_logprobs: bool
    # Completions prompts given as token ids.
    supports_token_prompts: bool
    # Valid token ids are ``0..vocab_size - 1`` (for `logit_bias`); None when unknown.
    vocab_size: int | None
    # Messages may hold images (``Message.images``, loaded to bytes by the core before
    # ``prepare``); a backend without it is never given one.
    supports_images: bool

    async def prepare(
        self, conversation: Conversation, options: GenerationOptions, *, param: str
    ) -> Prompt:
        """Render and count ``conversation`` with ``options`` (already checked by
        :func:`~oasis.core.options.check_options`). Raises ``InvalidRequestError``
        naming ``param`` (code ``context_length_exceeded``) when it does not fit."""

    async def prepare_text(self, prompt: str | list[int], *, param: str) -> Prompt:
        """A raw prompt, no chat template: text, or token ids (``supports_token_prompts``).
        Raises ``InvalidRequestError`` naming ``param`` when it is invalid or too long."""

    def generate(
        self, runs: Sequence[tuple[Prompt, SamplingParams]], stop: Sequence[str] | None = None
    ) -> list[EventStream]:
        """Start every run now, together (one request's choices): each stream ends with
        one ``Finished``. Text never includes a ``stop`` sequence.

        The runs are admitted as one request: a busy backend raises ``OverloadedError``
        here, before anything is streamed, or queues them all.
        """

    async def close(self) -> None:
        """Release the model. Called once at shutdown."""
