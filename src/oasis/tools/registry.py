"""Tool kinds by ``tools[i].type``. Built-in kinds register here exactly as a plugin would.

A third-party package adds a kind through the ``oasis.tools`` entry-point group (the entry
point names a :class:`~oasis.tools.base.ToolKind` object), or a module listed in the
``tool_plugins`` setting calls :func:`register_tool` when the server imports it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from oasis.plugins import load_target, plugin_target
from oasis.tools.base import ToolKind

# type -> "module:attr"; imported the first time a request uses that type.
_BUILTIN: dict[str, str] = {
    "function": "oasis.tools.function:TOOL",
    "file_search": "oasis.tools.file_search:TOOL",
}
_kinds: dict[str, ToolKind] = {}


def register_tool(type_: str, kind: ToolKind | str) -> None:
    """Serve ``tools`` entries of ``type_`` with ``kind`` (or a ``module:attr`` path)."""
    if isinstance(kind, str):
        _kinds.pop(type_, None)
        _BUILTIN[type_] = kind
    else:
        _kinds[type_] = kind


def load_plugins(modules: Iterable[str]) -> None:
    """Import each module (which registers its tools as it is imported)."""
    for name in modules:
        importlib.import_module(name)


def get_tool(type_: str) -> ToolKind | None:
    """The kind registered for ``type_`` (built-in, registered, or an entry point)."""
    if type_ in _kinds:
        return _kinds[type_]
    target = plugin_target("oasis.tools", type_, _BUILTIN)
    if target is None:
        return None
    kind: ToolKind = load_target(target)
    _kinds[type_] = kind
    return kind
