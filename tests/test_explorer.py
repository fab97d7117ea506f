"""The table page's explorer in Chromium (Debian's, driven by Playwright) against
`ess-export serve` on a demo publish: its rows are those of `ess-export query`; its CSV is
`ess-export query --format csv` byte for byte, streamed to a picked file or built from day
chunks; every "Copy as" text, read from the clipboard and run, gives the same rows; a tampered
day file is refused; at 390 px its controls fit; without JavaScript the page keeps its
preview and links. The vendored Parquet reader is the one its pin file names."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Browser, Page, expect

from exporter.site.assets import assets
from tests.conftest import published_manifest
from tests.test_site_browser import browser as browser  # noqa: F401 - the shared fixture
from tests.test_site_browser import serve, sha256

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


@pytest.fixture(scope="module")
def api(tree: Path) -> Iterator[str]:
    """`ess-export api` on the same publish; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "exporter", "api", "--target", str(tree), "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "no ess-export api"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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


def preview_header(page: Page) -> list[str]:
    return page.locator("#explorer-rows thead th").all_inner_texts()


def preview_rows(page: Page) -> list[list[str]]:
    return [
        row.locator("td").all_inner_texts() for row in page.locator("#explorer-rows tbody tr").all()
    ]


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


def test_the_first_page_equals_ess_export_query(tree: Path, server: str, page: Page) -> None:
    choose(page, server)
    page.get_by_role("button", name="Show rows").click()
    expect(page.locator("#explorer-rows tbody tr")).to_have_count(100)
    expect(page.locator("#explorer-page")).to_have_text("Page 1 of 3 · 288 rows")

    expected = json.loads(ess("query", str(tree), *QUERY, *RANGE, "--page", "1"))
    assert preview_header(page) == FIELDS
    assert preview_rows(page) == [
        [r["timestamp"], repr(r["rack_soc"]), repr(r["rack_voltage"])] for r in expected["results"]
    ]
    assert expected["count"] == 288


def test_the_first_preview_of_a_day_is_timed(tree: Path, server: str, page: Page) -> None:
    choose(page, server)
    page.fill("input[name=from]", "2022-09-03")
    started = time.perf_counter()
    page.get_by_role("button", name="Show rows").click()
    expect(page.locator("#explorer-page")).to_have_text("Page 1 of 2 · 144 rows")
    clicked = 1000 * (time.perf_counter() - started)
    day = next(tree.glob("data/parquet/site=1/table=rack/date=2022-09-03/*.parquet"))
    print(  # measured, never asserted: the machine is shared
        f"\nfirst preview of one day (site 1 rack, a {day.stat().st_size:,} B file): "
        f"{page.locator('#explorer').get_attribute('data-ms')} ms in the page, "
        f"{clicked:.0f} ms from the click"
    )


# The File System Access API's picker opens a native dialog; headless Chromium aborts it. The
# test hands the explorer a real file handle of the origin-private file system instead, so its
# writable stream (createWritable, write, close) is the browser's own.
PICKER = """
window.writes = [];
window.showSaveFilePicker = async (options) => {
  window.picked = options.suggestedName;
  const dir = await navigator.storage.getDirectory();
  const handle = await dir.getFileHandle("picked.csv", { create: true });
  return {
    createWritable: async () => {
      const out = await handle.createWritable();
      const write = out.write.bind(out);
      out.write = (data) => { window.writes.push(data.length); return write(data); };
      return out;
    },
  };
};
"""
READ_PICKED = """async () => {
  const dir = await navigator.storage.getDirectory();
  const file = await (await dir.getFileHandle("picked.csv")).getFile();
  return Array.from(new Uint8Array(await file.arrayBuffer()));
}"""


def size_note(page: Page) -> tuple[int, float]:
    """The rows and bytes the size note announces before a download."""
    note = page.locator("#explorer-size").inner_text()
    found = re.search(r"2 day file\(s\), about ([\d,]+) rows and ([\d.]+) kB", note)
    assert found, note
    return int(found[1].replace(",", "")), float(found[2]) * 1000


def test_download_streams_a_day_at_a_time_to_the_picked_file(
    tree: Path, server: str, page: Page
) -> None:
    page.add_init_script(PICKER)
    choose(page, server)
    expect(page.locator("#explorer-size")).to_contain_text("written there a day at a time")
    rows, estimated = size_note(page)
    page.get_by_role("button", name="Download CSV").click()
    expect(page.locator(".explorer-status")).to_have_text(
        "Saved 288 rows of 2 day file(s), each matching its SHA-256."
    )
    saved = bytes(page.evaluate(READ_PICKED))
    assert saved == ess("query", str(tree), *QUERY, *RANGE, "--format", "csv")
    assert page.evaluate("window.picked") == "1_rack_2022-09-02_2022-09-03.csv"
    header = len("timestamp,rack_soc,rack_voltage\n")
    assert page.evaluate("window.writes.length") == 3  # the header, then one write a day
    assert page.evaluate("window.writes[0]") == header
    assert rows == 288 and 0.5 < estimated / len(saved) < 2, (estimated, len(saved))


def test_without_a_picker_the_download_is_built_from_day_chunks(
    tree: Path, server: str, page: Page
) -> None:
    page.add_init_script("window.showSaveFilePicker = undefined;")  # as in Firefox and Safari
    choose(page, server)
    expect(page.locator("#explorer-size")).to_contain_text(
        "built in memory first (at most 62 days)"
    )
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    saved = Path(download.value.path()).read_bytes()
    assert saved == ess("query", str(tree), *QUERY, *RANGE, "--format", "csv")
    assert download.value.suggested_filename == "1_rack_2022-09-02_2022-09-03.csv"
    expect(page.locator("#explorer-csv")).to_have_text(
        f"1_rack_2022-09-02_2022-09-03.csv ({len(saved) / 1000:.3g} kB)"
    )


def test_headless_chromium_has_a_picker_and_cancelling_it_writes_nothing(
    server: str, page: Page
) -> None:
    """Left as it is, headless Chromium takes the streaming path; its picker aborts like a
    reader's Cancel, and the explorer says so and downloads nothing."""
    choose(page, server)
    expect(page.locator("#explorer-size")).to_contain_text("written there a day at a time")
    page.get_by_role("button", name="Download CSV").click()
    expect(page.locator(".explorer-status")).to_have_text("Download cancelled.")
    expect(page.locator("#explorer-csv")).to_have_count(0)


def copied(page: Page, kind: str) -> str:
    """Choose a "Copy as" kind, press Copy, and read the text back from the clipboard."""
    page.select_option("select[name=copy]", kind)
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator(".explorer-status")).to_contain_text("Copied the")
    return page.evaluate("navigator.clipboard.readText()")


def test_every_copy_as_text_runs_and_gives_the_same_rows(
    tree: Path, server: str, api: str, page: Page, tmp_path: Path
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    choose(page, server)
    page.get_by_role("button", name="Show rows").click()
    expect(page.locator("#explorer-rows tbody tr")).to_have_count(100)
    shown = preview_rows(page)
    csv = ess("query", str(tree), *QUERY, *RANGE, "--format", "csv")
    every = json.loads(ess("query", str(tree), *QUERY, *RANGE, "--page-size", "1000"))["results"]
    assert len(every) == 288

    # ess-export query, as copied (its base is this server: the files come over HTTP).
    command = shlex.split(copied(page, "query"))
    assert command[:3] == ["ess-export", "query", server.rstrip("/")]
    env = {**os.environ, "ESS_EXPORT_CACHE": str(tmp_path / "cache")}
    ran = subprocess.run(
        [str(Path(sys.executable).parent / "ess-export"), *command[1:]],
        capture_output=True,
        timeout=120,
        env=env,
        check=True,
    )
    assert ran.stdout == csv

    # DuckDB SQL: httpfs (DuckDB's reader of http:// URLs) cannot be downloaded here, so the
    # statement runs on the served directory itself: the base URL replaced by its path.
    sql = copied(page, "duckdb")
    assert sql.count(server) == 2
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Seoul'")  # the site's zone, as ess-export query gives
    got = con.execute(sql.replace(server, f"{tree}/")).fetchall()
    assert [(t.isoformat(), soc, volts) for t, soc, volts in got] == [
        (r["timestamp"], r["rack_soc"], r["rack_voltage"]) for r in every
    ]

    # The curl list, run by bash in an empty folder: every file it fetches is the manifest's.
    urls = copied(page, "curl")
    subprocess.run(
        ["bash", "-e"],
        input=urls,
        cwd=tmp_path,
        capture_output=True,
        check=True,
        timeout=60,
        text=True,
    )
    days = published_manifest(tree, "1").tables["rack"].partitions
    sums = {Path(d.files["parquet"].path).name: d.files["parquet"].sha256 for d in days}
    fetched = {p.name: sha256(p) for p in tmp_path.glob("*.parquet")}
    assert sorted(fetched) == ["1_rack_2022-09-02.parquet", "1_rack_2022-09-03.parquet"]
    assert fetched == {name: sums[name] for name in fetched}

    # The API URL, asked of `ess-export api` on the same publish (its host put in the site's).
    url = copied(page, "api").replace(server, api)
    with urllib.request.urlopen(url, timeout=60) as reply:
        answer = json.loads(reply.read())
    assert answer["count"] == 288
    assert [
        [r["timestamp"] + "+09:00", repr(r["rack_soc"]), repr(r["rack_voltage"])]
        for r in answer["results"]
    ] == shown


def test_at_390_px_the_controls_fit_without_a_horizontal_scroll(
    server: str,
    browser: Browser,  # noqa: F811
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    choose(page, server)
    page.get_by_role("button", name="Show rows").click()
    expect(page.locator("#explorer-rows tbody tr")).to_have_count(100)
    controls = page.locator("#explorer :is(input, select, button)").all()
    assert len(controls) > 20
    outside = []
    for control in controls:
        control.scroll_into_view_if_needed()
        box = control.bounding_box()
        assert box is not None
        if box["x"] < 0 or box["x"] + box["width"] > 390:
            outside.append((control.get_attribute("name") or control.inner_text(), box))
    assert outside == []
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.getElementById('explorer').scrollWidth]"
    )
    assert widths[1] <= 390 and widths[0] <= 390, widths
    context.close()


def test_a_tampered_day_is_refused_with_a_visible_message(
    tree: Path, server: str, page: Page
) -> None:
    day = tree / "data/parquet/site=1/table=rack/date=2022-09-03/1_rack_2022-09-03.parquet"
    original = day.read_bytes()
    try:
        middle = len(original) // 2  # one flipped byte: a valid-looking file, another sha256
        page.add_init_script(PICKER)
        day.write_bytes(
            original[:middle] + bytes([original[middle] ^ 0xFF]) + original[middle + 1 :]
        )
        choose(page, server)
        page.get_by_role("button", name="Show rows").click()
        refused = (
            "Refused 2022-09-03: data/parquet/site=1/table=rack/date=2022-09-03/"
            "1_rack_2022-09-03.parquet does not match its SHA-256"
        )
        expect(page.locator(".explorer-status.bad")).to_contain_text(refused)
        expect(page.locator("#explorer-rows")).to_have_count(0)
        # A download stops at that day and drops what it had written of the file.
        page.get_by_role("button", name="Download CSV").click()
        expect(page.locator(".explorer-status.bad")).to_contain_text(refused)
        assert page.evaluate("window.writes.length") == 2  # the header and 2022-09-02
        assert page.evaluate(READ_PICKED) == []
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
