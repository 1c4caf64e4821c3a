"""Imports flow one way: the engine-neutral core and the engines never reach up into the
request side, so a backend or engine can be written (or replaced) without the HTTP layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "oasis"

FORBIDDEN = {
    "core": ("engines", "services", "api", "wire", "responses", "tools"),
    "engines": ("services", "api", "wire", "responses", "tools"),
    "retrieval": ("engines", "services", "api", "wire", "responses", "tools", "store"),
    "tools": ("services", "api", "responses"),
    "search": ("services", "api", "wire", "responses", "tools"),
    "sandbox": ("services", "api", "wire", "responses", "tools", "store", "engines"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ``oasis.*`` module a file imports (type-checking-only imports included)."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] == "oasis"]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downwards(package: str) -> None:
    files = sorted((SRC / package).rglob("*.py"))
    assert files
    wrong = [
        f"{path.relative_to(SRC)}:{line} imports {name}"
        for path in files
        for line, name in _imports(path)
        if name.split(".")[1] in FORBIDDEN[package]
    ]
    assert not wrong, "\n".join(wrong)
