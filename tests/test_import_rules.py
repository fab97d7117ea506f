"""The package's import rules, read from the source (no module is imported here).

Data flows one way: config -> plan -> sources -> write -> publish -> site, with the read
side (catalog, query, site, verify) beside it. Readers of a publish must never load the
export stack, and configuration sits below everything.

A name in these rules is a top-level part of `exporter`: a module (`layout.py`) or a
package (`storage/`, whose files all count as `storage`). Cycles are looked for between
files, so a package's own modules may not import each other in a circle either.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "exporter"
WRITE_SIDE = {
    "publish", "write", "sources", "survey", "export", "pipeline", "commit", "heal", "demo", "cli",
}  # fmt: skip
READ_SIDE = [
    "serve",
    "catalog",
    "query",
    "formats",
    "site",
    "verification",
    "journal",
    "manifest",
    "api",
]


def dotted(path: Path) -> str:
    """`exporter/storage/s3.py` -> `storage.s3`; a package's `__init__.py` -> `storage`."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def files() -> dict[str, Path]:
    found = {dotted(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    found.pop("", None)  # exporter/__init__.py
    found.pop("__main__", None)
    return found


def _resolve(name: str) -> str | None:
    """The longest known file for a dotted name (`storage.s3.make` -> `storage.s3`)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in files():
            return ".".join(parts)
        parts.pop()
    return None


@cache
def file_imports(node: str) -> frozenset[str]:
    """The package files `node` imports, anywhere in it (also inside functions)."""
    path = files()[node]
    is_package = path.name == "__init__.py"
    here = node.split(".") if is_package else node.split(".")[:-1]
    found = set()
    for item in ast.walk(ast.parse(path.read_text())):
        if isinstance(item, ast.ImportFrom) and item.level > 0:
            base = here[: len(here) - (item.level - 1)] if item.level > 1 else list(here)
            if item.module:
                base = [*base, *item.module.split(".")]
                targets = [".".join(base + [a.name]) for a in item.names] + [".".join(base)]
            else:
                targets = [".".join([*base, a.name]) for a in item.names]
        elif isinstance(item, ast.ImportFrom) and (item.module or "").startswith("exporter."):
            base = item.module.split(".")[1:]
            targets = [".".join(base + [a.name]) for a in item.names] + [".".join(base)]
        elif isinstance(item, ast.Import):
            targets = [
                a.name[len("exporter.") :] for a in item.names if a.name.startswith("exporter.")
            ]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != node:
                found.add(resolved)
    return frozenset(found)


def top(node: str) -> str:
    return node.split(".")[0]


def imports(module: str) -> frozenset[str]:
    """The other top-level parts that `module` (a module or a whole package) imports."""
    mine = [n for n in files() if top(n) == module]
    return frozenset(top(t) for n in mine for t in file_imports(n)) - {module}


def reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for name in imports(todo.pop()):
            if name not in seen:
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
    assert imports("formats") == frozenset()
    assert imports("dsn") == frozenset()
    assert imports("settings") == frozenset()
    assert imports("config") <= {"errors", "layout", "dictionary", "formats", "dsn", "settings"}


def test_only_the_cli_imports_click() -> None:
    users = set()
    for node, path in files().items():
        for item in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in item.names]
                if isinstance(item, ast.Import)
                else [item.module or ""]
                if isinstance(item, ast.ImportFrom) and item.level == 0
                else []
            )
            if any(n.split(".")[0] == "click" for n in names):
                users.add(top(node))
    assert users == {"cli"}


def test_there_are_no_import_cycles_between_files() -> None:
    def from_(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for name in file_imports(todo.pop()):
                if name not in seen:
                    seen.add(name)
                    todo.append(name)
        return seen

    assert [n for n in files() if n in from_(n)] == []


def test_the_rules_see_every_part() -> None:
    # A rule over names that no longer exist would pass for nothing.
    known = {top(n) for n in files()}
    assert WRITE_SIDE - known == set()
    assert set(READ_SIDE) - known == set()
    assert {"api"} <= known


@pytest.mark.parametrize(
    ("package", "shared"),
    [("storage", {"storage.base"}), ("sources", {"sources.base", "sources.schema"})],
)
def test_a_backend_imports_only_the_shared_base_of_its_package(package: str, shared: set) -> None:
    # The scheme dispatch sits in the package's __init__, which imports the backends.
    backends = [n for n in files() if top(n) == package and n != package and n not in shared]
    assert backends
    for backend in backends:
        assert {n for n in file_imports(backend) if top(n) == package} <= shared, backend
