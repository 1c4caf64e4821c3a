"""Request bodies of ``POST /v1/images/generations``, ``/v1/images/edits`` and
``/v1/images/variations``.

Edits usually arrive as multipart form fields, all strings: pydantic's lax mode turns
``"2"`` into 2 and ``"true"`` into True, so one model serves both encodings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from oasis.wire.base import WireModel

Quality = Literal["standard", "hd", "low", "medium", "high", "xhigh", "max", "auto"]


class ImageRequest(WireModel):
    """Fields that generations and edits share."""

    prompt: str = Field(min_length=1, max_length=32000)
    model: str | None = None
    n: int | None = Field(default=None, ge=1, le=10)
    size: str | None = None
    quality: Quality | None = None
    response_format: Literal["url", "b64_json"] | None = None
    output_format: Literal["png", "jpeg", "webp", "gif", "svg"] | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    background: Literal["transparent", "opaque", "auto"] | None = None
    moderation: Literal["low", "auto"] | None = None
    stream: bool | None = None
    partial_images: int | None = Field(default=None, ge=0, le=3)
    user: str | None = None
    safety_identifier: str | None = None
    # oasis extension: a base seed for reproducible pictures (image i uses seed + i).
    seed: int | None = None


class ImageGenerationRequest(ImageRequest):
    style: Literal["vivid", "natural"] | None = None


class ImageReference(WireModel):
    """An input picture in the JSON form of an edit: a data URL (or a file id)."""

    image_url: str | None = None
    file_id: str | None = None


class ImageEditRequest(ImageRequest):
    """Scalar fields of an edit. Uploaded files travel beside it (see the router)."""

    input_fidelity: Literal["high", "low"] | None = None
    # The JSON variant names its pictures here instead of uploading them.
    images: list[ImageReference] | None = Field(default=None, min_length=1, max_length=16)
    mask: ImageReference | None = None


class ImageVariationRequest(ImageRequest):
    """Scalar fields of a variation: a picture reworked with no prompt (the uploaded
    ``image`` travels beside it). A ``prompt``, an oasis extension, steers it."""

    prompt: str = Field(default="", max_length=32000)
