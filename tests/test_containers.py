"""``/v1/containers`` and their files, end to end through the strict SDK; owned by the key."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from oasis.errors import NotFoundError
from oasis.owners import OwnerIds
from oasis.sandbox import Sandboxes
from oasis.services.containers import ContainerService
from oasis.services.files import FilesService
from oasis.store import Store
from oasis.store.blobs import BlobStore
from oasis.store.containers import StoredContainer
from oasis.store.db import open_database
from oasis.wire.containers import ContainerCreateRequest
from tests.conftest import SANDBOX_KEYS
from tests.server import Server


@pytest.fixture(scope="module")
def raw(sandbox_server: Server) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {SANDBOX_KEYS[0]}"}
    with httpx.Client(base_url=sandbox_server.api_url, headers=headers, timeout=60) as client:
        yield client


def test_create_with_files_retrieve_list_and_delete(box_client: OpenAI) -> None:
    uploaded = box_client.files.create(
        file=("table.csv", io.BytesIO(b"a,b\n1,2\n")), purpose="user_data"
    )
    box = box_client.containers.create(
        name="analysis",
        file_ids=[uploaded.id],
        memory_limit="4g",
        expires_after={"anchor": "last_active_at", "minutes": 5},
    )
    assert box.id.startswith("cntr_") and box.object == "container"
    assert (box.name, box.memory_limit, box.status) == ("analysis", "4g", "running")
    assert box.expires_after is not None and box.expires_after.minutes == 5
    assert box_client.containers.retrieve(box.id).id == box.id
    assert box.id in [c.id for c in box_client.containers.list(name="analysis")]
    assert box.id not in [c.id for c in box_client.containers.list(name="nothing-called-so")]

    files = box_client.containers.files.list(box.id).data
    assert [(f.path, f.source, f.bytes) for f in files] == [("/mnt/data/table.csv", "user", 8)]
    content = box_client.containers.files.content.retrieve(files[0].id, container_id=box.id)
    assert content.read() == b"a,b\n1,2\n"

    box_client.containers.delete(box.id)
    with pytest.raises(openai.NotFoundError):
        box_client.containers.retrieve(box.id)
    with pytest.raises(openai.NotFoundError):
        box_client.containers.files.list(box.id)


def test_files_by_upload_and_by_file_id(box_client: OpenAI) -> None:
    box = box_client.containers.create(name="files")
    up = box_client.containers.files.create(box.id, file=("notes.txt", io.BytesIO(b"hello")))
    assert (up.path, up.source, up.bytes, up.object) == (
        "/mnt/data/notes.txt",
        "user",
        5,
        "container.file",
    )
    stored = box_client.files.create(file=("notes.txt", io.BytesIO(b"again")), purpose="user_data")
    copied = box_client.containers.files.create(box.id, file_id=stored.id)
    assert copied.path == "/mnt/data/notes-2.txt"  # the name was taken: both are kept
    assert box_client.containers.files.retrieve(copied.id, container_id=box.id).bytes == 5
    listed = box_client.containers.files.list(box.id, order="asc")
    assert [f.id for f in listed.data] == [up.id, copied.id]
    page = box_client.containers.files.list(box.id, order="asc", limit=1)
    assert [f.id for f in page.data] == [up.id] and page.has_more

    box_client.containers.files.delete(copied.id, container_id=box.id)
    with pytest.raises(openai.NotFoundError):
        box_client.containers.files.retrieve(copied.id, container_id=box.id)
    with pytest.raises(openai.NotFoundError):
        box_client.containers.files.content.retrieve(copied.id, container_id=box.id)
    assert [f.id for f in box_client.containers.files.list(box.id).data] == [up.id]
    box_client.containers.delete(box.id)


def test_another_keys_container_is_not_found(box_client: OpenAI, other_box_client: OpenAI) -> None:
    box = box_client.containers.create(name="mine")
    up = box_client.containers.files.create(box.id, file=("secret.txt", io.BytesIO(b"s3cret")))
    assert box.id not in [c.id for c in other_box_client.containers.list()]
    for attempt in (
        lambda: other_box_client.containers.retrieve(box.id),
        lambda: other_box_client.containers.delete(box.id),
        lambda: other_box_client.containers.files.list(box.id),
        lambda: other_box_client.containers.files.retrieve(up.id, container_id=box.id),
        lambda: other_box_client.containers.files.content.retrieve(up.id, container_id=box.id),
        lambda: other_box_client.containers.files.create(box.id, file=("x", io.BytesIO(b"x"))),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert box_client.containers.retrieve(box.id).id == box.id  # untouched
    # Nor can the other key copy this key's File into a container of its own.
    mine = box_client.files.create(file=("f.txt", io.BytesIO(b"f")), purpose="user_data")
    theirs = other_box_client.containers.create(name="theirs")
    with pytest.raises(openai.NotFoundError):
        other_box_client.containers.files.create(theirs.id, file_id=mine.id)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": "x", "memory_limit": "2g"}, "memory_limit"),
        (
            {"name": "x", "expires_after": {"anchor": "created_at", "minutes": 5}},
            "expires_after.anchor",
        ),
        (
            {"name": "x", "expires_after": {"anchor": "last_active_at", "minutes": 0}},
            "expires_after.minutes",
        ),
        ({"name": "x", "file_ids": ["file-nope"]}, "file_ids[0]"),
        (
            {"name": "x", "network_policy": {"type": "allowlist", "allowed_domains": ["a.b"]}},
            "network_policy",
        ),
    ],
)
def test_bad_create_requests_name_the_field(
    raw: httpx.Client, body: dict[str, object], param: str
) -> None:
    response = raw.post("/containers", json=body)
    assert response.status_code in {400, 404}, response.text
    assert response.json()["error"]["param"] == param


def test_a_file_request_needs_bytes_or_a_file_id(raw: httpx.Client, box_client: OpenAI) -> None:
    box = box_client.containers.create(name="empty")
    response = raw.post(f"/containers/{box.id}/files", json={})
    assert response.status_code == 400 and response.json()["error"]["param"] == "file_id"
    too_big = raw.post(
        f"/containers/{box.id}/files", files={"file": ("big.bin", b"0" * ((1 << 20) + 1))}
    )
    assert too_big.status_code == 413, too_big.text
    assert box_client.containers.files.list(box.id).data == []  # nothing half-written stays


def test_an_idle_container_expires_and_the_sweep_removes_it(tmp_path: Path) -> None:
    """In process, on the real database and services: a container last used longer ago than
    its ``expires_after`` is invisible at once, and the housekeeping sweep removes its row,
    its directory and its kernel."""

    async def run() -> None:
        owner_ids = OwnerIds(tmp_path)
        owner_ids.open()
        engine = await open_database(None, tmp_path, owner_ids)
        try:
            store = Store(engine)
            files = FilesService(store.files, BlobStore(tmp_path / "blobs"), max_file_bytes=1024)
            service = ContainerService(
                store.containers, files, Sandboxes(), tmp_path / "containers", max_file_bytes=1024
            )
            live = await service.create("owner", ContainerCreateRequest(name="live"))
            old = int(time.time()) - 3600
            stale = StoredContainer("cntr_stale", "stale", old, old, 1, "1g")
            await store.containers.insert("owner", stale)
            service.workdir(stale.id).mkdir(parents=True)
            with pytest.raises(NotFoundError):
                await service.get("owner", stale.id)
            assert [c.id for c in (await service.list_containers("owner")).data] == [live.id]
            assert await service.sweep() == 1
            assert not service.workdir(stale.id).exists()
            assert await store.containers.all_ids() == {live.id}
            assert (await service.get("owner", live.id)).id == live.id
        finally:
            await engine.dispose()

    asyncio.run(run())
