"""The seccomp filter as a program: run under a small classic-BPF interpreter for both
architectures (so aarch64's branch is checked on any host), and its system call numbers
checked against libseccomp's tables where that library is installed. What it does inside
a real sandbox is in ``test_sandbox_escape.py``."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import platform
import struct

import pytest

from oasis.sandbox import Sandboxes, seccomp

ARCHES = ("x86_64", "aarch64")
AUDIT = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}


def run(program: bytes, nr: int, arch: int, *args: int) -> int:
    """What the filter returns for one call (a classic BPF interpreter for the opcodes
    the filter uses: absolute word loads, jeq/jge/jset with constants, ret)."""
    padded = list(args) + [0] * (6 - len(args))
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(a & (2**64 - 1) for a in padded))
    ops = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = ops[pc]
        if code == 0x20:
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x06:
            return k
        elif code in (0x15, 0x35, 0x45):
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
        pc += 1


EPERM = seccomp.ret_errno(errno.EPERM)


@pytest.mark.parametrize("arch", ARCHES)
def test_every_denied_call_fails_with_eperm(arch: str) -> None:
    program = seccomp.program(arch)
    for name, number in seccomp.denied_calls(arch).items():
        assert run(program, number, AUDIT[arch]) == EPERM, name
    for name in ("ptrace", "mount", "umount2", "unshare", "setns", "keyctl", "add_key",
                 "bpf", "perf_event_open", "userfaultfd", "kexec_load", "init_module",
                 "finit_module", "reboot", "swapon", "pivot_root"):  # fmt: skip
        assert name in seccomp.denied_calls(arch)


@pytest.mark.parametrize("arch", ARCHES)
def test_ordinary_calls_are_allowed(arch: str) -> None:
    program = seccomp.program(arch)
    denied = set(seccomp.denied_calls(arch).values()) | set(seccomp.checked_calls(arch).values())
    for number in range(0, 460):
        if number not in denied:
            assert run(program, number, AUDIT[arch]) == seccomp.RET_ALLOW, number


@pytest.mark.parametrize("arch", ARCHES)
def test_sockets_are_unix_only(arch: str) -> None:
    program, calls = seccomp.program(arch), seccomp.checked_calls(arch)
    unsupported = seccomp.ret_errno(errno.EAFNOSUPPORT)
    for call in ("socket", "socketpair"):
        # Linux reads the family as an int: the upper half of the register does not count.
        for family in (1, 1 | (1 << 32)):
            assert run(program, calls[call], AUDIT[arch], family, 1) == seccomp.RET_ALLOW
        for family in (2, 10, 16, 17, 40, 2 | (1 << 32)):  # inet, inet6, netlink, packet…
            assert run(program, calls[call], AUDIT[arch], family, 3) == unsupported


@pytest.mark.parametrize("arch", ARCHES)
def test_clone_makes_no_namespaces(arch: str) -> None:
    program, calls = seccomp.program(arch), seccomp.checked_calls(arch)
    thread = 0x3D0F00  # the flags pthread_create passes
    assert run(program, calls["clone"], AUDIT[arch], thread) == seccomp.RET_ALLOW
    assert run(program, calls["clone"], AUDIT[arch], 17) == seccomp.RET_ALLOW  # fork
    for flag in (0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000):
        assert run(program, calls["clone"], AUDIT[arch], 17 | flag) == EPERM
    # clone3's flags are out of reach: ENOSYS sends the C library back to clone.
    assert run(program, calls["clone3"], AUDIT[arch]) == seccomp.ret_errno(errno.ENOSYS)


@pytest.mark.parametrize("arch", ARCHES)
def test_personality_keeps_randomisation(arch: str) -> None:
    program, number = seccomp.program(arch), seccomp.checked_calls(arch)["personality"]
    for persona in seccomp.PERSONALITIES:
        assert run(program, number, AUDIT[arch], persona) == seccomp.RET_ALLOW
    for persona in (0x0040000, 0x0400000, 0x0100000):  # no ASLR, READ_IMPLIES_EXEC, page 0
        assert run(program, number, AUDIT[arch], persona) == EPERM


def test_other_abis_are_refused() -> None:
    program = seccomp.program("x86_64")
    assert run(program, 101, 0x40000003) == seccomp.RET_KILL_PROCESS  # i386
    assert run(program, 0x40000000 | 1, AUDIT["x86_64"]) == seccomp.ret_errno(errno.ENOSYS)
    assert run(seccomp.program("aarch64"), 26, 0x40000028) == seccomp.RET_KILL_PROCESS  # arm


def test_an_unknown_architecture_has_no_filter() -> None:
    with pytest.raises(seccomp.SeccompUnsupported):
        seccomp.program("riscv64")


def _libseccomp() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp")
    if name is None:
        pytest.skip("libseccomp is not installed: nothing to check the numbers against")
    lib = ctypes.CDLL(name)
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    return lib


@pytest.mark.parametrize("arch", ARCHES)
def test_numbers_match_libseccomp(arch: str) -> None:
    lib = _libseccomp()
    calls = seccomp.denied_calls(arch) | seccomp.checked_calls(arch)
    for name, number in calls.items():
        assert lib.seccomp_syscall_resolve_name_arch(AUDIT[arch], name.encode()) == number, name


def test_without_a_filter_the_sandbox_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On an architecture the filter does not cover (played by ``platform.machine``), the
    default refuses the sandbox and says why; ``require_seccomp=False`` runs kernels on
    namespaces alone."""
    if not asyncio.run(Sandboxes().probe()):
        pytest.skip("this host cannot run the bubblewrap sandbox")
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    strict = Sandboxes()
    assert not asyncio.run(strict.probe())
    assert strict.unavailable is not None and "seccomp" in strict.unavailable
    assert "require_seccomp" in strict.unavailable
    relaxed = Sandboxes(require_seccomp=False)
    assert asyncio.run(relaxed.probe()) and relaxed.seccomp is None
