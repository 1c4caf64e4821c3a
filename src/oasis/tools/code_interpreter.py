"""``code_interpreter``: the model writes Python, oasis runs it in the container's sandboxed
kernel (:mod:`oasis.sandbox`), and the model reads what it printed.

The model calls it as a function ``python`` taking ``code``. Each run is one
``code_interpreter_call`` item, streamed as OpenAI streams it: ``in_progress``, the code
(``code_interpreter_call_code.delta`` / ``.done``), ``interpreting``, ``completed``. Its
``outputs`` (the logs, and each figure as a PNG data URL) are stored whole; a client sees
them when its request includes ``code_interpreter_call.outputs``. Files the code writes
under ``/mnt/data`` become container files, cited in the answer with
``container_file_citation``.

``container`` is a container id (the key's own, live) or ``{"type": "auto", "file_ids":
[...]}``: the tool then uses the container an earlier call of the conversation used when
it is still live (its variables are still there), or makes one with those files. Where
the sandbox cannot run, the tool is refused with a 400 naming ``tools[i]``; code never
runs outside it.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oasis.core.conversation import FunctionTool
from oasis.errors import InvalidRequestError, OasisError
from oasis.ids import new_id
from oasis.sandbox import MEMORY_LIMITS, KernelError, Sandboxes, SandboxUnavailable
from oasis.sandbox.workdir import open_file
from oasis.tools.base import (
    Cite,
    ConfiguredTool,
    HostedCall,
    ItemAdded,
    ItemDone,
    ItemProgress,
    ReplayedCall,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from oasis.tools.registry import register_tool
from oasis.types import Item
from oasis.wire.containers import ContainerCreateRequest

FUNCTION = FunctionTool(
    "python",
    "Run Python code in a stateful sandbox (variables persist between calls). numpy and "
    "matplotlib are installed; there is no internet access. The user's files are in "
    "/mnt/data; save files there to give them to the user. Print what you want to see.",
    {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "The Python code to run."}},
        "required": ["code"],
    },
)
# What the model reads of a run's logs, in characters: small models have small contexts.
LOGS_BUDGET = 4000
_IMAGE_BYTES = 4 << 20  # a figure larger than this is a file only, not an inline output
_DELTA = 80  # characters per streamed code delta


@dataclass(frozen=True)
class ContainerChoice:
    """A tool's ``container``: an id, or ``auto`` with the files to copy in."""

    container_id: str | None
    file_ids: tuple[str, ...] = ()
    memory_limit: str | None = None


class CodeInterpreterKind:
    """The ``code_interpreter`` tool kind over the server's sandboxes."""

    server_side = True
    item_types = frozenset({"code_interpreter_call"})

    def __init__(self, sandboxes: Sandboxes | None, *, enabled: bool = True) -> None:
        self.sandboxes = sandboxes
        self.enabled = enabled
        # auto containers made this turn, by response id (a turn's later calls reuse one)
        self._made: OrderedDict[str, str] = OrderedDict()

    def configure(self, params: Sequence[tuple[int, Any]]) -> list[ConfiguredTool]:
        out: list[ConfiguredTool] = []
        for index, param in params:
            self._refuse_if_unavailable(index)
            choice = _container_choice(param.container, f"tools[{index}].container")
            echo: Item = {"type": "code_interpreter", "container": param.container}
            out.append(ConfiguredTool("code_interpreter", index, echo, FUNCTION, choice))
        return out

    async def check_access(
        self, tools: Sequence[ConfiguredTool], owner: str, services: dict[str, Any]
    ) -> None:
        """A named container must be the key's own and live, and the files of an ``auto``
        one the key's own: else a 400 (404 for a file) naming the field."""
        service = services["containers"]
        for tool in tools:
            choice: ContainerChoice = tool.config
            where = f"tools[{tool.index}].container"
            if choice.container_id is not None:
                await service.ensure(owner, choice.container_id, param=where)
            await service.check_files(owner, choice.file_ids, param=f"{where}.file_ids")

    async def run(self, call: HostedCall, context: ToolContext) -> AsyncIterator[ToolEvent]:
        code = _code(call.arguments)
        service = context.services["containers"]
        choice: ContainerChoice = call.tool.config
        item: Item = {
            "type": "code_interpreter_call",
            "id": new_id("ci"),
            "status": "in_progress",
            "container_id": choice.container_id or "",
            "code": "",
            "outputs": None,
        }
        problem: str | None = None
        try:
            item["container_id"] = await self._container(choice, context, service)
        except OasisError as exc:
            problem = exc.message
        yield ItemAdded(item)
        yield ItemProgress("response.code_interpreter_call.in_progress")
        for start in range(0, len(code), _DELTA):
            yield ItemProgress(
                "response.code_interpreter_call_code.delta", {"delta": code[start : start + _DELTA]}
            )
        yield ItemProgress("response.code_interpreter_call_code.done", {"code": code})
        yield ItemProgress(
            "response.code_interpreter_call.interpreting", item_status="interpreting"
        )
        if problem is None:
            try:
                result, written = await service.run(context.owner, item["container_id"], code)
            except (OasisError, SandboxUnavailable, KernelError) as exc:
                problem = getattr(exc, "message", None) or str(exc)
        if problem is not None:
            yield ItemDone({**item, "status": "failed", "code": code, "outputs": []})
            yield ToolResult(f"The code could not run: {problem}")
            return
        outputs: list[Item] = []
        if result.logs:
            outputs.append({"type": "logs", "logs": result.logs})
        root = service.workdir(item["container_id"])
        for path in result.images:
            url = _image_url(root, path)
            if url is not None:
                outputs.append({"type": "image", "url": url})
        yield ItemProgress("response.code_interpreter_call.completed", item_status="completed")
        yield ItemDone({**item, "status": "completed", "code": code, "outputs": outputs})
        for stored in written:
            yield Cite(
                {
                    "type": "container_file_citation",
                    "container_id": item["container_id"],
                    "file_id": stored.id,
                    "filename": stored.path.rsplit("/", 1)[-1],
                }
            )
        yield ToolResult(_model_reads(outputs, [f.path for f in written]))

    def replay(self, item: Item) -> ReplayedCall | None:
        """The stored call as the model made it, and the logs it read then."""
        arguments = json.dumps({"code": item.get("code") or ""})
        if item.get("status") != "completed":
            return ReplayedCall(FUNCTION.name, arguments, "The code could not run.")
        return ReplayedCall(FUNCTION.name, arguments, _model_reads(item.get("outputs") or [], []))

    def _refuse_if_unavailable(self, index: int) -> None:
        if not self.enabled:
            reason = "it is turned off in this server's settings ([code_interpreter] enabled)"
        elif self.sandboxes is None or self.sandboxes.unavailable is not None:
            why = self.sandboxes.unavailable if self.sandboxes else None
            reason = (
                f"this server cannot create its sandbox: {why or 'none is set up'}. "
                "Code is never run outside a sandbox."
            )
        else:
            return
        raise InvalidRequestError(
            f"The code_interpreter tool is not available: {reason}",
            param=f"tools[{index}]",
            code="unsupported_value",
        )

    async def _container(self, choice: ContainerChoice, context: ToolContext, service: Any) -> str:
        """The container this call runs in (see the module docstring)."""
        if choice.container_id is not None:
            await service.ensure(context.owner, choice.container_id, param="container")
            return choice.container_id
        made = self._made.get(context.response_id)
        if made is not None:
            return made
        for earlier in reversed(context.history):
            cid = (
                earlier.get("container_id")
                if earlier.get("type") == "code_interpreter_call"
                else None
            )
            if isinstance(cid, str) and cid:
                try:
                    await service.get(context.owner, cid)
                except OasisError:
                    continue
                return cid
        created = await service.create(
            context.owner,
            ContainerCreateRequest(
                name=f"code_interpreter {context.response_id}",
                file_ids=list(choice.file_ids),
                memory_limit=choice.memory_limit,  # type: ignore[arg-type]
            ),
            param="tools.container.",
        )
        self._made[context.response_id] = created.id
        while len(self._made) > 1024:
            self._made.popitem(last=False)
        return str(created.id)


def _container_choice(value: Any, where: str) -> ContainerChoice:
    if isinstance(value, str):
        if not value.strip():
            raise InvalidRequestError(
                f'Invalid value for \'{where}\': name a container id or use {{"type": "auto"}}.',
                param=where,
                code="invalid_value",
            )
        return ContainerChoice(value)
    if value.get("type") != "auto":
        raise InvalidRequestError(
            f"Invalid value for '{where}.type': expected 'auto'.",
            param=f"{where}.type",
            code="invalid_value",
        )
    file_ids = value.get("file_ids") or []
    if not isinstance(file_ids, list) or len(file_ids) > 50:
        raise InvalidRequestError(
            f"Invalid value for '{where}.file_ids': a list of at most 50 file ids.",
            param=f"{where}.file_ids",
            code="invalid_value",
        )
    for i, file_id in enumerate(file_ids):
        if not isinstance(file_id, str) or not file_id:
            raise InvalidRequestError(
                f"Invalid value for '{where}.file_ids[{i}]': expected a file id.",
                param=f"{where}.file_ids[{i}]",
                code="invalid_type",
            )
    memory = value.get("memory_limit")
    if memory is not None and memory not in MEMORY_LIMITS:
        raise InvalidRequestError(
            f"Invalid value for '{where}.memory_limit': one of {', '.join(MEMORY_LIMITS)}.",
            param=f"{where}.memory_limit",
            code="invalid_value",
        )
    policy = value.get("network_policy")
    if policy is not None and (not isinstance(policy, dict) or policy.get("type") != "disabled"):
        raise InvalidRequestError(
            "Containers here have no network access: only network_policy "
            '{"type": "disabled"} is supported.',
            param=f"{where}.network_policy",
            code="unsupported_value",
        )
    return ContainerChoice(None, tuple(file_ids), memory)


def _code(arguments: str) -> str:
    """The model's code; a call that is not the expected JSON runs its text as code."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return arguments
    if isinstance(value, dict):
        value = value.get("code", value.get("input", ""))
    return value if isinstance(value, str) else json.dumps(value)


def _image_url(root: Path, path: str) -> str | None:
    """A figure the kernel saved, as a PNG data URL (None when it is gone or too large)."""
    opened = open_file(root, path)
    if opened is None:
        return None
    handle, size = opened
    with handle:
        if size > _IMAGE_BYTES:
            return None
        data = handle.read(size)
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _model_reads(outputs: Sequence[Item], written: Sequence[str]) -> str:
    """What the model reads of a run: its logs (within :data:`LOGS_BUDGET`) and files."""
    logs = "".join(str(o.get("logs") or "") for o in outputs if o.get("type") == "logs")
    if len(logs) > LOGS_BUDGET:
        logs = logs[: LOGS_BUDGET // 2] + "\n[…]\n" + logs[-LOGS_BUDGET // 2 :]
    text = logs.strip() or "(the code ran and printed nothing)"
    if written:
        text += "\nFiles written: " + ", ".join(written)
    return text


def install(sandboxes: Sandboxes | None, *, enabled: bool = True) -> CodeInterpreterKind:
    """Serve ``code_interpreter`` with ``sandboxes`` (a plugin loaded later may still
    replace it)."""
    kind = CodeInterpreterKind(sandboxes, enabled=enabled)
    register_tool("code_interpreter", kind)
    return kind


# Until the server installs its sandboxes, the kind refuses the tool (and replays items).
TOOL = CodeInterpreterKind(None)
