"""The seccomp filter of a sandboxed kernel: a small deny list, compiled to classic BPF.

Namespaces already keep the code from the host's files, processes and network; this filter
is defence in depth against the kernel itself. It denies the system calls a Python kernel
never needs and that an escape would start from: debugging other processes (``ptrace``,
``process_vm_*``, ``pidfd_getfd``, ``kcmp``), new namespaces (``unshare``, ``setns``, and
``clone`` with any ``CLONE_NEW*`` flag), mounts, keyrings, ``bpf``, ``perf_event_open``,
``userfaultfd``, ``io_uring``, modules, ``kexec``, ``reboot``, swap, clocks, and
``personality`` changes other than the harmless ones. Sockets are allowed for ``AF_UNIX``
only (numpy, matplotlib and ``multiprocessing`` need no other). A denied call fails with
``EPERM`` (a socket family with ``EAFNOSUPPORT``), so code sees an ordinary ``OSError``.
``clone3`` fails with ``ENOSYS``: its flags sit behind a pointer a filter cannot read, and
the C library then falls back to ``clone``, whose flags it can.

The program is written here rather than through libseccomp, so the sandbox needs no
native library: :func:`program` emits it for x86_64 and aarch64 (the system call numbers of
each are below, and a test checks them against libseccomp where it is installed). A call
from any other ABI (32-bit code, x32) is refused outright. bubblewrap loads the program
(``--seccomp FD``) just before it starts the kernel.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

# Each deny-listed call, by architecture (Linux's numbers; aarch64 has the generic table).
# fmt: off
_DENIED: dict[str, dict[str, int]] = {
    "x86_64": {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
        "pidfd_getfd": 438, "kcmp": 312,
        "unshare": 272, "setns": 308,
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "keyctl": 250, "add_key": 248, "request_key": 249,
        "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176,
        "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "fanotify_init": 300,
        "quotactl": 179, "quotactl_fd": 443, "lookup_dcookie": 212, "syslog": 103,
        "uselib": 134, "vhangup": 153, "nfsservctl": 180, "_sysctl": 156,
        "iopl": 172, "ioperm": 173,
        "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
        "sethostname": 170, "setdomainname": 171,
    },
    "aarch64": {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
        "pidfd_getfd": 438, "kcmp": 272,
        "unshare": 97, "setns": 268,
        "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "keyctl": 219, "add_key": 217, "request_key": 218,
        "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106,
        "reboot": 142, "swapon": 224, "swapoff": 225, "acct": 89,
        "open_by_handle_at": 265, "name_to_handle_at": 264, "fanotify_init": 262,
        "quotactl": 60, "quotactl_fd": 443, "lookup_dcookie": 18, "syslog": 116,
        "vhangup": 58, "nfsservctl": 42,
        "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
        "sethostname": 161, "setdomainname": 162,
    },
}
# fmt: on
# The calls whose arguments the filter reads.
_CHECKED: dict[str, dict[str, int]] = {
    "x86_64": {"socket": 41, "socketpair": 53, "clone": 56, "clone3": 435, "personality": 135},
    "aarch64": {"socket": 198, "socketpair": 199, "clone": 220, "clone3": 435, "personality": 92},
}
# AUDIT_ARCH_* of each architecture: the filter refuses calls made under any other ABI.
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_BIT = 0x40000000  # x86_64's x32 ABI: the same AUDIT_ARCH, numbers with this bit set

AF_UNIX = 1
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NEW_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
CLONE_NEW_FLAGS |= 0x20000000 | 0x40000000
# personality(): PER_LINUX, PER_LINUX32, UNAME26 with either, and the query 0xffffffff.
# Others turn off address randomisation or make data executable.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
_NR, _ARCH, _ARG0_LOW = 0, 4, 16  # both architectures are little-endian
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000


def ret_errno(number: int) -> int:
    """The filter's return value that fails a call with ``number``."""
    return _RET_ERRNO | (number & 0xFFFF)


class SeccompUnsupported(RuntimeError):
    """No filter can be made for this machine's architecture."""


def architecture() -> str | None:
    """This machine's architecture when the filter supports it, else None."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return machine if machine in _AUDIT_ARCH else None


def denied_calls(arch: str) -> dict[str, int]:
    """The deny-listed system calls of ``arch`` by name (their number)."""
    return dict(_DENIED[arch])


def checked_calls(arch: str) -> dict[str, int]:
    """The system calls whose arguments the filter of ``arch`` reads, by name."""
    return dict(_CHECKED[arch])


@dataclass
class _Jump:
    code: int
    k: int
    true: str | None  # a label; None: the next instruction
    false: str | None = None


class _Assembler:
    """Classic BPF with named jump targets (offsets are resolved in :meth:`bytes`)."""

    def __init__(self) -> None:
        self.ops: list[tuple[int, int] | _Jump] = []
        self.labels: dict[str, int] = {}

    def load(self, offset: int) -> None:
        self.ops.append((_LD_ABS, offset))

    def jump(self, code: int, k: int, true: str | None, false: str | None = None) -> None:
        self.ops.append(_Jump(code, k, true, false))

    def ret(self, value: int) -> None:
        self.ops.append((_RET, value))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.ops)

    def bytes(self) -> bytes:
        out = bytearray()
        for index, op in enumerate(self.ops):
            if isinstance(op, _Jump):
                jt, jf = (self._offset(index, t) for t in (op.true, op.false))
                out += struct.pack("=HBBI", op.code, jt, jf, op.k)
            else:
                out += struct.pack("=HBBI", op[0], 0, 0, op[1])
        return bytes(out)

    def _offset(self, index: int, label: str | None) -> int:
        if label is None:
            return 0
        offset = self.labels[label] - index - 1
        if not 0 <= offset <= 255:  # a classic BPF jump reaches 255 instructions ahead
            raise ValueError(f"jump to {label} out of range")
        return offset


def program(arch: str | None = None) -> bytes:
    """The filter for ``arch`` (this machine's by default) as ``struct sock_filter``s, the
    form ``bwrap --seccomp`` reads."""
    arch = arch or architecture()
    if arch is None or arch not in _AUDIT_ARCH:
        raise SeccompUnsupported(
            f"no seccomp filter for the {platform.machine() or 'unknown'} architecture "
            "(only x86_64 and aarch64)"
        )
    checked = _CHECKED[arch]
    asm = _Assembler()
    asm.load(_ARCH)
    asm.jump(_JEQ, _AUDIT_ARCH[arch], None, "kill")
    asm.load(_NR)
    if arch == "x86_64":
        asm.jump(_JGE, _X32_BIT, "enosys")
    asm.jump(_JEQ, checked["socket"], "socket")
    asm.jump(_JEQ, checked["socketpair"], "socket")
    asm.jump(_JEQ, checked["clone"], "clone")
    asm.jump(_JEQ, checked["clone3"], "enosys")
    asm.jump(_JEQ, checked["personality"], "personality")
    for number in sorted(set(_DENIED[arch].values())):
        asm.jump(_JEQ, number, "eperm")
    asm.ret(RET_ALLOW)

    asm.label("socket")  # the domain is an int: its low 32 bits are what Linux reads
    asm.load(_ARG0_LOW)
    asm.jump(_JEQ, AF_UNIX, "allow", "eafnosupport")
    asm.label("clone")
    asm.load(_ARG0_LOW)
    asm.jump(_JSET, CLONE_NEW_FLAGS, "eperm", "allow")
    asm.label("personality")
    asm.load(_ARG0_LOW)
    for persona in PERSONALITIES:
        asm.jump(_JEQ, persona, "allow")
    asm.label("eperm")
    asm.ret(ret_errno(errno.EPERM))
    asm.label("allow")
    asm.ret(RET_ALLOW)
    asm.label("eafnosupport")
    asm.ret(ret_errno(errno.EAFNOSUPPORT))
    asm.label("enosys")
    asm.ret(ret_errno(errno.ENOSYS))
    asm.label("kill")
    asm.ret(RET_KILL_PROCESS)
    return asm.bytes()
