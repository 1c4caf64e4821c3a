"""The sync between a container's directory on the host and its sandbox's ``/mnt/data``
(:mod:`oasis.sandbox.mirror`), on two plain directories: the sandbox side is reached through
a descriptor, as the server reaches the tmpfs. The disk limit itself (a real tmpfs in a
real sandbox) is tested in ``test_sandbox_escape.py``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from oasis.sandbox.mirror import Mirror


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[tuple[Path, Path, Mirror]]:
    host, box = tmp_path / "host", tmp_path / "box"
    host.mkdir()
    box.mkdir()
    mirror = Mirror(host, os.open(box, os.O_RDONLY | os.O_DIRECTORY))
    yield host, box, mirror
    mirror.close()


def test_host_files_come_in_and_the_codes_go_out(sides: tuple[Path, Path, Mirror]) -> None:
    host, box, mirror = sides
    (host / "data.csv").write_text("a,b\n")
    assert mirror.pull() == []
    assert (box / "data.csv").read_text() == "a,b\n"
    # The code writes a nested file, changes one and deletes one.
    (box / "out" / "deep").mkdir(parents=True)
    (box / "out" / "deep" / "r.txt").write_text("result")
    (box / "data.csv").write_text("a,b\n1,2\n")
    mirror.push()
    assert (host / "out" / "deep" / "r.txt").read_text() == "result"
    assert (host / "data.csv").read_text() == "a,b\n1,2\n"
    (box / "data.csv").unlink()
    mirror.push()
    assert not (host / "data.csv").exists()
    assert not [p.name for p in host.iterdir() if p.name.endswith(".part")]


def test_api_changes_reach_a_live_sandbox(sides: tuple[Path, Path, Mirror]) -> None:
    host, box, mirror = sides
    (host / "old.txt").write_text("old")
    mirror.pull()
    (host / "old.txt").unlink()  # deleted through the API between calls
    (host / "new.txt").write_text("new")  # uploaded
    mirror.pull()
    assert sorted(p.name for p in box.iterdir()) == ["new.txt"]
    # A file the code kept unchanged is not copied back (nor is the API's deletion undone).
    mirror.push()
    assert sorted(p.name for p in host.iterdir()) == ["new.txt"]


def test_links_and_odd_files_are_not_copied(
    sides: tuple[Path, Path, Mirror], tmp_path: Path
) -> None:
    host, box, mirror = sides
    secret = tmp_path / "secret.txt"
    secret.write_text("HOST-SECRET")
    (box / "leak.txt").symlink_to(secret)
    (box / "dir-link").symlink_to(tmp_path)
    os.mkfifo(box / "pipe")
    mirror.push()
    assert list(host.iterdir()) == []
    # A link the code plants where a host file would go is not written through either.
    (box / "in.txt").symlink_to(secret)
    (host / "in.txt").write_text("upload")
    mirror.pull()
    assert secret.read_text() == "HOST-SECRET"


def test_a_closed_mirror_does_nothing(sides: tuple[Path, Path, Mirror]) -> None:
    host, box, mirror = sides
    mirror.close()
    (host / "a.txt").write_text("a")
    assert mirror.pull() == []
    mirror.push()
    assert list(box.iterdir()) == []
