"""Sandboxed Python kernels for ``code_interpreter`` (bubblewrap; see :mod:`.launcher`)."""

from oasis.sandbox.kernel import Execution, Kernel, KernelError
from oasis.sandbox.launcher import MEMORY_LIMITS, Limits, SandboxUnavailable, find_bwrap
from oasis.sandbox.pool import Sandboxes

__all__ = [
    "MEMORY_LIMITS",
    "Execution",
    "Kernel",
    "KernelError",
    "Limits",
    "SandboxUnavailable",
    "Sandboxes",
    "find_bwrap",
]
