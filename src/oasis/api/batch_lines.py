"""A batch line as a request to its endpoint: the route's model, service call and answer.

The batch runner calls :class:`BatchDispatch` with a line's ``url`` and ``body``; it parses
the body with the model the route parses it with, calls the same service method, and
answers what the route would: the status code and JSON body, the error envelope included.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from oasis.api.embeddings import embeddings_json
from oasis.api.errors import error_response, server_error_response, validation_error_response
from oasis.errors import OasisError, PreemptedError, UnsupportedError
from oasis.responses.service import ResponsesService
from oasis.services.chat import ChatService
from oasis.services.completions import CompletionService
from oasis.services.embeddings import EmbeddingService
from oasis.services.images import EditUploads, ImagesService
from oasis.wire.base import body_errors, dump
from oasis.wire.chat import ChatCompletionRequest
from oasis.wire.completions import CompletionRequest
from oasis.wire.embeddings import EmbeddingRequest
from oasis.wire.images import ImageEditRequest, ImageGenerationRequest
from oasis.wire.responses import ResponseCreateRequest

log = logging.getLogger(__name__)

Call = Callable[[str, dict[str, Any]], Awaitable[str]]  # (owner, body) → response JSON


class BatchDispatch:
    """Runs one batch line through the service behind its ``url``."""

    def __init__(
        self,
        chat: ChatService,
        completions: CompletionService,
        embeddings: EmbeddingService,
        responses: ResponsesService,
        images: ImagesService,
    ) -> None:
        async def chat_line(owner: str, body: dict[str, Any]) -> str:
            return dump(await chat.create(ChatCompletionRequest.model_validate(body), owner))

        async def completion_line(_: str, body: dict[str, Any]) -> str:
            return dump(await completions.create(CompletionRequest.model_validate(body)))

        async def embedding_line(_: str, body: dict[str, Any]) -> str:
            return embeddings_json(await embeddings.create(EmbeddingRequest.model_validate(body)))

        async def response_line(owner: str, body: dict[str, Any]) -> str:
            return dump(await responses.create(ResponseCreateRequest.model_validate(body), owner))

        async def image_line(_: str, body: dict[str, Any]) -> str:
            request = ImageGenerationRequest.model_validate(body)
            _no_links(request.response_format)
            return dump(await images.create(await images.prepare_generation(request), ""))

        async def edit_line(_: str, body: dict[str, Any]) -> str:
            # A line is JSON, so its pictures are data URLs in `images`, as in a JSON edit.
            request = ImageEditRequest.model_validate(body)
            _no_links(request.response_format)
            prepared = await images.prepare_edit(request, EditUploads(images=[]))
            return dump(await images.create(prepared, ""))

        self.calls: dict[str, Call] = {
            "/v1/chat/completions": chat_line,
            "/v1/completions": completion_line,
            "/v1/embeddings": embedding_line,
            "/v1/responses": response_line,
            "/v1/images/generations": image_line,
            "/v1/images/edits": edit_line,
        }

    async def __call__(self, owner: str, url: str, body: dict[str, Any]) -> tuple[int, Any]:
        """The status code and JSON body that ``POST url`` with ``body`` answers.

        Raises :class:`~oasis.errors.PreemptedError` when the line gave its model thread to
        a live request part-way: it has no answer yet and is to be run again."""
        try:
            answer = await self.calls[url](owner, body)
        except PreemptedError:
            raise
        except ValidationError as exc:
            failure = validation_error_response(body_errors(exc))
        except OasisError as exc:
            if exc.status_code >= 500:
                log.error("batch line: %s: %s", type(exc).__name__, exc.message)
            failure = error_response(exc)
        except Exception:
            log.exception("batch line: unhandled error")
            failure = server_error_response()
        else:
            return 200, json.loads(answer)
        return failure.status_code, json.loads(bytes(failure.body))


def _no_links(response_format: str | None) -> None:
    """A batch outlives any request that could say which address its links should use,
    so its pictures come back inline."""
    if response_format == "url":
        raise UnsupportedError(
            "A batch line's images come back as `b64_json`; `url` is not available in a batch.",
            param="response_format",
        )
