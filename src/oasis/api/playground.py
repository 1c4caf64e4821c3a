"""The playground: a static web page at ``/`` that tries the API with the user's key.

The page is plain HTML, CSS and ES modules shipped inside the package (``oasis/playground``):
no build step, nothing fetched from elsewhere, so it works offline. It has no API of its
own; it calls ``/v1/...`` like any other client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

PAGE_DIR = Path(__file__).resolve().parent.parent / "playground"

# The page runs only its own files and talks only to this server, so it works offline, and
# a script smuggled in through model output could neither run nor send the key elsewhere.
CONTENT_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: data:; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class PageFiles(StaticFiles):
    """The page's files, each sent with the content policy above."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["content-security-policy"] = CONTENT_POLICY
        response.headers["x-content-type-options"] = "nosniff"
        return response


async def _to_page() -> RedirectResponse:
    # Relative, so the page is found behind a proxy that serves oasis under a path prefix.
    return RedirectResponse("playground/", status_code=307)


def install(app: FastAPI) -> None:
    """Serve the page under ``/playground/`` and send ``/`` there."""
    app.mount("/playground", PageFiles(directory=PAGE_DIR, html=True), name="playground")
    app.add_api_route("/", _to_page, methods=["GET"], include_in_schema=False)
