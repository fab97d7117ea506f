"""The table page's explorer in Chromium (Debian's, driven by Playwright) against
`ess-export serve` on a demo publish: its rows and its CSV are those of `ess-export query`,
a tampered day file is refused, and without JavaScript the page keeps its preview and links.
The vendored Parquet reader is the one its pin file names."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from exporter.site.assets import assets
from tests.test_site_browser import browser as browser  # noqa: F401 - the shared fixture
from tests.test_site_browser import serve

REPO = Path(__file__).resolve().parents[1]
VENDOR = REPO / "site_templates" / "vendor"
FIELDS = ["timestamp", "rack_soc", "rack_voltage"]
QUERY = [
    "--site",
    "1",
    "--table",
    "rack",
    "--bank",
    "1",
    "--rack",
    "2",
    "--fields",
    ",".join(FIELDS),
]
RANGE = ["--start", "2022-09-02T00:00:00", "--end", "2022-09-03T23:59:59.999999"]


def test_the_committed_bundle_is_the_pinned_one() -> None:
    pinned = (VENDOR / "bundle.sha256").read_text().split()
    bundle = (VENDOR / "hyparquet.bundle.js").read_bytes()
    assert pinned == [hashlib.sha256(bundle).hexdigest(), "hyparquet.bundle.js"]
    lock = json.loads((VENDOR / "package-lock.json").read_text())
    versions = {
        k.removeprefix("node_modules/"): v["version"] for k, v in lock["packages"].items() if k
    }
    assert {k: versions[k] for k in ("hyparquet", "hyparquet-compressors", "esbuild")} == {
        "hyparquet": "1.33.0",
        "hyparquet-compressors": "1.1.2",
        "esbuild": "0.28.2",
    }
    licenses = sorted(p.name for p in (VENDOR / "LICENSES").iterdir())
    assert licenses == [
        "fzstd-0.1.1.txt",
        "hyparquet-1.33.0.txt",
        "hyparquet-compressors-1.1.2.txt",
        "hysnappy-1.1.1.txt",
    ]
    assert bundle in assets().values()


@pytest.fixture(scope="module")
def tree(demo_published: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("explore") / "public"
    shutil.copytree(demo_published, root)
    return root


@pytest.fixture(scope="module")
def server(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(tree, tmp_path_factory)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()
    assert errors == []


def ess(*args: str) -> bytes:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def choose(page: Page, server: str) -> None:
    page.goto(server + "sites/1/rack/index.html")
    expect(page.locator("#explorer[data-ready=true]")).to_have_count(1)
    page.fill("input[name=from]", "2022-09-02")
    page.fill("input[name=to]", "2022-09-03")
    page.fill("input[name=bank]", "1")
    page.fill("input[name=rack]", "2")
    for box in page.locator(".fields input[type=checkbox]").all():
        if box.get_attribute("name").removeprefix("f-") not in FIELDS:
            box.uncheck()


def test_the_first_page_and_the_csv_equal_ess_export_query(
    tree: Path, server: str, page: Page, tmp_path: Path
) -> None:
    choose(page, server)
    started = time.perf_counter()
    page.get_by_role("button", name="Show rows").click()
    expect(page.locator("#explorer-rows tbody tr")).to_have_count(100)
    print(
        f"\nfirst preview of 2 days: {page.locator('#explorer').get_attribute('data-ms')} ms "
        f"in the page, {1000 * (time.perf_counter() - started):.0f} ms from the click"
    )
    expect(page.locator("#explorer-page")).to_have_text("Page 1 of 3 · 288 rows")

    expected = json.loads(ess("query", str(tree), *QUERY, *RANGE, "--page", "1"))
    header = page.locator("#explorer-rows thead th").all_inner_texts()
    shown = [
        row.locator("td").all_inner_texts() for row in page.locator("#explorer-rows tbody tr").all()
    ]
    assert header == FIELDS
    assert shown == [
        [r["timestamp"], repr(r["rack_soc"]), repr(r["rack_voltage"])] for r in expected["results"]
    ]
    assert expected["count"] == 288

    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    saved = Path(download.value.path()).read_bytes()
    assert saved == ess("query", str(tree), *QUERY, *RANGE, "--format", "csv")
    assert download.value.suggested_filename == "1_rack_2022-09-02_2022-09-03.csv"

    # "Copy as ess-export query", run as shown, gives the same bytes.
    command = page.locator("#explorer-copy").inner_text()
    assert command.startswith("ess-export query http://127.0.0.1:")
    args = command.split()[2:]
    assert ess("query", str(tree), *args[1:]) == saved
    page.select_option("select[name=copy]", "duckdb")
    expect(page.locator("#explorer-copy")).to_contain_text(
        "\"date\" BETWEEN '2022-09-02' AND '2022-09-03'"
    )


def test_a_tampered_day_is_refused_with_a_visible_message(
    tree: Path, server: str, page: Page
) -> None:
    day = tree / "data/parquet/site=1/table=rack/date=2022-09-03/1_rack_2022-09-03.parquet"
    original = day.read_bytes()
    try:
        middle = len(original) // 2  # one flipped byte: a valid-looking file, another sha256
        day.write_bytes(
            original[:middle] + bytes([original[middle] ^ 0xFF]) + original[middle + 1 :]
        )
        choose(page, server)
        page.get_by_role("button", name="Show rows").click()
        expect(page.locator(".explorer-status.bad")).to_contain_text(
            "Refused 2022-09-03: data/parquet/site=1/table=rack/date=2022-09-03/"
            "1_rack_2022-09-03.parquet does not match its SHA-256"
        )
        expect(page.locator("#explorer-rows")).to_have_count(0)
        # Before refusing, it looked for the day in the site's journal (the reader rule),
        # which this publish does not have: the browser logs that 404, and nothing else.
        assert page.errors == [  # type: ignore[attr-defined]
            "Failed to load resource: the server responded with a status of 404 (File not found)"
        ]
        page.errors.clear()  # type: ignore[attr-defined]
    finally:
        day.write_bytes(original)


def test_without_javascript_the_preview_and_every_link_stay(server: str, browser: Browser) -> None:  # noqa: F811
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(server + "sites/1/rack/index.html")
    expect(page.locator("table.preview tbody tr")).to_have_count(20)
    expect(page.locator(".explorer-status")).to_contain_text("needs JavaScript")
    expect(page.locator("#months a")).to_have_count(1)
    page.goto(server + "sites/1/rack/2022-09/index.html")
    expect(page.locator("a.file")).to_have_count(6)
    context.close()


def test_from_a_file_url_the_explorer_says_it_needs_http(tree: Path, page: Page) -> None:
    page.goto((tree / "sites/1/rack/index.html").as_uri())
    expect(page.locator(".explorer-status")).to_contain_text("served over http(s)")
    expect(page.locator("table.preview tbody tr")).to_have_count(20)


def test_page_weight(tree: Path) -> None:
    html = (tree / "sites/1/rack/index.html").stat().st_size
    scripts = {key: len(data) for key, data in assets().items()}
    print(
        f"\ntable page: {html:,} B HTML + " + " + ".join(f"{k} {v:,} B" for k, v in scripts.items())
    )
    assert all((tree / key).read_bytes() == data for key, data in assets().items())
