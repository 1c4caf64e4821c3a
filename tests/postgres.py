"""A throwaway PostgreSQL cluster for tests: ``initdb`` + ``pg_ctl`` in a temp dir, a free
port, trust authentication on loopback only, stopped at the end of the session.

``initdb`` refuses to run as root (as CI runs), so as root the cluster belongs to the
``postgres`` system user (Debian's package creates it), or to ``oasis-pg``, created here
when neither exists. Each test takes a fresh database from :meth:`Cluster.database`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server import free_port

SUPERUSER = "oasis"


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _cluster_user() -> str | None:
    """Who runs the cluster: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "oasis-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "oasis-pg"],
        check=True,
    )
    return "oasis-pg"


@dataclass
class Cluster:
    """A running cluster on ``127.0.0.1:port``."""

    directory: Path
    port: int
    user: str | None
    bin_dir: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program as the cluster's owner."""
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database; its URL."""
        name = f"oasis_{uuid.uuid4().hex[:12]}"
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)
        return self.url(name)

    def psql(self, url: str, sql: str) -> str:
        """The rows ``sql`` returns, as unaligned text (``|`` between columns)."""
        out = self.run("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql, url)
        return out.stdout.strip()

    @contextlib.contextmanager
    def rows_locked(self, url: str, table: str, where: str) -> Iterator[int]:
        """Hold ``SELECT … FOR UPDATE`` on the rows of ``table`` meeting ``where`` in a
        session of its own while the block runs (others read them; their writes to them
        wait); yields how many rows are locked."""
        session = subprocess.Popen(
            [str(self.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert session.stdin is not None
        try:
            session.stdin.write(
                "BEGIN;\nSET application_name = 'test-row-locks';\n"
                f"SELECT 1 FROM {table} WHERE {where} FOR UPDATE;\n"
            )
            session.stdin.flush()
            held = (
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'test-row-locks' AND state = 'idle in transaction'"
            )
            deadline = time.monotonic() + 60
            while self.psql(url, held) == "0":
                assert time.monotonic() < deadline, f"the rows of {table} were not locked"
                time.sleep(0.05)
            yield int(self.psql(url, f"SELECT count(*) FROM {table} WHERE {where}"))
        finally:
            with contextlib.suppress(BrokenPipeError):  # (psql gone: its error is above)
                session.stdin.write("COMMIT;\n")
                session.stdin.close()
            session.wait(30)

    def stop(self) -> None:
        """Stop the cluster and remove its files."""
        try:
            self.run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_cluster() -> Cluster:
    """initdb and start a cluster; skips the test when PostgreSQL is not installed."""
    initdb = _binary("initdb")
    if initdb is None or _binary("pg_ctl") is None:
        pytest.skip("PostgreSQL is not installed (scripts/install.sh installs it)")
    bin_dir = Path(initdb).resolve().parent
    user = _cluster_user()
    directory = Path(tempfile.mkdtemp(prefix="oasis-pg-"))
    if user is not None:
        shutil.chown(directory, user)
    cluster = Cluster(directory, free_port(), user, bin_dir)
    data = directory / "data"
    cluster.run("initdb", "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8")
    options = (
        f"-p {cluster.port} -k {directory} -c listen_addresses=127.0.0.1 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    cluster.run(
        "pg_ctl", "-D", str(data), "-o", options, "-l", str(directory / "log"), "-w", "start"
    )
    return cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """One PostgreSQL cluster for the session."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
