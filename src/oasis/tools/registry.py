"""Tool kinds by ``tools[i].type``. Built-in kinds register here exactly as a plugin would.

A third-party package adds a kind through the ``oasis.tools`` entry-point group (the entry
point names a :class:`~oasis.tools.base.ToolKind` object), or a module listed in the
``tool_plugins`` setting calls :func:`register_tool` when the server imports it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points

from oasis.plugins import load_target, plugin_target
from oasis.tools.base import ReplayedCall, ReplayedOutput, ToolKind
from oasis.types import Item

# type -> "module:attr"; imported the first time a request uses that type.
_BUILTIN: dict[str, str] = {
    "function": "oasis.tools.function:TOOL",
    "custom": "oasis.tools.custom:TOOL",
    "image_generation": "oasis.tools.image_generation:TOOL",
    "file_search": "oasis.tools.file_search:TOOL",
    **dict.fromkeys(
        [
            "web_search",
            "web_search_2025_08_26",
            "web_search_preview",
            "web_search_preview_2025_03_11",
        ],
        "oasis.tools.web_search:TOOL",
    ),
    "mcp": "oasis.tools.mcp:TOOL",
    "computer_use_preview": "oasis.tools.computer_use:TOOL",
    "computer": "oasis.tools.computer_use:GA_TOOL",
    "code_interpreter": "oasis.tools.code_interpreter:TOOL",
}
_kinds: dict[str, ToolKind] = {}
_by_item: dict[str, ToolKind | None] = {}  # output item type -> the kind that made it


def register_tool(type_: str, kind: ToolKind | str) -> None:
    """Serve ``tools`` entries of ``type_`` with ``kind`` (or a ``module:attr`` path)."""
    if isinstance(kind, str):
        _kinds.pop(type_, None)
        _BUILTIN[type_] = kind
    else:
        _kinds[type_] = kind
    _by_item.clear()


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


def replay_item(item: Item) -> ReplayedCall | ReplayedOutput | None:
    """How a stored hosted-tool ``item`` reads to the model on a later turn (through the
    kind whose ``item_types`` lists its type); None when no kind claims it or the model
    does not see it."""
    item_type = str(item.get("type"))
    if item_type not in _by_item:
        _by_item[item_type] = _kind_for_item(item_type)
    kind = _by_item[item_type]
    return None if kind is None else kind.replay(item)


def _kind_for_item(item_type: str) -> ToolKind | None:
    # A stored item can outlive the process that made it, so every known kind is asked
    # (each is imported once; a kind that fails to import is skipped here, and reports
    # itself when a request names its type).
    names = {*_BUILTIN, *_kinds, *(ep.name for ep in entry_points(group="oasis.tools"))}
    for name in sorted(names):
        try:
            kind = get_tool(name)
        except Exception:
            continue
        if kind is not None and item_type in getattr(kind, "item_types", ()):
            return kind
    return None
