"""The generation core: a model name and a conversation in, generation events out.

Chat Completions, Completions and Responses all call :class:`GenerationCore`. It resolves
the model to its :class:`~oasis.core.backend.ChatBackend`, applies the checks every
backend shares, and delegates: how a prompt is rendered, decoded and parsed is the
backend's business (:mod:`oasis.engines.local_chat` for llama.cpp).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from oasis import __version__
from oasis.caller import token_ceiling
from oasis.core.backend import ChatBackend, EventStream, Prompt
from oasis.core.conversation import Conversation, Message
from oasis.core.options import GenerationOptions, check_options
from oasis.core.types import SamplingParams
from oasis.errors import InvalidRequestError, UnsupportedError
from oasis.models.registry import ResolvedModel
from oasis.services.image_input import ImageInputs
from oasis.services.models import ModelManager
from oasis.services.openai_tokens import decode_tokens, openai_encoding


@dataclass(frozen=True)
class PreparedPrompt:
    """A prompt made ready by ``backend`` for the model the client named."""

    model: ResolvedModel
    backend: ChatBackend
    prompt: Prompt

    @property
    def text(self) -> str:
        return self.prompt.text

    @property
    def fingerprint(self) -> str:
        """``system_fingerprint``: changes when what decides the output may have changed.

        That is the oasis version and the model as configured (weights, engine, options,
        context); with the same fingerprint and ``seed``, sampling repeats.
        """
        spec = self.model.spec
        # The prompt and the room after it make up the whole context.
        context_length = self.prompt.token_count + self.prompt.room
        identity = json.dumps(
            [__version__, spec.id, spec.engine, repr(spec.source), spec.options, context_length],
            sort_keys=True,
            default=str,
        )
        return "fp_" + hashlib.sha256(identity.encode()).hexdigest()[:10]

    @property
    def prompt_tokens(self) -> int:
        return self.prompt.token_count


class GenerationCore:
    """Finds each model's chat backend and runs conversations through it."""

    def __init__(self, models: ModelManager, images: ImageInputs | None = None) -> None:
        self.models = models
        # Where the images of a conversation are loaded from (files, URLs); the app sets
        # it once the files service and the outbound client exist.
        self.images = images or ImageInputs()

    async def _backend(self, model: str) -> tuple[ResolvedModel, ChatBackend]:
        # A protocol is a fine runtime check here; mypy wants a concrete class.
        return await self.models.get(model, "chat", ChatBackend)  # type: ignore[type-abstract]

    async def prepare(
        self,
        model: str,
        conversation: Conversation,
        options: GenerationOptions | None = None,
        *,
        param: str = "messages",
        owner: str | None = None,
    ) -> PreparedPrompt:
        """Resolve ``model``, render ``conversation`` and check it fits the context.

        Images go only to a backend that takes them (else a 400 naming the first image's
        part), loaded to bytes first (``owner``'s files, data URLs, fetched URLs)."""
        options = options or GenerationOptions()
        check_options(options)
        resolved, backend = await self._backend(model)
        if not backend.supports_images:
            conversation = _text_only(conversation)
        images = conversation.images
        if images and not backend.supports_images:
            raise InvalidRequestError(
                f"Invalid content type: `{resolved.name}` reads text only, so image parts "
                "are not supported with it. Use a model with vision (a multimodal "
                "projector, see docs/models.md).",
                param=images[0].param,
                code="invalid_value",
            )
        if images:
            conversation = await self._load_images(conversation, owner)
        prompt = await backend.prepare(conversation, options, param=param)
        return PreparedPrompt(resolved, backend, prompt)

    async def _load_images(self, conversation: Conversation, owner: str | None) -> Conversation:
        messages: list[Message] = []
        for message in conversation.messages:
            if message.images:
                loaded = [await self.images.load(image, owner) for image in message.images]
                message = replace(message, images=tuple(loaded))
            messages.append(message)
        return replace(conversation, messages=tuple(messages))

    async def prepare_text(
        self, model: str, prompt: str | list[int], *, param: str = "prompt"
    ) -> PreparedPrompt:
        """A raw prompt, no chat template: text (with the model's BOS) or token ids."""
        resolved, backend = await self._backend(model)
        encoding = openai_encoding(resolved)
        if not isinstance(prompt, str) and encoding is not None:
            # OpenAI's token ids for OpenAI's name: the prompt is the text they spell.
            tokens = prompt
            prompt = await asyncio.to_thread(decode_tokens, tokens, encoding, resolved.name, param)
        if not isinstance(prompt, str) and not backend.supports_token_prompts:
            raise UnsupportedError(
                f"`{resolved.spec.id}` takes prompts as text, not token ids.", param=param
            )
        return PreparedPrompt(resolved, backend, await backend.prepare_text(prompt, param=param))

    def max_new_tokens(self, prepared: PreparedPrompt, requested: int | None) -> int:
        """The token budget: what was asked for, never past the end of the context nor
        past the calling project's ceiling (``oasis projects create --max-tokens``)."""
        budget = prepared.prompt.room
        for cap in (requested, token_ceiling()):
            if cap is not None:
                budget = min(budget, cap)
        return budget

    def generate(
        self,
        prepared: PreparedPrompt,
        params: SamplingParams,
        stop: Sequence[str] | None = None,
    ) -> EventStream:
        """One generation, queued now: text deltas as they become final, then one
        :class:`Finished`. A full queue raises ``OverloadedError`` here."""
        return self.generate_all([(prepared, params)], stop)[0]

    def generate_all(
        self,
        runs: Sequence[tuple[PreparedPrompt, SamplingParams]],
        stop: Sequence[str] | None = None,
    ) -> list[EventStream]:
        """Every run of one request (its choices), queued now and together, so a batching
        backend can run them at once. All runs are for one model."""
        backend = runs[0][0].backend
        assert all(prepared.backend is backend for prepared, _ in runs)
        return backend.generate([(prepared.prompt, params) for prepared, params in runs], stop)


def _text_only(conversation: Conversation) -> Conversation:
    """``conversation`` less the messages that only show images the server added itself
    (``optional``: a computer-use screenshot), which a model that reads text only is
    simply not shown; the client's own images stay (and are refused)."""
    if not any(image.optional for image in conversation.images):
        return conversation
    messages = tuple(
        m for m in conversation.messages if not (m.images and all(i.optional for i in m.images))
    )
    return replace(conversation, messages=messages)
