"""Containers: a working directory, a sandboxed kernel, and the files in it, owned by an
API key.

::

    box = await containers.create(owner, ContainerCreateRequest(name="c"))
    result, written = await containers.run(owner, box.id, "print(1)")  # code in its kernel
    info = await containers.add_upload(owner, box.id, "data.csv", binary_file)
    info, chunks = await containers.file_content(owner, box.id, file_id)

A container's files are the regular files in its directory (``<data>/containers/<id>``,
``/mnt/data`` inside the sandbox). Files that come in through the API are
``source: "user"``; after each run the directory is scanned and every file the code
created or changed is recorded as ``source: "assistant"``. A container expires
``expires_after.minutes`` (default 20) after it was last used: reads stop seeing it at
once, and the sweep removes its rows, directory and kernel.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from openai.types import ContainerRetrieveResponse
from openai.types.containers import FileRetrieveResponse

from oasis.caller import UsageEntry, record_usage
from oasis.errors import (
    InvalidRequestError,
    NotFoundError,
    OasisError,
    PayloadTooLargeError,
    found,
)
from oasis.ids import new_id
from oasis.sandbox import MEMORY_LIMITS, Execution, Sandboxes
from oasis.sandbox import workdir as dirs
from oasis.services.blob_writes import known_size
from oasis.services.files import FilesService
from oasis.services.storage_cap import cap_of, refused, write_limit
from oasis.store.containers import ContainerRepository, StoredContainer, StoredContainerFile
from oasis.store.pagination import FIRST_PAGE, PageQuery
from oasis.store.storage import StorageCap, StorageFull
from oasis.wire.containers import ContainerCreateRequest, ContainerFileList, ContainerList
from oasis.wire.lists import cursor_list

log = logging.getLogger(__name__)

DEFAULT_MINUTES = 20


def container_object(stored: StoredContainer) -> ContainerRetrieveResponse:
    """A stored container as the API returns it."""
    return ContainerRetrieveResponse.model_validate(
        {
            "id": stored.id,
            "object": "container",
            "name": stored.name,
            "created_at": stored.created_at,
            "status": "running",
            "last_active_at": stored.last_active_at,
            "expires_after": {"anchor": "last_active_at", "minutes": stored.expires_minutes},
            "memory_limit": stored.memory_limit,
            "network_policy": {"type": "disabled"},
        }
    )


def file_object(stored: StoredContainerFile) -> FileRetrieveResponse:
    """A container file as the API returns it."""
    return FileRetrieveResponse(
        id=stored.id,
        object="container.file",
        container_id=stored.container_id,
        created_at=stored.created_at,
        bytes=stored.bytes,
        path=stored.path,
        source=stored.source,
    )


def missing(container_id: str) -> NotFoundError:
    return NotFoundError(f"No such Container object: {container_id}", param="container_id")


class ContainerService:
    """Create, read, list and delete containers and their files; run code in them."""

    def __init__(
        self,
        repo: ContainerRepository,
        files: FilesService,
        sandboxes: Sandboxes,
        root: Path,
        *,
        max_file_bytes: int,
    ) -> None:
        self.repo = repo
        self.files = files
        self.sandboxes = sandboxes
        self.root = root
        self.max_file_bytes = max_file_bytes

    def workdir(self, container_id: str) -> Path:
        return self.root / container_id

    # -- containers -------------------------------------------------------------------

    async def create(
        self, owner: str, body: ContainerCreateRequest, *, param: str = ""
    ) -> ContainerRetrieveResponse:
        """A new container with ``body.file_ids`` copied in (``param`` prefixes the field
        names of errors, for a container made by a tool)."""
        if body.network_policy is not None and body.network_policy.type != "disabled":
            raise InvalidRequestError(
                "Containers here have no network access: only network_policy "
                '{"type": "disabled"} is supported.',
                param=f"{param}network_policy",
                code="unsupported_value",
            )
        if body.skills:
            raise InvalidRequestError(
                "Skills are not supported by this server.", param=f"{param}skills"
            )
        file_ids = list(body.file_ids or [])
        await self.check_files(owner, file_ids, param=f"{param}file_ids")
        now = int(time.time())
        minutes = body.expires_after.minutes if body.expires_after else DEFAULT_MINUTES
        stored = StoredContainer(
            id=new_id("cntr"),
            name=body.name,
            created_at=now,
            last_active_at=now,
            expires_minutes=minutes,
            memory_limit=body.memory_limit or "1g",
        )
        workdir = self.workdir(stored.id)
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        await self.repo.insert(owner, stored)
        try:
            for file_id in file_ids:
                await self._copy_file(owner, stored.id, file_id, f"{param}file_ids")
        except BaseException:
            await self._remove(owner, stored.id)
            raise
        # A container is one code interpreter session, as OpenAI counts them.
        await record_usage(UsageEntry("code_interpreter_sessions", ""))
        return container_object(stored)

    async def check_files(self, owner: str, file_ids: Sequence[str], *, param: str) -> None:
        """Every id is one of the owner's Files: else a 404 naming ``param[i]`` (checked
        before anything is made)."""
        for index, file_id in enumerate(file_ids):
            try:
                await self.files.get(owner, file_id)
            except NotFoundError:
                raise NotFoundError(
                    f"No such File object: {file_id}", param=f"{param}[{index}]"
                ) from None

    async def get(self, owner: str, container_id: str) -> ContainerRetrieveResponse:
        return container_object(await self._stored(owner, container_id))

    async def list_containers(
        self, owner: str, query: PageQuery = FIRST_PAGE, *, name: str | None = None
    ) -> ContainerList:
        page = await self.repo.page(owner, int(time.time()), query, name=name)
        data = [container_object(stored) for stored in page.data]
        return cursor_list(ContainerList, data, page.has_more)

    async def delete(self, owner: str, container_id: str) -> dict[str, Any]:
        await self._stored(owner, container_id)
        if not await self._remove(owner, container_id):
            raise missing(container_id)
        return {"id": container_id, "object": "container.deleted", "deleted": True}

    async def sweep(self) -> int:
        """Remove expired containers (rows, directories, kernels); how many went."""
        removed = 0
        while gone := await self.repo.take_expired(int(time.time())):
            for container_id in gone:
                await self._forget(container_id)
            removed += len(gone)
        return removed + await self.sandboxes.reap()

    async def discard_orphans(self) -> int:
        """Remove working directories that no container row owns (a crash mid-delete)."""
        if not self.root.is_dir():
            return 0
        known = await self.repo.all_ids()
        orphans = [p for p in self.root.iterdir() if p.name not in known]
        for path in orphans:
            await asyncio.to_thread(shutil.rmtree, path, True)
        return len(orphans)

    # -- running code -----------------------------------------------------------------

    async def run(
        self, owner: str, container_id: str, code: str
    ) -> tuple[Execution, list[StoredContainerFile]]:
        """Run ``code`` in the container's kernel; the outcome and the files it wrote."""
        stored = await self._stored(owner, container_id)
        await self.repo.touch(container_id, int(time.time()))
        workdir = self.workdir(container_id)
        before = await asyncio.to_thread(dirs.scan, workdir)
        result = await self.sandboxes.execute(
            container_id, workdir, code, memory_bytes=MEMORY_LIMITS[stored.memory_limit]
        )
        after = await asyncio.to_thread(dirs.scan, workdir)
        written: list[StoredContainerFile] = []
        for path, seen in after.items():
            if before.get(path) != seen:
                written.append(await self._record(container_id, path, seen.size, "assistant"))
        removed = set(before) - set(after)
        if removed:  # the code deleted them: they are no longer the container's files
            rows = await self.repo.files(container_id)
            await self.repo.delete_files(container_id, [f.id for f in rows if f.path in removed])
        await self.repo.touch(container_id, int(time.time()))
        return result, written

    async def ensure(
        self, owner: str, container_id: str, *, param: str
    ) -> ContainerRetrieveResponse:
        """The container, or a 400 naming ``param`` (a tool's container that is unknown,
        another key's, or expired)."""
        try:
            return await self.get(owner, container_id)
        except NotFoundError:
            raise InvalidRequestError(
                f"Container '{container_id}' does not exist or has expired.",
                param=param,
                code="invalid_value",
            ) from None

    # -- files ------------------------------------------------------------------------

    async def add_upload(
        self, owner: str, container_id: str, filename: str, data: BinaryIO
    ) -> FileRetrieveResponse:
        """Store uploaded bytes as a new file of the container."""
        await self._stored(owner, container_id)
        size = known_size(data)

        def chunks() -> AsyncIterator[bytes]:
            async def read() -> AsyncIterator[bytes]:
                while chunk := await asyncio.to_thread(data.read, 1 << 20):
                    yield chunk

            return read()

        stored = await self._write(owner, container_id, filename, chunks(), "file", size)
        await self.repo.touch(container_id, int(time.time()))
        return file_object(stored)

    async def add_file(self, owner: str, container_id: str, file_id: str) -> FileRetrieveResponse:
        """Copy one of the owner's Files into the container."""
        await self._stored(owner, container_id)
        stored = await self._copy_file(owner, container_id, file_id, "file_id")
        await self.repo.touch(container_id, int(time.time()))
        return file_object(stored)

    async def list_files(
        self, owner: str, container_id: str, query: PageQuery
    ) -> ContainerFileList:
        await self._stored(owner, container_id)
        page = await self.repo.file_page(container_id, query)
        data = [file_object(stored) for stored in page.data]
        return cursor_list(ContainerFileList, data, page.has_more)

    async def get_file(self, owner: str, container_id: str, file_id: str) -> FileRetrieveResponse:
        return file_object(await self._stored_file(owner, container_id, file_id))

    async def delete_file(self, owner: str, container_id: str, file_id: str) -> dict[str, Any]:
        stored = await self._stored_file(owner, container_id, file_id)
        await asyncio.to_thread(dirs.remove_file, self.workdir(container_id), stored.path)
        await self.repo.delete_files(container_id, [file_id])
        return {"id": file_id, "object": "container.file.deleted", "deleted": True}

    async def file_content(
        self, owner: str, container_id: str, file_id: str
    ) -> tuple[int, AsyncIterator[bytes]]:
        """The file's size now and its bytes (a file the code removed is a 404)."""
        stored = await self._stored_file(owner, container_id, file_id)
        opened = await asyncio.to_thread(dirs.open_file, self.workdir(container_id), stored.path)
        if opened is None:
            raise NotFoundError(f"No such Container File object: {file_id}", param="file_id")
        handle, size = opened
        return size, dirs.read_chunks(handle, size)

    # -- inside -----------------------------------------------------------------------

    async def _stored(self, owner: str, container_id: str) -> StoredContainer:
        stored = await self.repo.get(owner, container_id, int(time.time()))
        return found(stored, missing(container_id))

    async def _stored_file(
        self, owner: str, container_id: str, file_id: str
    ) -> StoredContainerFile:
        await self._stored(owner, container_id)
        stored = await self.repo.get_file(container_id, file_id)
        if stored is None:
            raise NotFoundError(f"No such Container File object: {file_id}", param="file_id")
        return stored

    async def _copy_file(
        self, owner: str, container_id: str, file_id: str, param: str
    ) -> StoredContainerFile:
        info, chunks = await self.files.stream(owner, file_id)
        return await self._write(owner, container_id, info.filename, chunks, param, info.bytes)

    async def _write(
        self,
        owner: str,
        container_id: str,
        filename: str,
        chunks: AsyncIterator[bytes],
        param: str,
        size_hint: int | None,
    ) -> StoredContainerFile:
        """A client's bytes as a new file: within the file limit and the owner's storage
        total (``param`` names the field in the 400 past it)."""

        def too_large() -> OasisError:
            return PayloadTooLargeError(
                f"File too large: the limit is {self.max_file_bytes} bytes.",
                param="file",
                code="file_too_large",
            )

        quota = self.files.quota
        limit, refuse = await write_limit(
            quota, owner, param, self.max_file_bytes, too_large, size_hint
        )
        workdir = self.workdir(container_id)
        name = await asyncio.to_thread(dirs.unique_name, workdir, dirs.safe_name(filename))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = await asyncio.to_thread(os.open, workdir / name, flags, 0o644)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise refuse()
                    await asyncio.to_thread(out.write, chunk)
            cap = cap_of(quota, owner)
            return await self._record(container_id, dirs.inside_path(name), size, "user", cap)
        except BaseException as exc:
            await asyncio.to_thread(dirs.remove_file, workdir, dirs.inside_path(name))
            if isinstance(exc, StorageFull):
                raise refused(exc, param) from None
            raise

    async def _record(
        self,
        container_id: str,
        path: str,
        size: int,
        source: str,
        cap: StorageCap | None = None,
    ) -> StoredContainerFile:
        stored = StoredContainerFile(
            id=new_id("cfile"),
            container_id=container_id,
            created_at=int(time.time()),
            bytes=size,
            path=path,
            source=source,
        )
        return await self.repo.put_file(stored, cap)

    async def _remove(self, owner: str, container_id: str) -> bool:
        removed = await self.repo.delete(owner, container_id)
        await self._forget(container_id)
        return removed

    async def _forget(self, container_id: str) -> None:
        await self.sandboxes.discard(container_id)
        await asyncio.to_thread(shutil.rmtree, self.workdir(container_id), True)
