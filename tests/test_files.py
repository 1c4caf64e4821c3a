"""The Files API end to end: the official SDK (strict validation) against a real server.

Bytes come back exactly, lists page with ``after``/``limit``/``order``/``purpose``, every
mistake is a 4xx in the error envelope naming its ``param``, a file belongs to the key
that uploaded it, expired files vanish, and files survive a restart.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from oasis.owners import OwnerIds
from oasis.services.files import FilesService
from oasis.store import Store
from oasis.store.blobs import BlobStore
from oasis.store.db import open_database
from tests.conftest import FILES_KEYS, FILES_LIMITS, files_sdk
from tests.server import Server, start_server

ALL_BYTES = bytes(range(256)) * 3  # every byte value, so no text decoding can pass
BIG = os.urandom(3 * 1024 * 1024 + 17)
LIMIT = FILES_LIMITS["max_file_bytes"]


@pytest.fixture
def sdk(files_client: OpenAI) -> OpenAI:
    return files_client


@pytest.fixture
def raw(files_http: httpx.Client) -> httpx.Client:
    return files_http


@pytest.fixture(scope="module")
def other(files_server: Server) -> Iterator[OpenAI]:
    with files_sdk(files_server, FILES_KEYS[1]) as client:
        yield client


def test_upload_retrieve_content_delete(sdk: OpenAI) -> None:
    created = sdk.files.create(file=("data.bin", ALL_BYTES), purpose="assistants")
    assert created.object == "file" and created.id.startswith("file-")
    assert (created.filename, created.bytes, created.purpose) == ("data.bin", 768, "assistants")
    assert created.status == "processed" and created.expires_at is None
    assert abs(created.created_at - time.time()) < 60

    assert sdk.files.retrieve(created.id) == created
    assert sdk.files.content(created.id).read() == ALL_BYTES
    assert sdk.files.wait_for_processing(created.id).id == created.id

    deleted = sdk.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    for call in (sdk.files.retrieve, sdk.files.content, sdk.files.delete):
        with pytest.raises(openai.NotFoundError) as err:
            call(created.id)
        assert err.value.param == "id" and created.id in err.value.message


def test_text_content_and_json_accept(sdk: OpenAI, raw: httpx.Client) -> None:
    created = sdk.files.create(file=("notes.jsonl", b'{"a": 1}\n'), purpose="batch")
    assert created.purpose == "batch"
    # Batch input files expire after 30 days unless told otherwise, as OpenAI's do.
    assert created.expires_at == created.created_at + 30 * 24 * 3600
    # The bytes whatever Accept says: the SDK's content() asks for application/binary, the
    # deprecated retrieve_content() for application/json.
    for accept in ("application/binary", "application/json"):
        answer = raw.get(f"/files/{created.id}/content", headers={"Accept": accept})
        assert answer.status_code == 200 and answer.content == b'{"a": 1}\n'
        assert answer.headers["content-length"] == "9"


def test_expires_after_sets_expires_at(sdk: OpenAI) -> None:
    created = sdk.files.create(
        file=("short.txt", b"soon gone"),
        purpose="user_data",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert created.expires_at == created.created_at + 3600
    assert sdk.files.retrieve(created.id).expires_at == created.expires_at


def test_list_pages_by_cursor_order_and_purpose(files_server: Server) -> None:
    # A key of its own would do as well; the purpose filter isolates this test's files.
    with files_sdk(files_server, FILES_KEYS[1]) as client:
        made = [
            client.files.create(file=(f"f{i}.txt", f"file {i}".encode()), purpose="vision").id
            for i in range(5)
        ]
        newest_first = [f.id for f in client.files.list(purpose="vision", limit=2)]
        assert newest_first == made[::-1]  # the auto-pager followed `after` to the end

        page = client.files.list(purpose="vision", limit=2, order="asc")
        assert [f.id for f in page.data] == made[:2] and page.has_more is True
        rest = client.files.list(purpose="vision", order="asc", after=made[1])
        assert [f.id for f in rest.data] == made[2:] and rest.has_more is False

        assert client.files.list(purpose="fine-tune").data == []
        everything = {f.id for f in client.files.list()}
        assert set(made) <= everything


def test_empty_list_envelope(raw: httpx.Client) -> None:
    body = raw.get("/files", params={"purpose": "no-such-purpose"}).json()
    assert body == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


def test_another_keys_file_is_404(sdk: OpenAI, other: OpenAI) -> None:
    mine = sdk.files.create(file=("private.txt", b"mine"), purpose="user_data")
    for call in (other.files.retrieve, other.files.content, other.files.delete):
        with pytest.raises(openai.NotFoundError) as err:
            call(mine.id)
        assert err.value.param == "id"
    assert mine.id not in {f.id for f in other.files.list()}
    assert sdk.files.content(mine.id).read() == b"mine"  # untouched by the other key


def test_unknown_id_is_404_in_the_envelope(raw: httpx.Client) -> None:
    for method, path in (
        ("GET", "/files/file-nope"),
        ("GET", "/files/file-nope/content"),
        ("DELETE", "/files/file-nope"),
    ):
        answer = raw.request(method, path)
        assert answer.status_code == 404
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == "id"
        assert "file-nope" in error["message"]


@pytest.mark.parametrize(
    ("data", "files", "param"),
    [
        ({}, {"file": ("a.txt", b"x")}, "purpose"),
        ({"purpose": "fine-tuning"}, {"file": ("a.txt", b"x")}, "purpose"),
        ({"purpose": "assistants", "file": "not a file"}, {"other": ("a", b"x")}, "file"),
        (
            {"purpose": "assistants", "expires_after[anchor]": "last_active_at"},
            {"file": ("a.txt", b"x")},
            "expires_after.anchor",
        ),
        (
            {
                "purpose": "assistants",
                "expires_after[anchor]": "created_at",
                "expires_after[seconds]": "60",
            },
            {"file": ("a.txt", b"x")},
            "expires_after.seconds",
        ),
        (
            {
                "purpose": "assistants",
                "expires_after[anchor]": "created_at",
                "expires_after[seconds]": "2592001",
            },
            {"file": ("a.txt", b"x")},
            "expires_after.seconds",
        ),
    ],
)
def test_bad_uploads_are_400_naming_the_param(
    raw: httpx.Client,
    data: dict[str, str],
    files: dict[str, tuple[str, bytes]],
    param: str,
) -> None:
    answer = raw.post("/files", data=data, files=files)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param


def test_missing_file_is_400(raw: httpx.Client) -> None:
    body = b'--b0\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n--b0--\r\n'
    answer = raw.post(
        "/files", content=body, headers={"Content-Type": "multipart/form-data; boundary=b0"}
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["param"], error["code"]) == ("file", "missing_required_parameter")


def test_json_body_is_400(raw: httpx.Client) -> None:
    answer = raw.post("/files", json={"purpose": "assistants"})
    assert answer.status_code == 400
    assert "multipart/form-data" in answer.json()["error"]["message"]


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "10001"}, {"order": "up"}])
def test_bad_list_query_is_400(raw: httpx.Client, query: dict[str, str]) -> None:
    answer = raw.get("/files", params=query)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == next(iter(query))


def test_file_over_the_limit_is_413(sdk: OpenAI, raw: httpx.Client) -> None:
    assert sdk.files.create(file=("edge.bin", b"x" * LIMIT), purpose="assistants").bytes == LIMIT
    with pytest.raises(openai.APIStatusError) as err:
        sdk.files.create(file=("big.bin", b"x" * (LIMIT + 1)), purpose="assistants")
    assert err.value.status_code == 413
    assert err.value.param == "file" and str(LIMIT) in err.value.message

    # A declared length past the route's limit (file and multipart framing) is refused
    # before the body is read.
    answer = raw.post(
        "/files",
        content=b"z" * (LIMIT + 65 * 1024),
        headers={"Content-Type": "multipart/form-data; boundary=b0"},
    )
    assert answer.status_code == 413 and str(LIMIT + 64 * 1024) in answer.json()["error"]["message"]

    # A chunked body (no Content-Length) past the route's limit is cut off while it arrives.
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
    ).encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(200):
            yield b"y" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    answer = raw.post(
        "/files",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_evals_purpose_is_echoed(raw: httpx.Client) -> None:
    # The SDK's FileObject lacks `evals` (the API takes it and echoes it): raw HTTP here.
    answer = raw.post("/files", data={"purpose": "evals"}, files={"file": ("e.jsonl", b"{}\n")})
    assert answer.status_code == 200
    created = answer.json()
    assert created["purpose"] == "evals"
    listed = raw.get("/files", params={"purpose": "evals"}).json()["data"]
    assert [f["id"] for f in listed] == [created["id"]]
    # Gone again, so that strict clients listing every file in other tests can parse them.
    assert raw.delete(f"/files/{created['id']}").json()["deleted"] is True


def test_expired_file_vanishes(files_server: Server, sdk: OpenAI) -> None:
    created = sdk.files.create(
        file=("old.txt", b"old"),
        purpose="user_data",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    # An hour is too long to wait: move its expiry into the past in the server's database.
    with sqlite3.connect(files_server.data_dir / "oasis.db") as db:
        db.execute(
            "UPDATE files SET expires_at = ? WHERE id = ?", (int(time.time()) - 1, created.id)
        )
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        sdk.files.content(created.id)
    assert created.id not in {f.id for f in sdk.files.list(purpose="user_data")}


def test_sweep_reclaims_expired_bytes(tmp_path: Path) -> None:
    """Unit: the sweep removes an expired file's row and bytes and tells the hooks."""

    async def run() -> None:
        owner_ids = OwnerIds(tmp_path)
        owner_ids.open()
        store = Store(await open_database(None, tmp_path, owner_ids))
        blobs = BlobStore(tmp_path / "blobs").section("files")
        files = FilesService(store.files, blobs, max_file_bytes=100)
        told: list[tuple[str, str]] = []

        async def hook(owner: str, file_id: str) -> None:
            told.append((owner, file_id))

        files.on_delete.append(hook)
        try:
            doomed = await files.create("owner", "a.txt", "user_data", b"abc", 3600)
            kept = await files.create("owner", "b.txt", "user_data", b"def")
            assert await files.sweep() == 0
            async with store.engine.begin() as conn:
                await conn.exec_driver_sql(
                    "UPDATE files SET expires_at = 1 WHERE id = ?", (doomed.id,)
                )
            assert await files.sweep() == 1
            assert told == [("owner", doomed.id)]
            assert sorted(blobs.ids()) == [kept.id]
            assert await files.content("owner", kept.id) == b"def"
        finally:
            await store.close()

    asyncio.run(run())


def test_files_survive_a_restart(tmp_path: Path) -> None:
    env = {"OASIS_API_KEYS": FILES_KEYS[0]}
    # OASIS_TEST_DATABASE_URL=postgresql://… runs this on PostgreSQL instead.
    url = os.environ.get("OASIS_TEST_DATABASE_URL")
    args = ["--database-url", url] if url else []
    server = start_server(tmp_path / "data", config={"preload": []}, env=env, args=args)
    try:
        with files_sdk(server) as client:
            # Past the multipart parser's in-memory threshold (1 MB), so it is spooled to
            # disk and copied to the blob store in several chunks.
            created = client.files.create(file=("keep.bin", BIG), purpose="assistants")
    finally:
        server.stop()
    server = start_server(tmp_path / "data", config={"preload": []}, env=env, args=args)
    try:
        with files_sdk(server) as client:
            assert client.files.retrieve(created.id) == created
            assert client.files.content(created.id).read() == BIG
            assert [f.id for f in client.files.list()] == [created.id]
    finally:
        server.stop()
