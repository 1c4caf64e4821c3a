"""Pillow helpers for the images service: read uploads, build masks, encode outputs.

Pure functions, no model code. Pillow is imported lazily so that the server starts
without the ``images`` extra.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Literal

from oasis.errors import InvalidRequestError

if TYPE_CHECKING:
    from PIL.Image import Image

OutputFormat = Literal["png", "jpeg", "webp"]

# One output "token" per 16x16 pixel patch: a 2x2 cell of an SD latent, and close to what
# OpenAI bills for GPT image (a 1024x1024 picture is 4096 tokens here, 4160 there).
PATCH = 16


def image_tokens(width: int, height: int) -> int:
    """Usage tokens for a picture of ``width`` x ``height`` pixels."""
    return math.ceil(width / PATCH) * math.ceil(height / PATCH)


# Pillow formats an upload may be in. Image.open would otherwise try every format Pillow
# knows, some of which run external programs (EPS calls Ghostscript) or are rarely fuzzed.
INPUT_FORMATS = ("PNG", "JPEG", "WEBP")
# Above this, decoding alone takes hundreds of MB (a decompression bomb is a small file
# that claims a huge size): refused from the header, before any pixel is decoded.
MAX_INPUT_PIXELS = 50_000_000


def read_image(data: bytes, param: str) -> Image:
    """Decode an uploaded png, jpeg or webp picture; a 400 naming ``param`` otherwise."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if not data:
        raise InvalidRequestError(
            f"The file in '{param}' is empty.", param=param, code="invalid_image_format"
        )
    try:
        image = PILImage.open(io.BytesIO(data), formats=INPUT_FORMATS)  # reads the header
        width, height = image.size
        if width * height > MAX_INPUT_PIXELS:
            raise _too_large(param, f"{width}x{height}")
        image.load()
    except PILImage.DecompressionBombError as exc:  # Pillow's own, larger limit
        raise _too_large(param, "huge") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidRequestError(
            f"Invalid image file in '{param}': it is not a png, jpeg or webp picture "
            f"({type(exc).__name__}).",
            param=param,
            code="invalid_image_format",
        ) from exc
    return image


def _too_large(param: str, size: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"The picture in '{param}' is too large ({size}); the limit is "
        f"{MAX_INPUT_PIXELS // 1_000_000} megapixels.",
        param=param,
        code="image_too_large",
    )


def has_alpha(image: Image) -> bool:
    return image.mode in {"RGBA", "LA", "PA"} or (
        image.mode == "P" and "transparency" in image.info
    )


def is_partly_transparent(image: Image) -> bool:
    """True when some pixel of ``image`` is not fully opaque."""
    if not has_alpha(image):
        return False
    low = image.convert("RGBA").getchannel("A").getextrema()[0]
    return isinstance(low, int | float) and low < 255


def repaint_mask(image: Image) -> Image:
    """An ``L`` mask from ``image``'s alpha: transparent (alpha 0) becomes white, repaint."""
    from PIL import ImageOps

    alpha = image.convert("RGBA").getchannel("A")
    return ImageOps.invert(alpha)


def mask_from_upload(mask: Image, size: tuple[int, int]) -> Image:
    """Check an uploaded mask (a PNG with alpha, same size as the picture) and convert it."""
    if mask.size != size:
        raise InvalidRequestError(
            f"Invalid mask: it is {mask.size[0]}x{mask.size[1]} but the image is "
            f"{size[0]}x{size[1]}; the mask must have the same size as the image.",
            param="mask",
            code="invalid_value",
        )
    if not has_alpha(mask):
        raise InvalidRequestError(
            "Invalid mask: it has no alpha channel. Send a PNG whose fully transparent "
            "pixels mark the area to edit.",
            param="mask",
            code="invalid_image_format",
        )
    return repaint_mask(mask)


def fit_size(width: int, height: int, multiple: int, max_pixels: int) -> tuple[int, int]:
    """The largest size with ``width:height``'s shape, within ``max_pixels``, on the grid."""
    scale = min(1.0, math.sqrt(max_pixels / (width * height)))
    w = max(multiple, int(width * scale) // multiple * multiple)
    h = max(multiple, int(height * scale) // multiple * multiple)
    return w, h


def remove_background(image: Image, tolerance: int = 40) -> Image:
    """RGBA copy of ``image`` whose border-connected backdrop is transparent.

    Diffusion models paint opaque pictures. Asked for a transparent background, oasis
    prompts for a plain backdrop, then clears every pixel that is close in colour to the
    border's dominant colour and connected to the border; alpha ramps over a second
    tolerance band so edges stay soft.
    """
    import numpy as np
    from PIL import Image as PILImage
    from scipy import ndimage

    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    backdrop = np.median(border, axis=0)
    distance = np.sqrt(((rgb - backdrop) ** 2).sum(axis=2))
    near = distance < 2 * tolerance
    labels, _ = ndimage.label(near)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    connected = np.isin(labels, edge_labels[edge_labels > 0])
    ramp = np.clip((distance - tolerance) / tolerance, 0.0, 1.0)
    alpha = np.where(connected, ramp * 255, 255).astype(np.uint8)
    out = image.convert("RGBA")
    out.putalpha(PILImage.fromarray(alpha, mode="L"))
    return out


def encode(image: Image, fmt: OutputFormat, compression: int) -> bytes:
    """``image`` as ``fmt`` bytes. ``compression`` (0-100) is the jpeg/webp quality."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG")
    elif fmt == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=max(1, compression))
    else:
        image.save(buffer, format="WEBP", quality=compression, method=4)
    return buffer.getvalue()


MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
