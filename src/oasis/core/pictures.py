"""Small facts about the pictures a request carries: their kind, their size, a data URL.

Only the first bytes are read (Pillow reads the header alone for the size); nothing here
decodes a whole picture.
"""

from __future__ import annotations

import base64
import io


def sniff_mime(data: bytes) -> str | None:
    """The mime type of a PNG, JPEG, GIF or WebP picture from its first bytes; None for
    anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in {b"GIF87a", b"GIF89a"}:
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def data_url(data: bytes, mime: str) -> str:
    """``data`` as a base64 data URL."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def from_data_url(url: str) -> bytes | None:
    """The bytes of a base64 data URL; None when ``url`` is not one or its base64 is bad."""
    header, comma, payload = url.partition(",")
    if not url.startswith("data:") or not comma or ";base64" not in header:
        return None
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:  # binascii.Error is a ValueError
        return None


def picture_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a picture, read from its header; None when it is not one."""
    from PIL import Image, UnidentifiedImageError  # Pillow comes with matplotlib

    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return int(width), int(height)
