"""Images a request shows a vision model, loaded to bytes before the prompt is made.

A content part gives an image as a data URL, as a file of our Files API (``file_id``,
the caller's own), or as an http(s) URL, fetched through the one outbound client under
the outbound URL policy (:mod:`oasis.tools.outbound`: public addresses only unless the
operator allows private ones). What is loaded must be a PNG, JPEG, GIF or WebP picture;
anything else is a 400 naming the part.
"""

from __future__ import annotations

from dataclasses import replace

import httpx

from oasis.core.conversation import Image
from oasis.core.pictures import from_data_url, sniff_mime
from oasis.errors import InvalidRequestError, NotFoundError
from oasis.services.files import FilesService
from oasis.tools.outbound import OutboundError, UrlPolicy, fetch

# OpenAI's limit on one image of a request.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
FORMATS = "PNG, JPEG, GIF or WebP"


def _bad(message: str, param: str, code: str = "invalid_image_url") -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


class ImageInputs:
    """Loads the images of a conversation (see the module docstring)."""

    def __init__(
        self,
        files: FilesService | None = None,
        http: httpx.AsyncClient | None = None,
        urls: UrlPolicy | None = None,
    ) -> None:
        self.files = files
        self.http = http
        self.urls = urls or UrlPolicy()

    async def load(self, image: Image, owner: str | None) -> Image:
        """``image`` with its bytes and mime type (as it is when they are already there)."""
        if image.data is not None and image.mime is not None:
            return image
        if image.file_id is not None:
            data = await self._file(image.file_id, owner, f"{image.param}.file_id")
            param = f"{image.param}.file_id"
        elif image.url is not None:
            param = f"{image.param}.image_url"
            if image.url.startswith("data:"):
                decoded = from_data_url(image.url)
                if decoded is None:
                    raise _bad(f"'{param}' is not a base64 data URL.", param)
                data = decoded
            else:
                data = await self._fetch(image.url, param)
        else:
            raise _bad(f"'{image.param}' needs an image URL or a file_id.", image.param)
        if len(data) > MAX_IMAGE_BYTES:
            raise _bad(f"'{param}' is larger than {MAX_IMAGE_BYTES} bytes.", param)
        mime = sniff_mime(data)
        if mime is None:
            raise _bad(
                f"'{param}' is not a picture this server reads: send a {FORMATS} image.",
                param,
                "invalid_image_format",
            )
        return replace(image, data=data, mime=mime)

    async def _file(self, file_id: str, owner: str | None, param: str) -> bytes:
        if self.files is None or owner is None:
            raise _bad(f"'{param}': files cannot be read here.", param, "invalid_value")
        try:
            return await self.files.content(owner, file_id)
        except NotFoundError:
            raise _bad(f"No file with id '{file_id}' was found.", param, "invalid_value") from None

    async def _fetch(self, url: str, param: str) -> bytes:
        if self.http is None:
            raise _bad(f"'{param}': image URLs cannot be fetched here.", param)
        reason = await self.urls.refusal(url)
        if reason is not None:
            raise _bad(f"'{param}' {reason}", param)
        try:
            fetched = await fetch(self.http, self.urls, url, max_bytes=MAX_IMAGE_BYTES)
        except OutboundError as exc:
            raise _bad(f"Error while downloading {exc}.", param) from None
        return fetched.body
