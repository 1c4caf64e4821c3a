"""The code interpreter with the server running as an unprivileged user.

Every other sandbox test runs the server as whoever runs the tests (root in CI). Here the
server runs as ``nobody`` (uid 65534, no groups), with a data dir that user owns, and a
forced ``code_interpreter`` turn either runs in the sandbox (the kernel's user namespace
made without privileges) or, where the kernel refuses unprivileged user namespaces, is
refused with the start-up log line and a 400 naming the tool. The test says which case
ran (``sandbox_case`` in its properties and on stdout).

Switching users needs root: the test is skipped when it does not run as root. A Python
installed under a directory ``nobody`` cannot enter (``/root/.pyenv``, say) is made
reachable for the server only, in a mount namespace of its own: the blocked directory is
covered by one that lets others through to just the entries needed. Nothing on the host
changes.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from openai.types.responses import ResponseCodeInterpreterToolCall

from tests.conftest import SANDBOX_LIMITS, SCRIPTED
from tests.server import OASIS, REPO_ROOT, Server, sdk_for, start_server
from tests.test_sandbox_escape import FORK_BOMB

NOBODY = 65534
KEY = "sk-nobody"
AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}


def _blocked(paths: list[str]) -> dict[str, set[str]]:
    """For each path, its first ancestor that others may not enter, with the entry under
    it the path goes through: {blocked directory: entries to let through}."""
    found: dict[str, set[str]] = {}
    for path in paths:
        parts = Path(path).parts
        for depth in range(1, len(parts) - 1):
            parent = Path(*parts[:depth])
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                found.setdefault(str(parent), set()).add(parts[depth])
                break
    return found


def _launcher(scratch: Path) -> list[str]:
    """``unshare`` + ``setpriv``: the server as ``nobody``, in a mount namespace where the
    directories on the way to its code let it through."""
    needed = [
        os.path.realpath(sys.executable),
        sys.base_prefix,
        sys.prefix,
        os.path.realpath(OASIS),
        str(REPO_ROOT),
    ]
    script = ["set -e"]
    for index, (blocked, entries) in enumerate(sorted(_blocked(needed).items())):
        cover = scratch / f"cover{index}"
        cover.mkdir(mode=0o711)
        cover.chmod(0o711)
        for entry in sorted(entries):
            inner = cover / entry
            inner.mkdir()
            script.append(f"mount --bind {shlex.quote(f'{blocked}/{entry}')} {inner}")
        script.append(f"mount --rbind {cover} {shlex.quote(blocked)}")
    script.append(f'exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script), "sh"]


@pytest.fixture(scope="module")
def nobody_server() -> Iterator[Server]:
    if os.geteuid() != 0:
        pytest.skip("switching the server to another user needs root (run the tests as root)")
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} (util-linux) is not installed")
    scratch = Path(tempfile.mkdtemp(prefix="oasis-nobody-"))
    try:
        scratch.chmod(0o755)
        data_dir = scratch / "data"
        data_dir.mkdir()
        os.chown(data_dir, NOBODY, NOBODY)
        server = start_server(
            data_dir,
            config={
                "preload": [],
                "tool_plugins": ["tests.scripted_engine"],
                "models": [
                    {"id": SCRIPTED, "kind": "chat", "engine": "scripted", "path": "/dev/null"}
                ],
                "code_interpreter": SANDBOX_LIMITS,
            },
            # A service user's own home, as a unit file or container would give it.
            env={"OASIS_API_KEYS": KEY, "HOME": str(data_dir)},
            prefix=_launcher(scratch),
        )
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])  # the real uid
    raise AssertionError(f"no Uid line for process {pid}")


def _forced_call(sdk: OpenAI, code: str, tool: dict[str, Any]) -> ResponseCodeInterpreterToolCall:
    """Run ``code`` through a forced code_interpreter turn of the scripted model."""
    response = sdk.responses.create(
        model=SCRIPTED,
        input=code,
        tools=[tool],  # type: ignore[list-item]
        tool_choice={"type": "code_interpreter"},
        include=["code_interpreter_call.outputs"],
    )
    call = response.output[0]
    assert call.type == "code_interpreter_call", call
    return call


def _logs(call: ResponseCodeInterpreterToolCall) -> str:
    return "".join(o.logs for o in call.outputs or [] if o.type == "logs")


def test_the_code_interpreter_as_an_unprivileged_user(
    nobody_server: Server, record_property: Callable[[str, object], None]
) -> None:
    assert _uid_of(nobody_server.process.pid) == NOBODY
    if "code_interpreter is disabled" in nobody_server.log():
        # The kernel refuses unprivileged user namespaces: the tool is refused, clearly.
        record_property("sandbox_case", "refused")
        print("sandbox_case: refused (no unprivileged user namespaces on this host)")
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=nobody_server.api_url, headers=headers) as raw:
            response = raw.post(
                "/responses",
                json={"model": SCRIPTED, "input": "print(1)", "tools": [AUTO]},
            )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == "tools[0]" and "sandbox" in error["message"]
        return
    record_property("sandbox_case", "ran")
    print("sandbox_case: ran (the sandbox works for an unprivileged server)")
    with sdk_for(nobody_server, KEY) as sdk:
        code = "import os\nprint(os.getuid(), open('/mnt/data/x.txt', 'w').write('hi'))"
        call = _forced_call(sdk, code, AUTO)
        assert call.status == "completed"
        assert _logs(call) == "65534 2\n"
        # The file the code wrote is the container's, on the host in the data dir.
        files = sdk.containers.files.list(call.container_id).data
        assert [f.path for f in files] == ["/mnt/data/x.txt"]
        content = sdk.containers.files.content.retrieve(files[0].id, container_id=call.container_id)
        assert content.read() == b"hi"
        # No cgroup can be made without root: the process limit is the kernel's own
        # RLIMIT_NPROC, which holds for a non-root user (it does not for root).
        again = {"type": "code_interpreter", "container": call.container_id}
        logs = _logs(_forced_call(sdk, FORK_BOMB, again))
        assert "fork refused" in logs and int(logs.split("made ")[-1]) < 32
        assert httpx.get(f"{nobody_server.base_url}/health").status_code == 200
