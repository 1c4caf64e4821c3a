"""The total a project may store (``[files] max_total_bytes``) across Files, Uploads parts
and container files, with the SDK: a write past it is a 400 naming its field, refused
before its bytes are stored; another key's project has its own total; deleting frees room.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI

from tests.server import Server, sdk_for, start_server

KEYS = ("sk-cap-one", "sk-cap-two")
TOTAL = 4000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("oasis-cap"),
        config={"preload": [], "max_file_bytes": 3000, "max_upload_part_bytes": 3000},
        # Set through the environment, as an operator may.
        env={"OASIS_API_KEYS": ",".join(KEYS), "OASIS_FILES_MAX_TOTAL_BYTES": str(TOTAL)},
    )
    yield srv
    srv.stop()


@pytest.fixture
def sdk(server: Server) -> Iterator[OpenAI]:
    with sdk_for(server, KEYS[0]) as client:
        yield client
        # Each test starts with nothing stored.
        for stored in client.files.list():
            client.files.delete(stored.id)
        for box in client.containers.list():
            client.containers.delete(box.id)


def _upload(sdk: OpenAI, size: int, name: str = "a.bin") -> str:
    return sdk.files.create(file=(name, io.BytesIO(b"x" * size)), purpose="user_data").id


def _refused(call: object, param: str) -> None:
    assert isinstance(call, openai.BadRequestError), call
    assert call.status_code == 400
    assert call.code == "storage_limit_exceeded"
    assert call.param == param


def _blobs(server: Server) -> int:
    """How many blobs (files and upload parts) the server holds on disk."""
    root = server.data_dir / "blobs"
    return sum(1 for path in root.rglob("*") if path.is_file() and not path.name.startswith("."))


def test_files_past_the_total_are_refused_and_deleting_frees_room(
    sdk: OpenAI, server: Server
) -> None:
    first = _upload(sdk, 2500)
    blobs = _blobs(server)
    with pytest.raises(openai.BadRequestError) as refused:
        _upload(sdk, 2000)  # 4500 in all
    _refused(refused.value, "file")
    assert _blobs(server) == blobs  # nothing of it was stored
    assert [f.id for f in sdk.files.list()] == [first]
    _upload(sdk, 1500)  # exactly the total
    with pytest.raises(openai.BadRequestError) as full:
        _upload(sdk, 1)
    _refused(full.value, "file")
    sdk.files.delete(first)
    _upload(sdk, 2500)  # room again


def test_another_project_has_its_own_total(sdk: OpenAI, server: Server) -> None:
    _upload(sdk, 3000)
    with sdk_for(server, KEYS[1]) as other:
        mine = other.files.create(file=("b.bin", io.BytesIO(b"y" * 3000)), purpose="user_data")
        other.files.delete(mine.id)


def test_upload_parts_count_and_are_refused_naming_data(sdk: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as declared:
        sdk.uploads.create(
            bytes=TOTAL + 1, filename="big.bin", mime_type="text/plain", purpose="assistants"
        )
    _refused(declared.value, "bytes")
    _upload(sdk, 1000)
    upload = sdk.uploads.create(
        bytes=3000, filename="big.bin", mime_type="text/plain", purpose="assistants"
    )
    part = sdk.uploads.parts.create(upload.id, data=b"p" * 2000)
    # The parts count: 1000 + 2000 stored, so a file of 1500 no longer fits.
    with pytest.raises(openai.BadRequestError) as files_full:
        _upload(sdk, 1500)
    _refused(files_full.value, "file")
    with pytest.raises(openai.BadRequestError) as parts_full:
        sdk.uploads.parts.create(upload.id, data=b"q" * 1001)  # 4001 in all
    _refused(parts_full.value, "data")
    last = sdk.uploads.parts.create(upload.id, data=b"q" * 1000)  # 4000: exactly the total
    # Completing turns the parts into a file of the same size: it fits.
    done = sdk.uploads.complete(upload.id, part_ids=[part.id, last.id])
    assert done.status == "completed" and done.file is not None
    assert done.file.bytes == 3000


def test_container_files_count_and_are_refused_naming_their_field(sdk: OpenAI) -> None:
    source = _upload(sdk, 1500)
    box = sdk.containers.create(name="cap", file_ids=[source])  # 3000 stored now
    with pytest.raises(openai.BadRequestError) as upload_full:
        sdk.containers.files.create(box.id, file=("c.bin", io.BytesIO(b"c" * 1001)))
    _refused(upload_full.value, "file")
    with pytest.raises(openai.BadRequestError) as copy_full:
        sdk.containers.files.create(box.id, file_id=source)
    _refused(copy_full.value, "file_id")
    with pytest.raises(openai.BadRequestError) as create_full:
        sdk.containers.create(name="cap-2", file_ids=[source])
    _refused(create_full.value, "file_ids")
    added = sdk.containers.files.create(box.id, file=("d.bin", io.BytesIO(b"d" * 1000)))
    assert added.bytes == 1000
    # Deleting a container file frees its room.
    sdk.containers.files.delete(added.id, container_id=box.id)
    sdk.containers.files.create(box.id, file=("e.bin", io.BytesIO(b"e" * 1000)))
