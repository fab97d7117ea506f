"""The index site in a real browser: headless Chromium (Debian's) driven by Playwright.

A reader opens the landing page served by `ess-export serve`, clicks through to a table,
downloads a day's CSV and Parquet and checks them against the manifest, then runs the
page's curl example. Screenshots of the three page kinds go to test-artifacts/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from exporter.site import build_site
from exporter.storage import LocalTarget
from tests.conftest import published_manifest
from tests.test_site import hostile_pages

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"  # Debian's package, installed by .ci/system-deps.sh
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def tree(published: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browse") / "public"
    shutil.copytree(published, root, ignore=shutil.ignore_patterns("*.html"))
    build_site(LocalTarget(root))
    return root


@pytest.fixture(scope="module")
def server(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(tree, tmp_path_factory)


def serve(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`ess-export serve` on a free loopback port; yields its base URL."""
    log = (tmp_path_factory.mktemp("serve") / "requests.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "serve", "--target", str(tree), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=REPO,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert "http://127.0.0.1:" in line, line
        url = line.split("http://", 1)[1].split()[0]
        base = "http://" + url.rsplit("/", 1)[0] + "/"
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(base + "index.html", timeout=1) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "ess-export serve did not answer"
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    assert errors == []  # no script error and no CSP violation


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, full_page=True)


def sha256(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_browse_from_the_landing_page_to_a_download(tree: Path, server: str, page: Page) -> None:
    manifest = published_manifest(tree, "1")
    day = manifest.tables["rack"].partitions[0]

    page.goto(server + "index.html")
    expect(page.get_by_role("heading", level=1)).to_have_text("Round-trip test")
    expect(page.locator("#total-sites dd")).to_have_text("2")
    screenshot(page, "site-landing.png")

    page.get_by_role("link", name="Site 1", exact=True).click()
    expect(page).to_have_url(server + "sites/1/index.html")
    expect(page.get_by_role("heading", level=1)).to_have_text("Site 1")
    screenshot(page, "site-site.png")

    page.locator("#tables").get_by_role("link", name="rack", exact=True).click()
    expect(page).to_have_url(server + "sites/1/rack/index.html")
    expect(page.get_by_role("heading", level=1)).to_have_text("rack")
    screenshot(page, "site-table.png")

    # The script shows this server's URL in the examples.
    curl = page.locator("pre[data-snippet=curl]")
    expect(curl).to_contain_text(f"BASE='{server.rstrip('/')}'")

    page.locator("#months").get_by_role("link", name="Sep 2022", exact=True).click()
    expect(page).to_have_url(server + "sites/1/rack/2022-09/index.html")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sep 2022")
    screenshot(page, "site-month.png")
    row = page.locator(f"#d-{day.date}")
    for fmt in ("csv", "parquet"):
        with page.expect_download() as download:
            row.locator(f"a.file.{fmt}").click()
        assert download.value.suggested_filename == Path(day.files[fmt].path).name
        assert sha256(download.value.path()) == day.files[fmt].sha256
    expect(page.locator("tr[data-day]")).to_have_count(len(manifest.tables["rack"].partitions))

    # A calendar day of the table's page links to its row on the month's page.
    page.go_back()
    page.locator(f'svg.calendar a[href="2022-09/index.html#d-{day.date}"]').click()
    expect(page).to_have_url(server + f"sites/1/rack/2022-09/index.html#d-{day.date}")


def test_the_curl_example_downloads_every_day(
    tree: Path, server: str, page: Page, tmp_path: Path
) -> None:
    page.goto(server + "sites/2/bank/index.html")
    snippet = page.locator("pre[data-snippet=curl]").inner_text()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", snippet],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    manifest = published_manifest(tree, "2")
    partitions = manifest.tables["bank"].partitions
    for p in partitions:
        assert sha256(tmp_path / p.files["parquet"].path) == p.files["parquet"].sha256
    assert sha256(tmp_path / Path(partitions[-1].files["csv"].path).name) == (
        partitions[-1].files["csv"].sha256
    )


def test_pages_fit_a_phone_screen(server: str, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    for path in (
        "index.html",
        "sites/1/index.html",
        "sites/1/rack/index.html",
        "sites/1/rack/2022-09/index.html",
    ):
        page.goto(server + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, overflow)
    screenshot(page, "site-table-phone.png")
    context.close()


def test_the_landing_page_works_from_a_file_url(tree: Path, page: Page) -> None:
    page.goto((tree / "index.html").as_uri())
    expect(page).to_have_title("Round-trip test")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.locator("a[href='sites/2/index.html']")).to_have_count(1)
    page.get_by_role("link", name="Site 2", exact=True).click()
    expect(page).to_have_url((tree / "sites/2/index.html").as_uri())
    expect(page.locator("#tables tbody tr")).to_have_count(4)


def test_hostile_pages_run_nothing_in_a_browser(page: Page, tmp_path: Path) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    pages = {k: v for k, v in hostile_pages().items() if k.endswith(".html")}
    for key, html in pages.items():
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(html)
    for key in pages:
        page.goto((tmp_path / key).as_uri())
        expect(page.locator("main")).to_contain_text("<script>alert(1)</script>")
        for link in page.locator("a[href]").all():
            assert not (link.get_attribute("href") or "").lower().startswith("javascript")
    assert dialogs == []


# --- a phone's width: 390 px ---------------------------------------------------------------

PHONE_PAGES = [
    "index.html",
    "sites/1/index.html",
    "sites/1/rack/index.html",
    "sites/1/rack/2022-09/index.html",
]
# What a reader downloads or follows to a download: the day files, the URL lists, the
# machine-readable documents, and the links of the tables and cards that lead to them.
DOWNLOADS = (
    "main a.file, main a.url-list, main a[href$='.json'], .cards a, #tables a, #months a, "
    "#days a, .foot a"
)
BOXES = """selector => [...document.querySelectorAll(selector)].map(a => {
  const r = a.getBoundingClientRect();
  return [a.getAttribute("href"), Math.floor(r.left), Math.ceil(r.right)];
})"""
# Words a line may not split: dates (2022-09-01, 2022-09) and Korean words. A word split
# across lines has boxes on two lines.
SPLIT_WORDS = r"""() => {
  const split = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const word = /[0-9]{4}-[0-9]{2}(-[0-9]{2})?|[\uac00-\ud7a3]+/g;
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest("pre, script, style, title, .sha")) continue;
    for (const m of node.data.matchAll(word)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = new Set([...range.getClientRects()].filter(r => r.width > 0)
        .map(r => Math.round(r.top)));
      if (tops.size > 1) split.push(m[0]);
    }
  }
  return split;
}"""


@pytest.fixture(scope="module")
def korean_server(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same publish with a Korean catalog: every page rendered again in Korean."""
    root = tmp_path_factory.mktemp("ko") / "public"
    shutil.copytree(tree, root)
    catalog = json.loads((root / "catalog.json").read_text())
    (root / "catalog.json").write_text(json.dumps({**catalog, "language": "ko"}))
    build_site(LocalTarget(root))
    yield from serve(root, tmp_path_factory)


@pytest.mark.parametrize("language", ["en", "ko"])
def test_at_390_px_every_download_link_is_on_screen_and_no_word_splits(
    server: str, korean_server: str, browser: Browser, language: str
) -> None:
    base = server if language == "en" else korean_server
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    found = {}
    for path in PHONE_PAGES:
        page.goto(base + path)
        boxes = page.evaluate(BOXES, DOWNLOADS)
        assert boxes, path
        found[path] = {
            "wider than the screen": page.evaluate("document.documentElement.scrollWidth") > 390,
            "links off screen": [(h, x0, x1) for h, x0, x1 in boxes if x0 < 0 or x1 > 390],
            "split words": sorted(set(page.evaluate(SPLIT_WORDS))),
        }
        name = path.removesuffix("index.html").strip("/").replace("/", "-") or "landing"
        screenshot(page, f"phone-{language}-{name}.png")
    context.close()
    problems = {path: {k: v for k, v in got.items() if v} for path, got in found.items()}
    assert {path: got for path, got in problems.items() if got} == {}
