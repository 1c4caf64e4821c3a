"""Unit: the blob store keeps payloads under its directory, whole or not at all."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from oasis.store.blobs import BlobNotFoundError, BlobStore


def test_put_read_open_delete(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs").section("files")
    given = blobs.put(b"hello", "file-abc.txt")
    assert given == "file-abc.txt"
    fresh = blobs.put(io.BytesIO(b"x" * 3_000_000))  # a stream, copied to its end
    assert fresh != given and len(fresh) >= 43
    assert blobs.read(given) == b"hello"
    with blobs.open(fresh) as stream:
        assert stream.read(5) == b"xxxxx"
    assert blobs.path(fresh) == tmp_path / "blobs" / "files" / fresh
    assert sorted(blobs.ids()) == sorted([given, fresh])
    blobs.put(b"replaced", given)
    assert blobs.read(given) == b"replaced"
    assert blobs.delete(given) and not blobs.delete(given)
    with pytest.raises(BlobNotFoundError):
        blobs.read(given)
    with pytest.raises(BlobNotFoundError):
        blobs.modified(given)
    assert list(blobs.ids()) == [fresh]


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "../outside", "a/b", "/etc/passwd", ".hidden", "a\\b", "x" * 201]
)
def test_ids_cannot_leave_the_directory(tmp_path: Path, bad: str) -> None:
    (tmp_path / "outside").write_bytes(b"secret")
    blobs = BlobStore(tmp_path / "blobs")
    blobs.put(b"inside", "inside")
    with pytest.raises(ValueError):
        blobs.put(b"x", bad)
    with pytest.raises(ValueError):
        blobs.section(bad)
    for look in (blobs.read, blobs.path, blobs.open, blobs.modified):
        with pytest.raises(BlobNotFoundError):
            look(bad)
    assert not blobs.delete(bad)
    assert (tmp_path / "outside").read_bytes() == b"secret"
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == ["inside"]


class _Broken(io.RawIOBase):
    """A stream that fails part-way, as a client hanging up during an upload."""

    def __init__(self) -> None:
        self.sent = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.sent:
            raise OSError("connection lost")
        self.sent = len(buffer)
        buffer[:] = b"y" * len(buffer)
        return len(buffer)


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    blobs.put(b"old", "kept")
    with pytest.raises(OSError):
        blobs.put(io.BufferedReader(_Broken()), "kept")
    with pytest.raises(OSError):
        blobs.put(io.BufferedReader(_Broken()), "new")
    assert blobs.read("kept") == b"old"  # the old blob stays whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]  # no temporary left


def test_a_streamed_write_appears_only_on_commit(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    with blobs.writer("streamed") as out:
        out.write(b"ab")
        out.write(b"cd")
        assert out.size == 4 and list(blobs.ids()) == []  # not there before the commit
        assert out.commit() == "streamed"
    assert blobs.read("streamed") == b"abcd"
    with pytest.raises(RuntimeError), blobs.writer("abandoned") as out:
        out.write(b"half")
        raise RuntimeError("the client went away")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed"]  # no temporary left


def test_orphans_without_rows_are_discarded_once_old(tmp_path: Path) -> None:
    import asyncio

    from oasis.services.blob_writes import discard_orphans

    blobs = BlobStore(tmp_path)
    for name in ("owned", "orphan", "fresh-orphan"):
        blobs.put(b"x", name)
    hour_ago = time.time() - 3601
    for name in ("owned", "orphan"):
        os.utime(tmp_path / name, (hour_ago, hour_ago))

    async def known(ids: list[str]) -> set[str]:
        return {"owned"} & set(ids)

    assert asyncio.run(discard_orphans(blobs, known, 3600)) == 1
    assert sorted(blobs.ids()) == ["fresh-orphan", "owned"]


def test_partial_writes_left_by_a_crash_are_discarded_once_old(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    blobs.put(b"whole", "kept")
    old = tmp_path / ".lost.0123abcd.tmp"
    recent = tmp_path / ".writing.89abcdef.tmp"
    for path in (old, recent):
        path.write_bytes(b"half")
    hour_ago = time.time() - 3601
    os.utime(old, (hour_ago, hour_ago))
    os.utime(tmp_path / "kept", (hour_ago, hour_ago))
    assert blobs.discard_partial(3600) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [recent.name, "kept"]
    assert list(blobs.ids()) == ["kept"]


def test_pictures_from_before_the_blob_store_keep_their_urls(tmp_path: Path) -> None:
    from oasis.services.image_files import ImageFileStore, adopt_legacy_directory

    name = "img_" + "B" * 43 + ".png"
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / name).write_bytes(b"picture")
    pictures = BlobStore(tmp_path / "blobs").section("images")
    adopt_legacy_directory(tmp_path / "images", pictures)
    assert ImageFileStore(pictures).path(name).read_bytes() == b"picture"
    assert not (tmp_path / "images").exists()
    adopt_legacy_directory(tmp_path / "images", pictures)  # nothing left to move: no-op
