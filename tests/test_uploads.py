"""The Uploads API end to end: parts in any order become one File in ``part_ids`` order,
``md5`` is checked when given, and every wrong step is a 4xx naming its ``param``."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types import Upload

from oasis.owners import OwnerIds
from oasis.services.files import FilesService
from oasis.services.uploads import UploadsService
from oasis.store import Store
from oasis.store.blobs import BlobStore
from oasis.store.db import open_database
from oasis.wire.files import UploadCreateRequest
from tests.conftest import FILES_KEYS, FILES_LIMITS, files_sdk
from tests.server import Server

PART_LIMIT = FILES_LIMITS["max_upload_part_bytes"]
DATA = bytes(range(256)) * 12  # 3072 bytes: more than one part may hold


@pytest.fixture
def sdk(files_client: OpenAI) -> OpenAI:
    return files_client


@pytest.fixture
def raw(files_http: httpx.Client) -> httpx.Client:
    return files_http


def _start(sdk: OpenAI, size: int = len(DATA), **extra: object) -> Upload:
    return sdk.uploads.create(
        bytes=size,
        filename="big.bin",
        mime_type="application/octet-stream",
        purpose="assistants",
        **extra,  # type: ignore[arg-type]
    )


def test_parts_in_any_order_join_by_part_ids(sdk: OpenAI) -> None:
    upload = _start(sdk, expires_after={"anchor": "created_at", "seconds": 7200})
    assert (upload.object, upload.status, upload.bytes, upload.file) == (
        "upload",
        "pending",
        len(DATA),
        None,
    )
    assert upload.expires_at == upload.created_at + 3600
    pieces = [DATA[:1000], DATA[1000:2000], DATA[2000:]]
    # Sent last piece first: only part_ids at completion fixes the order.
    parts = {i: sdk.uploads.parts.create(upload.id, data=pieces[i]) for i in (2, 0, 1)}
    assert all(p.object == "upload.part" and p.upload_id == upload.id for p in parts.values())

    done = sdk.uploads.complete(
        upload.id,
        part_ids=[parts[0].id, parts[1].id, parts[2].id],
        md5=hashlib.md5(DATA).hexdigest(),
    )
    assert done.status == "completed" and done.id == upload.id and done.file is not None
    file = done.file
    assert (file.filename, file.bytes, file.purpose) == ("big.bin", len(DATA), "assistants")
    assert file.expires_at == file.created_at + 7200  # the upload's expires_after
    assert sdk.files.retrieve(file.id) == file
    assert sdk.files.content(file.id).read() == DATA

    for call in (
        lambda: sdk.uploads.parts.create(upload.id, data=b"more"),
        lambda: sdk.uploads.complete(upload.id, part_ids=[parts[0].id]),
        lambda: sdk.uploads.cancel(upload.id),
    ):
        with pytest.raises(openai.BadRequestError) as err:
            call()
        assert "completed" in err.value.message


def test_wrong_md5_stores_nothing_and_can_be_retried(sdk: OpenAI) -> None:
    upload = _start(sdk, size=10)
    part = sdk.uploads.parts.create(upload.id, data=b"0123456789")
    before = {f.id for f in sdk.files.list(purpose="assistants")}
    with pytest.raises(openai.BadRequestError) as err:
        sdk.uploads.complete(upload.id, part_ids=[part.id], md5="0" * 32)
    assert err.value.param == "md5"
    assert {f.id for f in sdk.files.list(purpose="assistants")} == before
    done = sdk.uploads.complete(
        upload.id, part_ids=[part.id], md5=hashlib.md5(b"0123456789").hexdigest().upper()
    )
    assert done.file is not None and sdk.files.content(done.file.id).read() == b"0123456789"


def test_completion_mistakes_are_400_naming_the_param(sdk: OpenAI) -> None:
    upload = _start(sdk, size=8)
    first = sdk.uploads.parts.create(upload.id, data=b"abcd")
    second = sdk.uploads.parts.create(upload.id, data=b"efgh")
    elsewhere = _start(sdk, size=4)
    foreign = sdk.uploads.parts.create(elsewhere.id, data=b"wxyz")
    cases = [
        ([first.id], "part_ids"),  # 4 bytes, not 8
        ([first.id, first.id], "part_ids[1]"),
        ([first.id, "part_nope"], "part_ids[1]"),
        ([foreign.id, first.id], "part_ids[0]"),
    ]
    for part_ids, param in cases:
        with pytest.raises(openai.BadRequestError) as err:
            sdk.uploads.complete(upload.id, part_ids=part_ids)
        assert err.value.param == param, part_ids
    with pytest.raises(openai.BadRequestError) as err:
        sdk.uploads.complete(upload.id, part_ids=[])
    assert err.value.param == "part_ids"
    done = sdk.uploads.complete(upload.id, part_ids=[second.id, first.id])
    assert done.file is not None and sdk.files.content(done.file.id).read() == b"efghabcd"


def test_cancel(sdk: OpenAI) -> None:
    upload = _start(sdk, size=4)
    part = sdk.uploads.parts.create(upload.id, data=b"abcd")
    cancelled = sdk.uploads.cancel(upload.id)
    assert (cancelled.id, cancelled.status, cancelled.file) == (upload.id, "cancelled", None)
    for call in (
        lambda: sdk.uploads.parts.create(upload.id, data=b"more"),
        lambda: sdk.uploads.complete(upload.id, part_ids=[part.id]),
        lambda: sdk.uploads.cancel(upload.id),
    ):
        with pytest.raises(openai.BadRequestError) as err:
            call()
        assert "cancelled" in err.value.message and err.value.param == "upload_id"


def test_unknown_and_foreign_uploads_are_404(sdk: OpenAI, files_server: Server) -> None:
    mine = _start(sdk, size=4)
    with files_sdk(files_server, FILES_KEYS[1]) as other:
        for client, upload_id in ((sdk, "upload_nope"), (other, mine.id)):
            calls: list[tuple[Callable[..., object], dict[str, object]]] = [
                (client.uploads.parts.create, {"data": b"abcd"}),
                (client.uploads.complete, {"part_ids": ["part_x"]}),
                (client.uploads.cancel, {}),
            ]
            for call, arguments in calls:
                with pytest.raises(openai.NotFoundError) as err:
                    call(upload_id, **arguments)
                assert err.value.param == "upload_id" and upload_id in err.value.message
    assert sdk.uploads.cancel(mine.id).status == "cancelled"  # still the owner's, untouched


def test_size_limits_are_413(sdk: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        _start(sdk, size=FILES_LIMITS["max_upload_bytes"] + 1)
    assert err.value.status_code == 413 and err.value.param == "bytes"

    upload = _start(sdk, size=PART_LIMIT + 1)
    with pytest.raises(openai.APIStatusError) as err:
        sdk.uploads.parts.create(upload.id, data=b"x" * (PART_LIMIT + 1))
    assert err.value.status_code == 413 and err.value.param == "data"
    # Parts may not hold much more than the upload declared (room for one retried part).
    small = _start(sdk, size=1)
    sdk.uploads.parts.create(small.id, data=b"x")
    sdk.uploads.parts.create(small.id, data=b"x" * PART_LIMIT)
    with pytest.raises(openai.BadRequestError) as err:
        sdk.uploads.parts.create(small.id, data=b"x")
    assert err.value.param == "data"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"purpose": "training"}, "purpose"),
        ({"bytes": -1}, "bytes"),
        ({"filename": None}, "filename"),
        ({"mime_type": None}, "mime_type"),
        ({"expires_after": {"anchor": "created_at", "seconds": 10}}, "expires_after.seconds"),
    ],
)
def test_bad_create_is_400(raw: httpx.Client, change: dict[str, object], param: str) -> None:
    body: dict[str, object] = {
        "bytes": 4,
        "filename": "a.txt",
        "mime_type": "text/plain",
        "purpose": "assistants",
    }
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None}
    answer = raw.post("/uploads", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param


def test_cancel_and_delete_accept_empty_json_bodies(raw: httpx.Client, sdk: OpenAI) -> None:
    upload = _start(sdk, size=1)
    headers = {"Content-Type": "application/json"}
    answer = raw.post(f"/uploads/{upload.id}/cancel", content=b"", headers=headers)
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    file = sdk.files.create(file=("a", b"a"), purpose="user_data")
    answer = raw.request("DELETE", f"/files/{file.id}", content=b"", headers=headers)
    assert answer.status_code == 200 and answer.json()["deleted"] is True


def test_upload_file_chunked_helper(sdk: OpenAI, tmp_path: Path) -> None:
    done = sdk.uploads.upload_file_chunked(
        file=DATA,
        filename="chunked.bin",
        bytes=len(DATA),
        mime_type="application/octet-stream",
        purpose="batch",
        part_size=1024,
        md5=hashlib.md5(DATA).hexdigest(),
    )
    assert done.status == "completed" and done.file is not None
    assert sdk.files.content(done.file.id).read() == DATA

    path = tmp_path / "on-disk.bin"
    path.write_bytes(DATA[::-1])
    from_path = sdk.uploads.upload_file_chunked(
        file=path, mime_type="application/octet-stream", purpose="user_data", part_size=2000
    )
    assert from_path.file is not None and from_path.filename == "on-disk.bin"
    assert sdk.files.content(from_path.file.id).read() == DATA[::-1]


def test_expired_upload_takes_no_parts(files_server: Server, sdk: OpenAI) -> None:
    upload = _start(sdk, size=4)
    with sqlite3.connect(files_server.data_dir / "oasis.db") as db:
        db.execute("UPDATE uploads SET expires_at = ? WHERE id = ?", (int(time.time()), upload.id))
    with pytest.raises(openai.BadRequestError) as err:
        sdk.uploads.parts.create(upload.id, data=b"abcd")
    assert "expired" in err.value.message


def test_sweep_expires_uploads_and_drops_their_parts(tmp_path: Path) -> None:
    """Unit: the sweep marks a stale pending upload expired and removes its parts' bytes."""

    async def run() -> None:
        owner_ids = OwnerIds(tmp_path)
        owner_ids.open()
        store = Store(await open_database(None, tmp_path, owner_ids))
        blobs = BlobStore(tmp_path / "blobs")
        files = FilesService(store.files, blobs.section("files"), max_file_bytes=100)
        parts = blobs.section("upload_parts")
        uploads = UploadsService(
            store.uploads, parts, files, max_upload_bytes=100, max_part_bytes=10
        )
        try:
            request = UploadCreateRequest(
                bytes=3, filename="a", mime_type="text/plain", purpose="assistants"
            )
            stale = await uploads.create("owner", request)
            fresh = await uploads.create("owner", request)
            await uploads.add_part("owner", stale.id, b"abc")
            kept = await uploads.add_part("owner", fresh.id, b"abc")
            assert await uploads.sweep() == 0
            async with store.engine.begin() as conn:
                await conn.exec_driver_sql(
                    "UPDATE uploads SET expires_at = 1 WHERE id = ?", (stale.id,)
                )
            assert await uploads.sweep() == 1
            assert list(parts.ids()) == [kept.id]
            row = await store.uploads.get("owner", stale.id)
            assert row is not None and row.status == "expired"
        finally:
            await store.close()

    asyncio.run(run())
