"""Request bodies of ``/v1/containers``, and the list envelopes we return."""

from __future__ import annotations

from typing import Any, Literal

from openai.types import ContainerRetrieveResponse
from openai.types.containers import FileRetrieveResponse
from pydantic import BaseModel, Field

from oasis.wire.base import WireModel

MemoryLimit = Literal["1g", "4g", "16g", "64g"]


class ContainerExpiresAfter(WireModel):
    """Minutes without activity after which the container and its files are removed."""

    anchor: Literal["last_active_at"]
    minutes: int = Field(ge=1, le=30 * 24 * 60)


class NetworkPolicy(WireModel):
    """Only ``disabled`` can be honoured: the sandbox has no network at all."""

    type: Literal["disabled", "allowlist"]
    allowed_domains: list[str] | None = None
    domain_secrets: list[dict[str, Any]] | None = None


class ContainerCreateRequest(WireModel):
    name: str = Field(min_length=1, max_length=256)
    expires_after: ContainerExpiresAfter | None = None
    file_ids: list[str] | None = Field(default=None, max_length=50)
    memory_limit: MemoryLimit | None = None
    network_policy: NetworkPolicy | None = None
    skills: list[dict[str, Any]] | None = None


class ContainerFileCreateRequest(WireModel):
    """``POST /v1/containers/{id}/files`` as JSON: copy an existing File in."""

    file_id: str = Field(min_length=1)


class ContainerList(BaseModel):
    object: Literal["list"]
    data: list[ContainerRetrieveResponse]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ContainerFileList(BaseModel):
    object: Literal["list"]
    data: list[FileRetrieveResponse]
    first_id: str | None
    last_id: str | None
    has_more: bool
