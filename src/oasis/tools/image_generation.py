"""The ``image_generation`` hosted tool: the model writes a prompt, the server's image
model draws it.

The picture is made by the images service (``oasis.services.images.ImagesService``, the
code path of ``/v1/images/generations``, installed by the app), so the tool's parameters
mean what they mean there: ``size``, ``quality``, ``background``, ``output_format``,
``output_compression``, ``model`` and ``partial_images`` (previews, streamed as
``response.image_generation_call.partial_image``; drawn only when the response is
streamed, as OpenAI sends them only as events). A value the service refuses is a 400
naming ``tools[i].<param>`` before the response starts; a server without an image model
refuses the tool itself (``tools[i]``).

The ``image_generation_call`` item carries the picture (``result``, base64) and the
prompt the model wrote (``revised_prompt``). On later turns the model reads the call as
that prompt, never the picture's bytes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from openai.types.image_gen_partial_image_event import ImageGenPartialImageEvent

from oasis.core.conversation import FunctionTool
from oasis.engines.base import IMAGES_HINT
from oasis.errors import InvalidRequestError, ModelNotFoundError, OasisError, UnsupportedError
from oasis.ids import new_id
from oasis.tools.base import (
    ConfiguredTool,
    HostedCall,
    ItemAdded,
    ItemDone,
    ItemProgress,
    ReplayedCall,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from oasis.tools.outbound import UrlPolicy
from oasis.tools.registry import register_tool
from oasis.types import Item
from oasis.wire.images import ImageGenerationRequest

FUNCTION = FunctionTool(
    "image_generation",
    "Draw a picture for the user. Describe the picture in detail in `prompt`; the user "
    "sees the picture.",
    {
        "type": "object",
        "properties": {
            "prompt": {
                "type": "string",
                "minLength": 1,
                "description": "A detailed description of the picture to draw.",
            }
        },
        "required": ["prompt"],
    },
)
_CHOICES = {
    "quality": ("low", "medium", "high", "xhigh", "max", "auto"),
    "background": ("transparent", "opaque", "auto"),
    "moderation": ("auto", "low"),
    "input_fidelity": ("high", "low"),
    "action": ("generate", "auto"),
}


class Prepared(Protocol):
    """A checked images request (the service's ``PreparedImages``), as the tool reads it."""

    @property
    def background(self) -> str: ...
    @property
    def output_format(self) -> str: ...
    @property
    def quality(self) -> str: ...
    @property
    def size(self) -> str: ...


class Images(Protocol):
    """What the tool needs of :class:`oasis.services.images.ImagesService`."""

    @property
    def has_model(self) -> bool: ...
    async def prepare_generation(self, body: ImageGenerationRequest) -> Any: ...
    def stream(self, prepared: Any) -> AsyncIterator[Any]: ...


@dataclass(frozen=True)
class ImageConfig:
    """One configured ``image_generation`` tool: the images request it makes, less the
    prompt."""

    fields: dict[str, Any]
    partial_images: int


class ImageGenerationKind:
    """The image generation tool kind over the images service (None: no service, every
    use a 400)."""

    server_side = True
    item_types = frozenset({"image_generation_call"})

    def __init__(self, images: Images | None = None) -> None:
        self.images = images

    def configure(self, params: Sequence[tuple[int, Any]]) -> list[ConfiguredTool]:
        out: list[ConfiguredTool] = []
        for index, param in params:
            if self.images is None or not self.images.has_model:
                raise InvalidRequestError(
                    f"The image_generation tool needs an image model. {IMAGES_HINT}",
                    param=f"tools[{index}]",
                )
            out.append(_configure_one(index, param))
        return out

    async def check(self, tools: Sequence[ConfiguredTool], urls: UrlPolicy) -> None:
        """Each tool's request as the images service checks it (model, size, format…),
        before the response starts; a refusal names ``tools[i].<param>``."""
        for tool in tools:
            await self._prepare(tool, "check", previews=True)

    async def _prepare(self, tool: ConfiguredTool, prompt: str, *, previews: bool) -> Prepared:
        """The images request of ``tool`` for ``prompt``; its previews are drawn only when
        ``previews`` (a streamed response: OpenAI sends them only as stream events)."""
        assert self.images is not None  # configure refused the tool otherwise
        config: ImageConfig = tool.config
        body = ImageGenerationRequest(
            prompt=prompt, stream=previews and config.partial_images > 0, **config.fields
        )
        where = f"tools[{tool.index}]"
        try:
            prepared: Prepared = await self.images.prepare_generation(body)
            return prepared
        except ModelNotFoundError as exc:
            raise InvalidRequestError(
                exc.message, param=f"{where}.model", code="model_not_found"
            ) from exc
        except InvalidRequestError as exc:
            param = f"{where}.{exc.param}" if exc.param else where
            raise type(exc)(exc.message, param=param, code=exc.code) from exc

    async def run(self, call: HostedCall, context: ToolContext) -> AsyncIterator[ToolEvent]:
        assert self.images is not None
        prompt = _prompt(call.arguments)
        item: Item = {
            "type": "image_generation_call",
            "id": new_id("ig"),
            "status": "in_progress",
            "action": "generate",
            "result": None,
            "revised_prompt": prompt,
        }
        yield ItemAdded(item)
        yield ItemProgress("response.image_generation_call.in_progress")
        if not prompt:
            yield ItemDone({**item, "status": "failed"})
            yield ToolResult("The image generation failed: the call gave no prompt.")
            return
        try:
            prepared = await self._prepare(call.tool, prompt, previews=context.stream)
        except OasisError as exc:
            yield ItemDone({**item, "status": "failed"})
            yield ToolResult(f"The image generation failed: {exc.message}")
            return
        shape = {
            "background": prepared.background,
            "output_format": prepared.output_format,
            "quality": prepared.quality,
            "size": prepared.size,
        }
        yield ItemProgress("response.image_generation_call.generating", item_status="generating")
        result: str | None = None
        try:
            async for event in self.images.stream(prepared):
                if isinstance(event, ImageGenPartialImageEvent):
                    preview = {
                        "partial_image_index": event.partial_image_index,
                        "partial_image_b64": event.b64_json,
                        **shape,
                    }
                    yield ItemProgress("response.image_generation_call.partial_image", preview)
                else:
                    result = event.b64_json
        except OasisError as exc:
            yield ItemDone({**item, **shape, "status": "failed"})
            yield ToolResult(f"The image generation failed: {exc.message}")
            return
        yield ItemProgress("response.image_generation_call.completed", item_status="completed")
        yield ItemDone({**item, **shape, "status": "completed", "result": result})
        yield ToolResult(_told(prompt, failed=result is None))

    def replay(self, item: Item) -> ReplayedCall | None:
        """The call as the model made it (its prompt), and what it was told; the picture's
        bytes never go back to the model."""
        prompt = str(item.get("revised_prompt") or "")
        failed = item.get("status") == "failed" or not item.get("result")
        return ReplayedCall(FUNCTION.name, json.dumps({"prompt": prompt}), _told(prompt, failed))


def _told(prompt: str, failed: bool) -> str:
    """What the model reads as the call's result."""
    if failed:
        return "The image generation failed."
    return (
        "The picture was drawn and the user can see it. Do not describe it in detail or "
        "repeat the prompt; answer in one short sentence."
    )


def _prompt(arguments: str) -> str:
    """The prompt the model wrote; a malformed call draws whatever text it holds."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return arguments.strip()
    if isinstance(value, dict):
        value = value.get("prompt", "")
    return str(value).strip() if value is not None else ""


def _configure_one(index: int, param: Any) -> ConfiguredTool:
    where = f"tools[{index}]"
    extra = param.model_extra or {}
    for name, allowed in _CHOICES.items():
        value = getattr(param, name, None) if name != "action" else extra.get("action")
        if value is not None and value not in allowed:
            raise InvalidRequestError(
                f"Invalid value for '{where}.{name}': {value!r}. Supported values are: "
                + ", ".join(repr(a) for a in allowed)
                + ".",
                param=f"{where}.{name}",
                code="invalid_value",
            )
    if param.input_image_mask is not None:
        raise UnsupportedError(
            "The image_generation tool draws new pictures only here; `input_image_mask` "
            "(editing a picture) is not supported.",
            param=f"{where}.input_image_mask",
        )
    quality = param.quality or "auto"
    background = param.background or "auto"
    output_format = param.output_format or "png"
    compression = param.output_compression if param.output_compression is not None else 100
    partials = param.partial_images or 0
    fields: dict[str, Any] = {
        "model": param.model,
        "size": param.size,
        "quality": quality,
        "background": background,
        "output_format": output_format,
        "output_compression": compression,
        "partial_images": partials,
    }
    echo: Item = {
        "type": "image_generation",
        **{key: value for key, value in fields.items() if value is not None},
        "size": param.size or "auto",
        "moderation": param.moderation or "auto",
    }
    config = ImageConfig(fields, partials)
    return ConfiguredTool("image_generation", index, echo, FUNCTION, config)


TOOL = ImageGenerationKind()  # the built-in default: no images service (the app installs it)


def install(images: Images) -> ImageGenerationKind:
    """Serve the ``image_generation`` tool with ``images`` (a plugin may still replace it)."""
    kind = ImageGenerationKind(images)
    register_tool("image_generation", kind)
    return kind
