"""Vector stores: the objects of ``/v1/vector_stores…``, owner-scoped, built from the store.

Attaching a file records it ``in_progress`` and queues it for :mod:`oasis.services.ingestion`;
every count and status is read back from the database, so what a client sees is exact.
"""

from __future__ import annotations

import time
from typing import Any

from openai.types import VectorStore, VectorStoreDeleted, VectorStoreSearchResponse
from openai.types.vector_stores import (
    FileContentResponse,
    VectorStoreFile,
    VectorStoreFileBatch,
    VectorStoreFileDeleted,
)

from oasis.errors import InvalidRequestError, NotFoundError, found
from oasis.ids import new_id
from oasis.retrieval.filters import check_filter
from oasis.retrieval.parsing import DocumentError, extract_text
from oasis.retrieval.ranking import Ranking, ranking_of
from oasis.services.embeddings import EmbeddingService
from oasis.services.ingestion import FileSource, Ingestion
from oasis.services.leases import Leases
from oasis.services.vector_search import Hit, VectorSearch, rewrite
from oasis.store.pagination import PageQuery
from oasis.store.vector_stores import StoredBatch, StoredFile, StoredStore, VectorStoreRepository
from oasis.wire.lists import CursorList, cursor_list
from oasis.wire.vector_stores import (
    FileBatchCreateRequest,
    SearchRequest,
    VectorStoreCreateRequest,
    VectorStoreUpdateRequest,
    check_attributes,
    check_chunking,
    check_expires_after,
)

DAY = 86_400
# ``last_active_at`` moves in steps of a minute: expiry counts in days, and a write per
# search would serialize searches on SQLite's one writer.
ACTIVITY_STEP = 60


def _store_missing(store_id: str) -> NotFoundError:
    return NotFoundError(f"No vector store found with id '{store_id}'.", param="vector_store_id")


def _expires_at(stored: StoredStore) -> int | None:
    if stored.expires_after is None or stored.last_active_at is None:
        return None
    return stored.last_active_at + int(stored.expires_after["days"]) * DAY


def store_object(stored: StoredStore, now: int | None = None) -> VectorStore:
    """The wire object; ``status`` is derived from the counts and the expiry."""
    expires_at = _expires_at(stored)
    now = int(time.time()) if now is None else now
    if expires_at is not None and expires_at <= now:
        status = "expired"
    elif stored.counts.in_progress:
        status = "in_progress"
    else:
        status = "completed"
    return VectorStore(
        id=stored.id,
        object="vector_store",
        created_at=stored.created_at,
        name=stored.name,
        usage_bytes=stored.usage_bytes,
        file_counts=stored.counts.as_dict(),  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        last_active_at=stored.last_active_at,
        metadata=stored.metadata,
        expires_after=stored.expires_after,  # type: ignore[arg-type]
        expires_at=expires_at,
    )


def file_object(stored: StoredFile) -> VectorStoreFile:
    return VectorStoreFile(
        id=stored.file_id,
        object="vector_store.file",
        usage_bytes=stored.usage_bytes,
        created_at=stored.created_at,
        vector_store_id=stored.vector_store_id,
        status=stored.status,  # type: ignore[arg-type]
        last_error=stored.last_error,  # type: ignore[arg-type]
        chunking_strategy=stored.chunking,  # type: ignore[arg-type]
        attributes=stored.attributes,
    )


def batch_object(stored: StoredBatch) -> VectorStoreFileBatch:
    return VectorStoreFileBatch(
        id=stored.id,
        object="vector_store.files_batch",
        created_at=stored.created_at,
        vector_store_id=stored.vector_store_id,
        status=stored.status,  # type: ignore[arg-type]
        file_counts=stored.counts.as_dict(),  # type: ignore[arg-type]
    )


class VectorStoreService:
    """Stores, their files and batches, and search; see the module docstring."""

    def __init__(
        self,
        repo: VectorStoreRepository,
        files: FileSource,
        ingestion: Ingestion,
        search_engine: VectorSearch,
    ) -> None:
        self.repo = repo
        self.files = files
        self.ingestion = ingestion
        self.engine = search_engine

    @classmethod
    def build(
        cls,
        repo: VectorStoreRepository,
        files: FileSource,
        embeddings: EmbeddingService,
        model: str | None,
        leases: Leases | None = None,
    ) -> VectorStoreService:
        """The service with its ingestion worker and search, all on ``model``'s vectors."""
        return cls(
            repo,
            files,
            Ingestion(repo, files, embeddings, model, leases),
            VectorSearch(repo, embeddings, model),
        )

    # -- stores -----------------------------------------------------------------------

    async def _store(self, owner: str, store_id: str) -> StoredStore:
        return found(await self.repo.get(owner, store_id), _store_missing(store_id))

    async def create(self, owner: str, request: VectorStoreCreateRequest) -> VectorStore:
        chunking = check_chunking(request.chunking_strategy)
        expires_after = check_expires_after(request.expires_after)
        for i, file_id in enumerate(request.file_ids or []):
            await self._file_name(owner, file_id, f"file_ids[{i}]")
        store_id = new_id("vs")
        await self.repo.create(
            owner,
            store_id,
            name=request.name or "",
            metadata=request.metadata or {},
            expires_after=expires_after,
            created_at=int(time.time()),
        )
        for file_id in request.file_ids or []:
            await self._attach(owner, store_id, file_id, None, chunking, None)
        return store_object(await self._store(owner, store_id))

    async def retrieve(self, owner: str, store_id: str) -> VectorStore:
        return store_object(await self._store(owner, store_id))

    async def update(
        self, owner: str, store_id: str, request: VectorStoreUpdateRequest
    ) -> VectorStore:
        await self._store(owner, store_id)
        values: dict[str, Any] = {}
        given = request.model_fields_set
        if "name" in given:
            values["name"] = request.name or ""
        if "metadata" in given:
            values["metadata"] = request.metadata or {}
        if "expires_after" in given:
            values["expires_after"] = check_expires_after(request.expires_after)
        if values:
            await self.repo.update(owner, store_id, **values)
        return store_object(await self._store(owner, store_id))

    async def list_stores(self, owner: str, query: PageQuery) -> CursorList[VectorStore]:
        page = await self.repo.page(owner, query)
        data = [store_object(s) for s in page.data]
        return cursor_list(CursorList[VectorStore], data, page.has_more)

    async def delete(self, owner: str, store_id: str) -> VectorStoreDeleted:
        if not await self.repo.delete(owner, store_id):
            raise _store_missing(store_id)
        self.engine.forget(store_id)
        return VectorStoreDeleted(id=store_id, object="vector_store.deleted", deleted=True)

    # -- files ------------------------------------------------------------------------

    async def _file_name(self, owner: str, file_id: str, param: str) -> str:
        try:
            info = await self.files.get(owner, file_id)
        except NotFoundError as exc:
            raise NotFoundError(f"No file found with id '{file_id}'.", param=param) from exc
        return str(getattr(info, "filename", "") or file_id)

    async def _attach(
        self,
        owner: str,
        store_id: str,
        file_id: str,
        attributes: dict[str, Any] | None,
        chunking: dict[str, Any],
        batch_id: str | None,
        param: str = "file_id",
    ) -> StoredFile:
        filename = await self._file_name(owner, file_id, param)
        stored, added = await self.repo.add_file(
            owner,
            store_id,
            file_id,
            filename=filename,
            attributes=attributes,
            chunking=chunking,
            created_at=int(time.time()),
            batch_id=batch_id,
        )
        if added:
            self.ingestion.submit(owner, store_id, file_id)
        return stored

    async def create_file(
        self,
        owner: str,
        store_id: str,
        file_id: str,
        attributes: Any,
        chunking_strategy: Any,
    ) -> VectorStoreFile:
        await self._store(owner, store_id)
        attrs = check_attributes(attributes)
        chunking = check_chunking(chunking_strategy)
        return file_object(await self._attach(owner, store_id, file_id, attrs, chunking, None))

    async def _stored_file(self, owner: str, store_id: str, file_id: str) -> StoredFile:
        await self._store(owner, store_id)
        stored = await self.repo.file(owner, store_id, file_id)
        if stored is None:
            raise NotFoundError(
                f"No file with id '{file_id}' in vector store '{store_id}'.", param="file_id"
            )
        return stored

    async def retrieve_file(self, owner: str, store_id: str, file_id: str) -> VectorStoreFile:
        return file_object(await self._stored_file(owner, store_id, file_id))

    async def update_file(
        self, owner: str, store_id: str, file_id: str, attributes: Any
    ) -> VectorStoreFile:
        await self._stored_file(owner, store_id, file_id)
        await self.repo.set_attributes(owner, store_id, file_id, check_attributes(attributes))
        return file_object(await self._stored_file(owner, store_id, file_id))

    async def delete_file(self, owner: str, store_id: str, file_id: str) -> VectorStoreFileDeleted:
        await self._stored_file(owner, store_id, file_id)
        await self.repo.remove_file(owner, store_id, file_id)
        return VectorStoreFileDeleted(id=file_id, object="vector_store.file.deleted", deleted=True)

    async def list_files(
        self,
        owner: str,
        store_id: str,
        query: PageQuery,
        *,
        status: str | None,
        batch_id: str | None = None,
    ) -> CursorList[VectorStoreFile]:
        await self._store(owner, store_id)
        page = await self.repo.file_page(owner, store_id, query, status=status, batch_id=batch_id)
        data = [file_object(f) for f in page.data]
        return cursor_list(CursorList[VectorStoreFile], data, page.has_more)

    async def file_content(self, owner: str, store_id: str, file_id: str) -> dict[str, Any]:
        """The file's parsed text (empty until it is indexed)."""
        stored = await self._stored_file(owner, store_id, file_id)
        data: list[FileContentResponse] = []
        if stored.status == "completed":
            try:
                raw = await self.files.content(owner, file_id)
                text = extract_text(raw, stored.filename)
            except (NotFoundError, DocumentError):
                text = ""
            if text:
                data.append(FileContentResponse(type="text", text=text))
        return {
            "object": "vector_store.file_content.page",
            "data": [d.model_dump(mode="json") for d in data],
            "has_more": False,
            "next_page": None,
        }

    async def detach_everywhere(self, owner: str, file_id: str) -> None:
        """A File was deleted: it leaves every store (counts and usage follow)."""
        await self.repo.remove_file_everywhere(owner, file_id)

    # -- batches ----------------------------------------------------------------------

    async def create_batch(
        self, owner: str, store_id: str, request: FileBatchCreateRequest
    ) -> VectorStoreFileBatch:
        await self._store(owner, store_id)
        if request.file_ids is not None and request.files is not None:
            raise InvalidRequestError(
                "Give either 'file_ids' or 'files', not both.",
                param="files",
                code="mutually_exclusive_parameters",
            )
        entries: list[tuple[str, Any, Any, str]] = []
        if request.files is not None:
            for i, entry in enumerate(request.files):
                entries.append(
                    (
                        entry.file_id,
                        check_attributes(entry.attributes, f"files[{i}].attributes"),
                        check_chunking(entry.chunking_strategy, f"files[{i}].chunking_strategy"),
                        f"files[{i}].file_id",
                    )
                )
        elif request.file_ids:
            attributes = check_attributes(request.attributes)
            chunking = check_chunking(request.chunking_strategy)
            entries = [
                (f, attributes, chunking, f"file_ids[{i}]") for i, f in enumerate(request.file_ids)
            ]
        else:
            raise InvalidRequestError(
                "Missing required parameter: 'file_ids' (or 'files').",
                param="file_ids",
                code="missing_required_parameter",
            )
        for file_id, _, _, param in entries:
            await self._file_name(owner, file_id, param)
        batch_id = new_id("vsfb")
        await self.repo.create_batch(owner, store_id, batch_id, int(time.time()))
        for file_id, attributes, chunking, param in entries:
            await self._attach(owner, store_id, file_id, attributes, chunking, batch_id, param)
        return await self.retrieve_batch(owner, store_id, batch_id)

    async def retrieve_batch(
        self, owner: str, store_id: str, batch_id: str
    ) -> VectorStoreFileBatch:
        await self._store(owner, store_id)
        stored = await self.repo.batch(owner, store_id, batch_id)
        if stored is None:
            raise NotFoundError(
                f"No file batch found with id '{batch_id}' in vector store '{store_id}'.",
                param="batch_id",
            )
        return batch_object(stored)

    async def cancel_batch(self, owner: str, store_id: str, batch_id: str) -> VectorStoreFileBatch:
        await self.retrieve_batch(owner, store_id, batch_id)
        await self.repo.cancel_batch(owner, store_id, batch_id)
        return await self.retrieve_batch(owner, store_id, batch_id)

    # -- search -----------------------------------------------------------------------

    async def search(self, owner: str, store_id: str, request: SearchRequest) -> dict[str, Any]:
        queries = [request.query] if isinstance(request.query, str) else list(request.query)
        if not queries or not all(q.strip() for q in queries):
            raise InvalidRequestError(
                "Invalid value for 'query': every query needs some text.",
                param="query",
                code="invalid_value",
            )
        if request.rewrite_query:
            queries = [rewrite(q) for q in queries]
        filters = None if request.filters is None else check_filter(request.filters, "filters")
        options = request.ranking_options
        ranking = ranking_of(
            None if options is None else options.model_dump(exclude_none=True), "ranking_options"
        )
        hits = await self.search_store(
            owner,
            store_id,
            queries,
            filters=filters,
            limit=request.max_num_results,
            ranking=ranking,
            param="vector_store_id",
        )
        return {
            "object": "vector_store.search_results.page",
            "search_query": queries,
            "data": [result_object(h).model_dump(mode="json") for h in hits],
            "has_more": False,
            "next_page": None,
        }

    async def search_store(
        self,
        owner: str,
        store_id: str,
        queries: list[str],
        *,
        filters: dict[str, Any] | None,
        limit: int,
        ranking: Ranking,
        param: str,
    ) -> list[Hit]:
        """Search one store of ``owner`` (404 naming ``param`` when it is not theirs)."""
        stored = await self.repo.get(owner, store_id)
        if stored is None:
            raise NotFoundError(f"No vector store found with id '{store_id}'.", param=param)
        now = int(time.time())
        if store_object(stored, now).status == "expired":
            raise InvalidRequestError(
                f"The vector store '{store_id}' has expired.", param=param, code="expired"
            )
        if stored.last_active_at is None or now - stored.last_active_at >= ACTIVITY_STEP:
            await self.repo.update(owner, store_id, last_active_at=now)
        return await self.engine.search(
            store_id, stored.generation, queries, filters=filters, limit=limit, ranking=ranking
        )


def result_object(hit: Hit) -> VectorStoreSearchResponse:
    return VectorStoreSearchResponse(
        file_id=hit.chunk.file_id,
        filename=hit.chunk.filename,
        score=hit.score,
        attributes=hit.chunk.attributes,
        content=[{"type": "text", "text": hit.chunk.text}],  # type: ignore[list-item]
    )
