"""Code that tries to get out of its sandbox, sent through the real server and SDK (the
scripted model runs the user's text as its code). Each attempt must fail inside the
sandbox, and the server must stay healthy afterwards.

The limits are the ``SANDBOX_LIMITS`` of the sandbox server: 10 s of wall time per call,
2000 characters of output, 1 MiB files, 8 MiB of files in all, 32 processes, 1 GiB of
memory (the default).
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.conftest import SANDBOX_KEYS, SCRIPTED
from tests.server import Server

OUTPUTS = ["code_interpreter_call.outputs"]


@pytest.fixture(scope="module")
def box(box_client: OpenAI) -> Iterator[str]:
    """One container for the attempts (each must leave it usable)."""
    created = box_client.containers.create(name="escape")
    yield created.id
    box_client.containers.delete(created.id)


def _logs(client: OpenAI, container: str, code: str) -> str:
    response = client.responses.create(
        model=SCRIPTED,
        input=code,
        tools=[{"type": "code_interpreter", "container": container}],
        include=OUTPUTS,  # type: ignore[list-item]
    )
    call: Any = response.output[0]
    assert call.type == "code_interpreter_call"
    return "".join(o.logs for o in call.outputs or [] if o.type == "logs")


pytestmark = pytest.mark.usefixtures("sandbox_ready")


@pytest.fixture(autouse=True)
def _server_stays_healthy(sandbox_server: Server, box_client: OpenAI, box: str) -> Iterator[None]:
    yield
    assert httpx.get(f"{sandbox_server.base_url}/health", timeout=10).status_code == 200
    assert sandbox_server.process.poll() is None
    # ...and the container still runs code.
    assert _logs(box_client, box, "print('still here')") == "still here\n"


def test_files_outside_the_container_cannot_be_read(
    box_client: OpenAI, box: str, sandbox_server: Server, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    database = next(sandbox_server.data_dir.glob("*.db"), sandbox_server.data_dir)
    code = (
        "import os\n"
        f"for path in [{str(secret)!r}, {str(database)!r}, '/etc/passwd', '/etc/shadow']:\n"
        "    try:\n"
        "        print(path, 'READ', open(path, 'rb').read(10))\n"
        "    except OSError as e:\n"
        "        print(path, 'refused', type(e).__name__)\n"
        "print(sorted(os.listdir('/')))"
    )
    logs = _logs(box_client, box, code)
    assert "READ" not in logs and "TOP-SECRET" not in logs
    assert logs.count("refused") == 4
    # The server's own files are not in the sandbox's view at all.
    assert str(sandbox_server.data_dir) not in logs.splitlines()[-1]


def test_the_runtime_is_read_only(box_client: OpenAI, box: str) -> None:
    code = (
        "import os, sys\n"
        "for path in [os.path.join(sys.prefix, 'owned.txt'), '/usr/owned.txt']:\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('WROTE', path)\n"
        "    except OSError as e:\n"
        "        print('refused', type(e).__name__)"
    )
    logs = _logs(box_client, box, code)
    assert "WROTE" not in logs and logs.count("refused") == 2


def test_the_code_is_nobody_without_capabilities(box_client: OpenAI, box: str) -> None:
    code = (
        "import os\n"
        "print(os.getuid(), os.getgid())\n"
        "print([l for l in open('/proc/self/status') if l.startswith('CapEff')][0].split()[1])"
    )
    assert _logs(box_client, box, code) == "65534 65534\n0000000000000000\n"


def test_no_network(box_client: OpenAI, box: str, sandbox_server: Server) -> None:
    code = (
        "import socket\n"
        f"for host, port in [('127.0.0.1', {sandbox_server.port}), ('1.1.1.1', 53)]:\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=3)\n"
        "        print('CONNECTED', host)\n"
        "    except OSError as e:\n"
        "        print('refused', type(e).__name__)"
    )
    logs = _logs(box_client, box, code)
    assert "CONNECTED" not in logs and logs.count("refused") == 2


# Forks until refused (printing "fork refused"), reaps, then prints "made N".
FORK_BOMB = (
    "import os, time\n"
    "made = 0\n"
    "try:\n"
    "    for _ in range(10_000):\n"
    "        if os.fork() == 0:\n"
    "            time.sleep(2)\n"
    "            os._exit(0)\n"
    "        made += 1\n"
    "except OSError as e:\n"
    "    print('fork refused', type(e).__name__)\n"
    "while True:  # reaped, so that later tests may start processes again\n"
    "    try:\n"
    "        os.wait()\n"
    "    except ChildProcessError:\n"
    "        break\n"
    "print('made', made)"
)


def test_a_fork_bomb_is_stopped(box_client: OpenAI, box: str) -> None:
    logs = _logs(box_client, box, FORK_BOMB)
    assert "fork refused" in logs
    made = int(logs.split("made ")[-1])
    assert made < 32  # the process limit of the sandbox server


def test_escape_system_calls_are_denied(box_client: OpenAI, box: str) -> None:
    """The seccomp filter: each call fails inside the sandbox with the errno it picks (on
    namespaces alone, ptrace, unshare, keyctl and an AF_INET socket would succeed)."""
    code = (
        "import ctypes, errno, os, platform, socket, subprocess\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "KEYCTL = {'x86_64': 250, 'aarch64': 219}[platform.machine()]\n"
        "def report(name, result):\n"
        "    print(name, 'ALLOWED' if result >= 0 else errno.errorcode[ctypes.get_errno()])\n"
        "child = subprocess.Popen(['sleep', '30'])\n"
        "report('ptrace', libc.ptrace(16, child.pid, None, None))  # PTRACE_ATTACH\n"
        "child.kill()\n"
        "report('unshare', libc.unshare(0x10000000))  # CLONE_NEWUSER\n"
        "report('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))\n"
        "report('keyctl', libc.syscall(KEYCTL, 0, -3, 0))  # the session keyring's id\n"
        "for name, family, kind in [('inet', 2, 1), ('raw', 2, 3), ('packet', 17, 3)]:\n"
        "    try:\n"
        "        socket.socket(family, kind)\n"
        "        print(name, 'ALLOWED')\n"
        "    except OSError as e:\n"
        "        print(name, errno.errorcode[e.errno])\n"
        "a, b = socket.socketpair()\n"
        "a.send(b'unix ok')\n"
        "print(b.recv(10).decode())"
    )
    assert _logs(box_client, box, code).splitlines() == [
        "ptrace EPERM",
        "unshare EPERM",
        "mount EPERM",
        "keyctl EPERM",
        "inet EAFNOSUPPORT",
        "raw EAFNOSUPPORT",
        "packet EAFNOSUPPORT",
        "unix ok",
    ]


def test_threads_processes_and_numpy_still_work(box_client: OpenAI, box: str) -> None:
    code = (
        "import multiprocessing, threading, numpy\n"
        "seen = []\n"
        "worker = threading.Thread(target=seen.append, args=('thread',))\n"
        "worker.start(); worker.join()\n"
        "with multiprocessing.get_context('fork').Pool(2) as pool:\n"
        "    print(seen[0], pool.map(abs, [-1, -2]), int(numpy.arange(4).sum()))"
    )
    assert _logs(box_client, box, code) == "thread [1, 2] 6\n"


def test_memory_past_the_limit_fails(box_client: OpenAI, box: str) -> None:
    logs = _logs(box_client, box, "block = bytearray(3 << 30)")
    assert "MemoryError" in logs


def test_huge_output_is_cut(box_client: OpenAI, box: str) -> None:
    logs = _logs(box_client, box, "print('y' * 50_000_000)\nimport os\nos.write(1, b'z' * 10**7)")
    assert "[output truncated]" in logs
    assert len(logs) < 3000


def test_a_huge_file_is_refused(box_client: OpenAI, box: str) -> None:
    code = (
        "try:\n"
        "    open('/mnt/data/big.bin', 'wb').write(b'0' * (50 << 20))\n"
        "    print('WROTE')\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)"
    )
    logs = _logs(box_client, box, code)
    assert "WROTE" not in logs and "refused 27" in logs  # EFBIG


def test_the_disk_limit_holds_for_many_files(
    box_client: OpenAI, box: str, sandbox_server: Server
) -> None:
    """Files of 1 MiB (each under the file limit) until the 8 MiB disk is full: the write
    that does not fit fails inside the sandbox, and the container's files are what the
    sandbox saw, on the host and through the API."""
    code = (
        "import json, os\n"
        "os.makedirs('/mnt/data/fill', exist_ok=True)\n"
        "made = 0\n"
        "try:\n"
        "    for n in range(100):\n"
        "        with open(f'/mnt/data/fill/{n}.bin', 'wb') as f:\n"
        "            f.write(b'0' * (1 << 20))\n"
        "        made += 1\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
        "sizes = {f'/mnt/data/fill/{n}': os.path.getsize(f'/mnt/data/fill/{n}')\n"
        "         for n in sorted(os.listdir('/mnt/data/fill'))}\n"
        "print(made, sum(sizes.values()), json.dumps(sorted(sizes.items())))"
    )
    logs = _logs(box_client, box, code)
    assert "refused 28" in logs  # ENOSPC
    made, total, seen = logs.splitlines()[-1].split(" ", 2)
    assert 4 <= int(made) <= 8 and int(total) <= 8 << 20
    files = {
        f.path: f.bytes
        for f in box_client.containers.files.list(box, limit=100).data
        if f.path.startswith("/mnt/data/fill/")
    }
    assert sorted(files.items()) == [tuple(x) for x in json.loads(seen)]
    host = sandbox_server.data_dir / "containers" / box / "fill"
    assert sum(p.stat().st_size for p in host.iterdir()) == int(total)
    # Space comes back when the code deletes files, and so do the API's files.
    after = _logs(box_client, box, "import shutil\nshutil.rmtree('/mnt/data/fill')\nprint('freed')")
    assert after == "freed\n"
    assert not [p for p in host.rglob("*") if p.is_file()]
    listed = box_client.containers.files.list(box, limit=100).data
    assert not [f for f in listed if f.path.startswith("/mnt/data/fill/")]


def test_uploads_past_the_disk_limit_are_left_out(box_client: OpenAI) -> None:
    """Files uploaded through the API are not capped together, but what the kernel sees
    is: the ones that do not fit stay on the host, and the call's logs name them."""
    created = box_client.containers.create(name="full")
    try:
        for n in range(10):
            upload = (f"part{n}.bin", io.BytesIO(b"u" * 1_000_000))
            box_client.containers.files.create(created.id, file=upload)
        logs = _logs(box_client, created.id, "import os\nprint(len(os.listdir('/mnt/data')))")
        count, note = int(logs.splitlines()[0]), logs.splitlines()[-1]
        assert note.startswith("DiskFull: not in /mnt/data") and 5 <= count < 10
        assert note.endswith("/mnt/data/part9.bin")  # in name order: the last ones
        assert len(box_client.containers.files.list(created.id).data) == 10
    finally:
        box_client.containers.delete(created.id)


def test_sleeping_past_the_timeout_is_stopped(box_client: OpenAI, box: str) -> None:
    _logs(box_client, box, "kept = 1")
    started = time.monotonic()
    logs = _logs(box_client, box, "import time\ntime.sleep(600)")
    assert "TimeoutError" in logs and "time limit" in logs
    assert time.monotonic() - started < 300  # stopped, not slept through
    # The kernel was replaced: its variables are gone, the container is not.
    assert "NameError" in _logs(box_client, box, "kept")


def test_a_link_out_of_the_container_is_not_followed(
    box_client: OpenAI, box: str, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOST-SECRET")
    code = f"import os\nos.symlink({str(secret)!r}, '/mnt/data/leak.txt')\nprint('linked')"
    assert _logs(box_client, box, code) == "linked\n"
    paths = [f.path for f in box_client.containers.files.list(box).data]
    assert "/mnt/data/leak.txt" not in paths  # a link is not a file of the container


def test_another_keys_container_is_out_of_reach(
    box_client: OpenAI, other_box_client: OpenAI, box: str, sandbox_server: Server
) -> None:
    box_client.containers.files.create(box, file=("mine.txt", io.BytesIO(b"MINE-ONLY")))
    # Naming it in a tool is refused before anything runs.
    with pytest.raises(Exception) as refused:
        other_box_client.responses.create(
            model=SCRIPTED,
            input="print(open('/mnt/data/mine.txt').read())",
            tools=[{"type": "code_interpreter", "container": box}],
        )
    assert getattr(refused.value, "status_code", None) == 400
    # From its own container, the other key's code cannot see this one's files either.
    host_path = sandbox_server.data_dir / "containers" / box / "mine.txt"
    assert host_path.exists()
    code = (
        "import os\n"
        f"for path in ['/mnt/data/mine.txt', {str(host_path)!r}]:\n"
        "    try:\n"
        "        print('READ', open(path).read())\n"
        "    except OSError as e:\n"
        "        print('refused', type(e).__name__)"
    )
    response = other_box_client.responses.create(
        model=SCRIPTED,
        input=code,
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        include=OUTPUTS,  # type: ignore[list-item]
    )
    call: Any = response.output[0]
    logs = "".join(o.logs for o in call.outputs or [] if o.type == "logs")
    assert call.container_id != box
    assert "MINE-ONLY" not in logs and logs.count("refused") == 2


def test_a_cancelled_call_kills_its_kernel(
    sandbox_server: Server, box_client: OpenAI, box: str
) -> None:
    headers = {"Authorization": f"Bearer {SANDBOX_KEYS[0]}"}
    body = {
        "model": SCRIPTED,
        "input": "import time\ntime.sleep(600)",
        "tools": [{"type": "code_interpreter", "container": box}],
        "stream": True,
    }
    url = f"{sandbox_server.api_url}/responses"
    with (
        httpx.Client(headers=headers, timeout=60) as raw,
        raw.stream("POST", url, json=body) as stream,
    ):
        for line in stream.iter_lines():
            if "code_interpreter_call.interpreting" in line:
                break  # the code is running: hang up
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _sandboxes_of(box):
        time.sleep(0.5)
    assert not _sandboxes_of(box)


def _sandboxes_of(container_id: str) -> list[str]:
    """The kernels' bwrap processes of the container (named in their command line)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    mark = f"OASIS_CONTAINER {container_id}"
    return [line for line in out.stdout.splitlines() if mark in line and "bwrap" in line]
