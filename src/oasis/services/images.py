"""Image generation and editing: validate, run the diffusion engine, encode, respond.

``prepare_*`` does every check that can fail (model, size, files, mask) before anything
runs, so a bad request is a 4xx even when the client asked for a stream. ``create`` and
``stream`` then turn engine output into ``ImagesResponse`` or the SSE event types.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, cast

from openai.types import Image, ImagesResponse
from openai.types.image_edit_completed_event import ImageEditCompletedEvent
from openai.types.image_edit_completed_event import Usage as EditEventUsage
from openai.types.image_edit_partial_image_event import ImageEditPartialImageEvent
from openai.types.image_gen_completed_event import ImageGenCompletedEvent
from openai.types.image_gen_completed_event import Usage as GenEventUsage
from openai.types.image_gen_partial_image_event import ImageGenPartialImageEvent
from openai.types.images_response import Usage, UsageInputTokensDetails, UsageOutputTokensDetails

from oasis.caller import UsageEntry, record_usage
from oasis.engines.base import (
    IMAGES_HINT as CONFIGURE_HINT,
)
from oasis.engines.base import (
    FinishedImage,
    ImageEngine,
    ImageJob,
    PartialImage,
)
from oasis.errors import InvalidRequestError, ModelNotFoundError, UnsupportedError
from oasis.metrics import Metrics
from oasis.services import imaging
from oasis.services.image_files import ImageFileStore
from oasis.services.models import ModelManager
from oasis.wire.images import (
    ImageEditRequest,
    ImageGenerationRequest,
    ImageRequest,
    ImageVariationRequest,
)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


StreamEvent = (
    ImageGenPartialImageEvent
    | ImageGenCompletedEvent
    | ImageEditPartialImageEvent
    | ImageEditCompletedEvent
)

DEFAULT_MAX_PIXELS = 2048 * 2048
TRANSPARENT_SUFFIX = ", isolated on a plain white background"
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_QUALITY = {"low": "low", "medium": "medium", "high": "high", "standard": "medium",
            "hd": "high", "xhigh": "high", "max": "high"}  # fmt: skip
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,(.*)$", re.DOTALL)


@dataclass(frozen=True)
class EditUploads:
    """The files of a multipart edit: the pictures (``image`` / ``image[]``) and the mask."""

    images: list[bytes]
    mask: bytes | None = None


@dataclass(frozen=True)
class PreparedImages:
    """A checked request, ready to run."""

    kind: Literal["image_generation", "image_edit"]
    engine: ImageEngine
    job: ImageJob
    output_format: imaging.OutputFormat
    compression: int
    transparent: bool
    quality: Literal["low", "medium", "high"]
    response_format: Literal["url", "b64_json"]
    text_tokens: int
    input_image_tokens: int
    safety_identifier: str | None

    @property
    def size(self) -> str:
        return f"{self.job.width}x{self.job.height}"

    @property
    def background(self) -> Literal["transparent", "opaque"]:
        return "transparent" if self.transparent else "opaque"


class ImagesService:
    """``POST /v1/images/generations`` and ``/v1/images/edits``."""

    def __init__(
        self, models: ModelManager, files: ImageFileStore, metrics: Metrics | None = None
    ) -> None:
        self.models = models
        self.files = files
        self.metrics = metrics

    # --- preparation -----------------------------------------------------------------

    def _served(self) -> list[Any]:
        registry = self.models.registry
        return [s for s in registry.specs() if s.kind == "images" and registry.is_served(s)]

    @property
    def has_model(self) -> bool:
        """Whether any image model is configured (and so a request may name none)."""
        return bool(self._served())

    async def _engine(self, name: str | None) -> tuple[ImageEngine, dict[str, Any]]:
        served = self._served()
        if name is None:
            if not served:
                raise ModelNotFoundError("(default image model)", CONFIGURE_HINT)
            name = served[0].id
        try:
            # A runtime-checkable protocol is a valid isinstance target; mypy cannot tell.
            resolved, engine = await self.models.get(name, "images", ImageEngine)  # type: ignore[type-abstract]
        except ModelNotFoundError as exc:
            if not served:
                raise ModelNotFoundError(name, CONFIGURE_HINT) from exc
            raise
        return engine, resolved.spec.options

    async def prepare_generation(self, body: ImageGenerationRequest) -> PreparedImages:
        """Check a generation request and load its model."""
        engine, options = await self._engine(body.model)
        width, height = _size(body.size, engine.default_size, engine, options)
        # A 32k-character prompt takes a while to tokenize: off the event loop.
        text_tokens = await asyncio.to_thread(engine.count_tokens, body.prompt)
        job = ImageJob(body.prompt, width, height)
        return self._prepare("image_generation", body, engine, options, job, text_tokens)

    async def prepare_edit(self, body: ImageEditRequest, uploads: EditUploads) -> PreparedImages:
        """Check an edit (pictures, mask) and load its model."""
        references = len(uploads.images) + len(body.images or [])
        if not references:
            raise InvalidRequestError(
                "Missing required parameter: 'image'.",
                param="image",
                code="missing_required_parameter",
            )
        if references > 1:
            raise UnsupportedError(
                f"{references} images were sent; diffusion models here edit one "
                "picture at a time. Send a single `image`.",
                param="image",
            )
        engine, options = await self._engine(body.model)
        # Data URLs, decoding, resizing and tokenizing all take a while on large inputs:
        # one trip off the event loop for all of them.
        job, text_tokens = await asyncio.to_thread(_edit_job, body, uploads, engine, options)
        return self._prepare("image_edit", body, engine, options, job, text_tokens)

    async def prepare_variation(
        self, body: ImageVariationRequest, uploads: EditUploads
    ) -> PreparedImages:
        """Check a variation (one picture, no mask) and load its model."""
        if not uploads.images:
            raise InvalidRequestError(
                "Missing required parameter: 'image'.",
                param="image",
                code="missing_required_parameter",
            )
        if len(uploads.images) > 1:
            raise InvalidRequestError(
                "A variation takes one `image`.", param="image", code="invalid_value"
            )
        if body.stream:
            raise UnsupportedError("Variations are not streamed.", param="stream")
        engine, options = await self._engine(body.model)
        job, text_tokens = await asyncio.to_thread(
            _variation_job, body, uploads.images[0], engine, options
        )
        return self._prepare("image_edit", body, engine, options, job, text_tokens)

    def _prepare(
        self,
        kind: Literal["image_generation", "image_edit"],
        body: ImageRequest,
        engine: ImageEngine,
        options: dict[str, Any],
        job: ImageJob,
        text_tokens: int,
    ) -> PreparedImages:
        fmt = body.output_format or "png"
        if fmt not in ("png", "jpeg", "webp"):
            raise UnsupportedError(
                f"output_format `{fmt}` is not supported; use png, jpeg or webp.",
                param="output_format",
            )
        transparent = body.background == "transparent"
        if transparent and fmt == "jpeg":
            raise InvalidRequestError(
                "Transparent backgrounds need output_format png or webp; jpeg has no alpha.",
                param="background",
                code="invalid_value",
            )
        requested = body.quality or "auto"
        quality = _QUALITY.get(requested) or str(options.get("default_quality", "medium"))
        prompt = job.prompt
        if transparent:
            prompt += str(options.get("transparent_prompt_suffix", TRANSPARENT_SUFFIX))
        job = replace(
            job,
            prompt=prompt,
            n=body.n or 1,
            quality=quality,
            seed=body.seed,
            partial_images=(body.partial_images or 0) if body.stream else 0,
        )
        input_image_tokens = (
            imaging.image_tokens(job.width, job.height) if job.image is not None else 0
        )
        safety = body.safety_identifier or body.user or None
        return PreparedImages(
            kind=kind,
            engine=engine,
            job=job,
            output_format=fmt,
            compression=body.output_compression if body.output_compression is not None else 100,
            transparent=transparent,
            quality=cast(Literal["low", "medium", "high"], quality),
            response_format=body.response_format or "b64_json",
            text_tokens=text_tokens,
            input_image_tokens=input_image_tokens,
            safety_identifier=safety,
        )

    # --- running ---------------------------------------------------------------------

    def _finish(self, prepared: PreparedImages, image: PILImage) -> bytes:
        if prepared.transparent:
            image = imaging.remove_background(image)
        return imaging.encode(image, prepared.output_format, prepared.compression)

    def _usage(self, prepared: PreparedImages, images: int) -> Usage:
        output = images * imaging.image_tokens(prepared.job.width, prepared.job.height)
        inputs = prepared.text_tokens + prepared.input_image_tokens
        return Usage(
            input_tokens=inputs,
            input_tokens_details=UsageInputTokensDetails(
                text_tokens=prepared.text_tokens, image_tokens=prepared.input_image_tokens
            ),
            output_tokens=output,
            output_tokens_details=UsageOutputTokensDetails(image_tokens=output, text_tokens=0),
            total_tokens=inputs + output,
        )

    async def _record(self, prepared: PreparedImages, images: int) -> None:
        used = self._usage(prepared, images)
        await record_usage(
            UsageEntry(
                "images",
                prepared.engine.spec.id,
                input_tokens=used.input_tokens,
                output_tokens=used.output_tokens,
                images=images,
            )
        )

    async def create(self, prepared: PreparedImages, url_base: str) -> ImagesResponse:
        """Run the job to the end and answer with every picture."""
        encoded: dict[int, bytes] = {}
        # Closing the engine's iterator stops the runtime at its next step (a client gone).
        # The protocol types it as a plain AsyncIterator; engines return closable ones.
        generated = prepared.engine.generate(prepared.job)
        async with aclosing(generated) as events:  # type: ignore[type-var]
            async for event in events:
                if isinstance(event, FinishedImage):
                    encoded[event.index] = await asyncio.to_thread(
                        self._finish, prepared, event.image
                    )
        data = []
        for index in sorted(encoded):
            payload = encoded[index]
            if prepared.response_format == "url":
                name = await asyncio.to_thread(self.files.save, payload, prepared.output_format)
                data.append(Image(url=f"{url_base.rstrip('/')}/v1/images/files/{name}"))
            else:
                data.append(Image(b64_json=base64.b64encode(payload).decode("ascii")))
        response = ImagesResponse(
            created=int(time.time()),
            data=data,
            background=prepared.background,
            output_format=prepared.output_format,
            quality=prepared.quality,
            size=prepared.size,
            usage=self._usage(prepared, len(data)),
        )
        if prepared.safety_identifier:
            response.safety_identifier = prepared.safety_identifier
        await self._record(prepared, len(data))
        return response

    def stream(self, prepared: PreparedImages) -> AsyncIterator[StreamEvent]:
        """Previews as ``*.partial_image``, then one ``*.completed`` per picture.

        The job is queued now, so a full queue is a 503 before the stream starts.
        """
        return self._stream_events(prepared, prepared.engine.generate(prepared.job))

    async def _stream_events(
        self, prepared: PreparedImages, generated: AsyncIterator[PartialImage | FinishedImage]
    ) -> AsyncIterator[StreamEvent]:
        edit = prepared.kind == "image_edit"
        usage = self._usage(prepared, 1).model_dump(exclude={"output_tokens_details"})
        common: dict[str, Any] = {
            "background": prepared.background,
            "output_format": prepared.output_format,
            "quality": prepared.quality,
            "size": prepared.size,
        }
        finished = 0
        async with aclosing(generated) as events:  # type: ignore[type-var]
            async for event in events:
                payload = await asyncio.to_thread(self._finish, prepared, event.image)
                b64 = base64.b64encode(payload).decode("ascii")
                created = int(time.time())
                if isinstance(event, FinishedImage):
                    completed: StreamEvent
                    if edit:
                        completed = ImageEditCompletedEvent(
                            type="image_edit.completed", b64_json=b64, created_at=created,
                            usage=EditEventUsage.model_validate(usage), **common,
                        )  # fmt: skip
                    else:
                        completed = ImageGenCompletedEvent(
                            type="image_generation.completed", b64_json=b64, created_at=created,
                            usage=GenEventUsage.model_validate(usage), **common,
                        )  # fmt: skip
                    if prepared.safety_identifier:
                        completed.safety_identifier = prepared.safety_identifier
                    finished += 1
                    yield completed
                    continue
                if self.metrics is not None:
                    self.metrics.image_previews.labels(prepared.engine.spec.id).inc()
                if edit:
                    yield ImageEditPartialImageEvent(
                        type="image_edit.partial_image", b64_json=b64, created_at=created,
                        partial_image_index=event.partial_index, **common,
                    )  # fmt: skip
                else:
                    yield ImageGenPartialImageEvent(
                        type="image_generation.partial_image", b64_json=b64, created_at=created,
                        partial_image_index=event.partial_index, **common,
                    )  # fmt: skip
        await self._record(prepared, finished)


def _decode_inputs(uploads: EditUploads) -> tuple[PILImage, PILImage | None]:
    """The picture to edit and its repaint mask (from ``mask``, else from its own alpha)."""
    picture = imaging.read_image(uploads.images[0], "image")
    if uploads.mask is not None:
        mask = imaging.read_image(uploads.mask, "mask")
        return picture, imaging.mask_from_upload(mask, picture.size)
    if imaging.is_partly_transparent(picture):
        return picture, imaging.repaint_mask(picture)
    return picture, None


def _edit_job(
    body: ImageEditRequest, uploads: EditUploads, engine: ImageEngine, options: dict[str, Any]
) -> tuple[ImageJob, int]:
    """The edit's job and its prompt tokens; blocking (run in a thread)."""
    if body.images is not None or body.mask is not None:
        uploads = EditUploads(
            images=[
                *uploads.images,
                *(_fetch(r, f"images[{i}]") for i, r in enumerate(body.images or [])),
            ],
            mask=_fetch(body.mask, "mask") if body.mask is not None else uploads.mask,
        )
    picture, mask = _decode_inputs(uploads)
    if mask is not None and not engine.can_inpaint:
        # A mask can also come from the picture's own transparency: say which.
        source = "mask" if uploads.mask is not None else "image"
        name = body.model or "the default image model"
        raise InvalidRequestError(
            f"The model `{name}` cannot inpaint (its pipeline has no inpainting variant), "
            f"and this edit has a mask (from `{source}`). Send an opaque picture without "
            "a mask, or use an inpainting-capable model.",
            param=source,
            code="unsupported_value",
        )
    return _picture_job(body, picture, mask, engine, options)


def _variation_job(
    body: ImageVariationRequest, upload: bytes, engine: ImageEngine, options: dict[str, Any]
) -> tuple[ImageJob, int]:
    """A variation's job: the whole picture reworked (image to image); blocking."""
    return _picture_job(body, imaging.read_image(upload, "image"), None, engine, options)


def _picture_job(
    body: ImageRequest,
    picture: PILImage,
    mask: PILImage | None,
    engine: ImageEngine,
    options: dict[str, Any],
) -> tuple[ImageJob, int]:
    """The job that reworks ``picture`` (where ``mask`` is white, if given), at the size
    asked for or the picture's own shape fitted to the model; and its prompt tokens."""
    max_pixels = int(options.get("max_pixels", DEFAULT_MAX_PIXELS))
    auto = imaging.fit_size(*picture.size, engine.size_multiple, max_pixels)
    width, height = _size(body.size, auto, engine, options)
    job = ImageJob(
        body.prompt,
        width,
        height,
        image=picture.convert("RGB").resize((width, height)),
        mask=mask.resize((width, height)) if mask is not None else None,
    )
    return job, engine.count_tokens(body.prompt) if body.prompt else 0


def _size(
    size: str | None,
    auto: tuple[int, int],
    engine: ImageEngine,
    options: dict[str, Any],
) -> tuple[int, int]:
    if size is None or size == "auto":
        return auto
    match = _SIZE.match(size)
    if match is None:
        raise InvalidRequestError(
            f"Invalid value for 'size': `{size}`. Use 'auto' or WIDTHxHEIGHT, e.g. '1024x1024'.",
            param="size",
            code="invalid_value",
        )
    width, height = int(match[1]), int(match[2])
    multiple = max(16, engine.size_multiple)
    max_pixels = int(options.get("max_pixels", DEFAULT_MAX_PIXELS))
    problem = None
    if width < multiple or height < multiple or width % multiple or height % multiple:
        problem = f"width and height must be positive multiples of {multiple}"
    elif max(width, height) > 3 * min(width, height):
        problem = "the aspect ratio must be between 1:3 and 3:1"
    elif width * height > max_pixels:
        problem = f"this model makes at most {max_pixels} pixels per picture"
    if problem:
        raise InvalidRequestError(
            f"Invalid value for 'size': `{size}`: {problem}.",
            param="size",
            code="invalid_value",
        )
    return width, height


def _fetch(reference: Any, param: str) -> bytes:
    """The bytes of a JSON-form image reference (data URLs only: oasis works offline)."""
    url = getattr(reference, "image_url", None)
    if url:
        match = _DATA_URL.match(url)
        if match is None:
            raise UnsupportedError(
                f"'{param}.image_url' must be a base64 data URL (data:image/png;base64,...); "
                "oasis does not fetch pictures from the network.",
                param=f"{param}.image_url",
            )
        try:
            return base64.b64decode(match[1], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequestError(
                f"'{param}.image_url' is not valid base64.",
                param=f"{param}.image_url",
                code="invalid_image_format",
            ) from exc
    if getattr(reference, "file_id", None):
        raise UnsupportedError(
            f"'{param}.file_id' is not supported here; upload the picture instead.",
            param=f"{param}.file_id",
        )
    raise InvalidRequestError(
        f"'{param}' needs an `image_url`.", param=param, code="missing_required_parameter"
    )
