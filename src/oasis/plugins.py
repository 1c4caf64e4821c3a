"""Named plugins: a built-in ``module:attr`` path or an entry point, imported on first use.

Engines (``oasis.engines``) and tool kinds (``oasis.tools``) are found the same way, so a
third-party package adds either exactly as a built-in one is added.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any


def plugin_target(group: str, name: str, builtin: Mapping[str, str]) -> str | None:
    """The ``module:attr`` path for ``name``: the built-in one, else its entry point in
    ``group``; None when neither exists."""
    target = builtin.get(name)
    if target is not None:
        return target
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.value
    return None


def load_target(target: str) -> Any:
    """The object a ``module:attr`` path names (importing the module may raise)."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
