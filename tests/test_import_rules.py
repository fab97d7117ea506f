"""The package's import rules, read from the source (no module is imported here).

Data flows one way: config -> plan -> sources -> write -> publish -> site, with the read
side (catalog, query, site, verify) beside it. Readers of a publish must never load the
export stack, and configuration sits below everything.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "exporter"
WRITE_SIDE = {"publish", "write", "sources", "pipeline", "commit", "heal", "demo", "cli"}
READ_SIDE = ["catalog", "query", "engine", "site", "cache", "verification", "journal", "manifest"]


@cache
def imports(module: str) -> frozenset[str]:
    """The package modules `module` imports, anywhere in it (also inside functions)."""
    path = PACKAGE / f"{module}.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return frozenset(found - {module})


def reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for name in imports(todo.pop()):
            if name not in seen and (PACKAGE / f"{name}.py").exists():
                seen.add(name)
                todo.append(name)
    return seen


@pytest.mark.parametrize("module", READ_SIDE)
def test_the_read_side_never_reaches_the_export_stack(module: str) -> None:
    assert reachable(module) & WRITE_SIDE == set()


def test_config_and_layout_import_nothing_above_them() -> None:
    assert imports("layout") == frozenset()
    assert imports("errors") == frozenset()
    assert imports("dictionary") <= {"errors"}
    assert imports("config") <= {"errors", "layout", "dictionary"}


def test_only_the_cli_imports_click() -> None:
    users = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            if any(n.split(".")[0] == "click" for n in names):
                users.add(path.stem)
    assert users == {"cli"}


def test_there_are_no_import_cycles() -> None:
    modules = [p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")]
    cycles = [m for m in modules if m in reachable(m)]
    assert cycles == []
