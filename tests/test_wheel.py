"""The wheel works anywhere: built from the sources, installed into a fresh venv, run from a
directory outside the checkout, as a new user would.

The fresh venv sees the dependencies already installed in this environment (a .pth line),
so nothing is downloaded; `pip check` then proves the wheel declares what it needs, and
the import scan below proves it declares every package its modules import.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
# What the wheel is built from: the fixed top level of the repository.
SOURCES = ("pyproject.toml", "README.md", "exporter", "site_templates", "config")
PIP = (sys.executable, "-m", "pip")


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"{args}: {result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ess-export's wheel, built (with build isolation) from a copy of the sources."""
    work = tmp_path_factory.mktemp("wheel")
    (work / "src").mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(source, work / "src" / name, ignore=ignore)
        else:
            shutil.copy2(source, work / "src" / name)
    _run(
        *PIP, "wheel", "--quiet", "--no-deps", "--wheel-dir", work / "dist", work / "src", cwd=work
    )
    (built,) = (work / "dist").glob("ess_export-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path) -> Path:
    """A fresh venv holding only the wheel, reusing this environment's dependencies."""
    home = wheel.parent.parent / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", home], check=True)
    (site_packages,) = (home / "lib").glob("python*/site-packages")
    (site_packages / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    python = home / "bin" / "python"
    _run(*PIP, "--python", python, "install", "--quiet", "--no-deps", wheel, cwd=home)
    _run(*PIP, "--python", python, "check", cwd=home)  # every declared dependency is there
    return home


def test_the_wheel_ships_the_templates_labels_and_configurations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {
        p.name for p in (ROOT / "site_templates").iterdir() if p.is_file() and p.suffix != ".py"
    }
    # Of vendor/, the bundle the pages load and its licenses (not what builds it).
    vendor = ROOT / "site_templates" / "vendor"
    templates |= {"vendor/hyparquet.bundle.js"}
    templates |= {f"vendor/LICENSES/{p.name}" for p in (vendor / "LICENSES").iterdir()}
    assert {f"exporter/site_templates/{n}" for n in templates} <= names
    assert "exporter/site_templates/vendor/package-lock.json" not in names
    assert "exporter/site_templates/labels.toml" in names
    configs = {"demo.toml", "sites.toml", "dictionary.toml"}
    assert {f"exporter/config_files/{n}" for n in configs} <= names
    recipes = {f"exporter/config_files/deploy/{p.name}" for p in (ROOT / "config/deploy").iterdir()}
    assert recipes and recipes <= names


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_every_import_of_the_package_is_a_declared_dependency(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = Parser().parsestr(archive.read(metadata).decode()).get_all("Requires-Dist")
    declared = {
        r.split(";")[0].split("[")[0].split("=")[0].split(">")[0].strip().lower()
        for r in requires
        if "extra ==" not in r
    }
    third_party = set().union(*map(_imports, (ROOT / "exporter").glob("*.py")))
    third_party -= set(sys.stdlib_module_names) | {"exporter", "__future__"}
    distributions = packages_distributions()
    undeclared = {
        module: distributions.get(module)
        for module in third_party
        if not {d.lower() for d in distributions.get(module, [module])} & declared
    }
    assert undeclared == {}


def test_the_installed_wheel_runs_demo_run_site_query_sql_verify_outside_the_checkout(
    venv: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ESS_"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    cli = venv / "bin" / "ess-export"

    def ess(*args: str) -> str:
        return _run(cli, *args, cwd=tmp_path, env=env)

    where = _run(
        venv / "bin" / "python", "-c", "import exporter; print(exporter.__file__)", cwd=tmp_path
    )
    assert Path(where.strip()).is_relative_to(venv)
    assert ess("--version") == "ess-export, version 0.1.0\n"
    assert (
        ess("demo", "--days", "1") == "wrote demo-data/ess1.sqlite\nwrote demo-data/ess2.sqlite\n"
    )
    # No --config: the packaged demo configuration, its paths relative to the working directory.
    assert ess("run").startswith("exported 8 partition(s) (0 unchanged), 198831 rows,")
    assert "site 1 table rack: up to date\n" in ess("plan")
    assert json.loads((tmp_path / "public" / "catalog.json").read_text())["sites"]

    (tmp_path / "public" / "index.html").unlink()
    (tmp_path / "public" / "sites" / "1" / "index.html").unlink()
    assert ess("site", "--target", "public") == "wrote 2 page(s) to public\n"
    assert "<html" in (tmp_path / "public" / "index.html").read_text()

    page = ess(
        "query", "public", "--site", "1", "--table", "rack", "--bank", "1", "--rack", "1",
        "--fields", "timestamp,rack_soc", "--start", "2022-09-01T10:00:00",
        "--end", "2022-09-01T10:00:10",
    )  # fmt: skip
    assert json.loads(page) == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [
            {"timestamp": "2022-09-01T10:00:00+09:00", "rack_soc": 89.1},
            {"timestamp": "2022-09-01T10:00:10+09:00", "rack_soc": 89.1},
        ],
    }
    statement = "SELECT site, count(*) AS n FROM rack GROUP BY site ORDER BY site"
    assert json.loads(ess("sql", "public", statement, "--format", "json")) == {
        "count": 2,
        "results": [{"site": "1", "n": 69148}, {"site": "2", "n": 69167}],
    }
    assert ess("verify", "--target", "public") == "checked 16 file(s): 0 problem(s)\n"
