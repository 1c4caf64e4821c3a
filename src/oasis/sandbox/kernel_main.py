"""The Python kernel that runs *inside* the sandbox (standard library only at start).

It is started as ``python -I kernel_main.py LIMITS_JSON``. It first lowers its own resource
limits (hard limits: neither it nor the code it runs can raise them again), then answers
one JSON line per request on its private protocol descriptors::

    -> {"code": "..."}
    <- {"stdout": "...", "stderr": "...", "error": "Traceback..." | null,
        "truncated": false, "images": ["/mnt/data/plot_1.png"]}

Code runs in one namespace that lives as long as the kernel, so variables survive between
calls. ``print`` output is captured up to ``max_output`` characters per stream; the value
of a last bare expression is printed as a notebook would show it. Figures left open by
matplotlib (the Agg backend) are saved as PNG files in the working directory and closed.
The process's own descriptors 0 and 1 are moved away, so that code writing to them
directly cannot corrupt the protocol.
"""

from __future__ import annotations

import ast
import io
import json
import os
import resource
import signal
import sys
import traceback
from typing import Any

WORKDIR = "/mnt/data"


def _seed_font_cache() -> None:
    """Copy the prebuilt matplotlib font list (when the host bound one) into MPLCONFIGDIR."""
    source = "/opt/oasis/matplotlib"
    target = os.environ.get("MPLCONFIGDIR")
    if target and os.path.isdir(source):
        import contextlib
        import shutil

        with contextlib.suppress(OSError):  # else matplotlib builds its own, slower
            shutil.copytree(source, target, dirs_exist_ok=True)


def _apply_limits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        which = getattr(resource, name)
        resource.setrlimit(which, (value, value))
    # A write past RLIMIT_FSIZE raises OSError (EFBIG) instead of killing the kernel.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _allow_cpu(seconds: int) -> None:
    """Let the next call use ``seconds`` more CPU time (within the kernel's hard limit);
    past it the kernel receives SIGXCPU and dies, which the host reports."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = used + seconds if hard == resource.RLIM_INFINITY else min(used + seconds, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


class _Capped(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters written to it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = self.limit - self.size
        if len(text) > room:
            self.truncated = True
            text = text[: max(room, 0)]
        if text:
            self.parts.append(text)
            self.size += len(text)
        return len(text)

    def value(self) -> str:
        return "".join(self.parts)


def _run(code: str, namespace: dict[str, Any]) -> str | None:
    """Execute ``code``; the traceback text when it raised."""
    try:
        tree = ast.parse(code, "<code>", "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body[-1].value)
            tree.body.pop()
        exec(compile(tree, "<code>", "exec"), namespace)
        if last is not None:
            value = eval(compile(last, "<code>", "eval"), namespace)
            if value is not None:
                print(repr(value))
        return None
    except BaseException as exc:  # SystemExit and KeyboardInterrupt included
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            return None
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        # Drop this module's own frame: the model should see its code only.
        return "".join(line for line in lines if __file__ not in line)


def _save_figures(counter: list[int]) -> list[str]:
    """Save and close every open matplotlib figure (when pyplot was imported)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return []
    saved: list[str] = []
    for number in pyplot.get_fignums():
        while True:
            counter[0] += 1
            path = os.path.join(WORKDIR, f"plot_{counter[0]}.png")
            if not os.path.lexists(path):
                break
        try:
            pyplot.figure(number).savefig(path)
            saved.append(path)
        except Exception:  # a figure that cannot be drawn is skipped, not fatal
            pass
    pyplot.close("all")
    return saved


def main() -> None:
    limits = json.loads(sys.argv[1])
    max_output = int(limits.pop("max_output"))
    cpu_per_call = int(limits.pop("cpu_per_call"))
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # stray writes to descriptor 1 go where stderr goes (the host drops it)
    _seed_font_cache()
    _apply_limits(limits)
    os.chdir(WORKDIR)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    counter = [0]
    replies.write('{"ready": true}\n')
    replies.flush()
    kernel_pid = os.getpid()
    for line in requests:
        request = json.loads(line)
        _allow_cpu(cpu_per_call)
        out, err = _Capped(max_output), _Capped(max_output)
        sys.stdout, sys.stderr, sys.stdin = out, err, io.StringIO()
        try:
            error = _run(str(request["code"]), namespace)
            images = _save_figures(counter)
        finally:
            if os.getpid() != kernel_pid:
                os._exit(0)  # a process the code forked came back here: it must not answer
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        if error is not None:
            error = error[-max_output:]
        reply = {
            "stdout": out.value(),
            "stderr": err.value(),
            "error": error,
            "truncated": out.truncated or err.truncated,
            "images": images,
        }
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
