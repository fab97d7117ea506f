"""The static index site: links, numbers, escaping, languages, validity and no-op rebuilds.

Pages are read through html5lib's strict parser, which raises on any HTML5 parse error, so
every page parsed here is also checked to be valid HTML5 syntax.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import duckdb
import html5lib
import msgspec
import pytest

from exporter.errors import PublishError
from exporter.manifest import (
    Column,
    FileEntry,
    Partition,
    Published,
    SiteManifest,
    TableManifest,
    encode_stats,
)
from exporter.pipeline import run
from exporter.site import (
    HTML_TYPE,
    TEMPLATES,
    TEXT_TYPE,
    SiteChanges,
    build_site,
    fmt_bytes,
    fmt_int,
    fmt_time,
    gone_pages,
    href,
    labels,
    put_pages,
    render_site,
)
from exporter.site.assets import ASSET_TYPE, assets
from exporter.storage import LocalTarget
from tests.conftest import DEMO_LATER, demo_config, published_manifest
from tests.support.pages import stale_pages
from tests.support.targets import FailingTarget, RecordingTarget

REPO = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{7*7}}",
    "javascript:alert(1)",
]
HOSTILE_TEXT = " ".join(HOSTILE)
# The publish may already hold pages (a run builds them): start each tree without them.
WITHOUT_PAGES = shutil.ignore_patterns("*.html", "urls-*.txt")


# --- helpers ----------------------------------------------------------------------------


def parse(data: bytes) -> ET.Element:
    """The page's tree; html5lib's strict mode raises on any HTML5 parse error."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    return parser.parse(data, transport_encoding="utf-8")


def text(element: ET.Element) -> str:
    return " ".join("".join(element.itertext()).split())


def by_id(root: ET.Element, id_: str) -> ET.Element:
    found = [e for e in root.iter() if e.get("id") == id_]
    assert len(found) == 1, (id_, len(found))
    return found[0]


def cells(row: ET.Element) -> list[str]:
    return [text(c) for c in row if c.tag in ("th", "td")]


def find(element: ET.Element, path: str) -> ET.Element:
    found = element.find(path)
    assert found is not None, path
    return found


LD = "application/ld+json"


def json_ld(root: ET.Element) -> dict[str, Any]:
    (script,) = [s for s in root.iter("script") if s.get("type") == LD]
    return json.loads(script.text or "")


def snippet(root: ET.Element, name: str) -> str:
    (pre,) = [e for e in root.iter("pre") if e.get("data-snippet") == name]
    return "".join(pre.itertext())


def bibtex_fields(entry: str) -> dict[str, str]:
    """A BibTeX entry's type, key and fields (`name = {value},` one a line)."""
    head = re.fullmatch(r"@(\w+)\{([\w-]+),", entry.splitlines()[0])
    assert head is not None and entry.splitlines()[-1] == "}", entry
    fields = {"@type": head[1], "@key": head[2]}
    for line in entry.splitlines()[1:-1]:
        match = re.fullmatch(r"  (\w+) += \{(.*)\},", line)
        assert match is not None, line
        fields[match[1]] = match[2]
    return fields


def stat(root: ET.Element, id_: str) -> str:
    return text(find(by_id(root, id_), "dd"))


def partition(day: str, rows: int, *, site: str = "1", table: str = "rack", **kw: Any) -> Partition:
    files = {
        fmt: FileEntry(
            f"data/{fmt}/site={site}/table={table}/date={day}/{site}_{table}_{day}.{fmt}",
            rows * 10,
            hashlib.sha256(f"{day}{fmt}".encode()).hexdigest(),
        )
        for fmt in ("parquet", "csv")
    }
    values = {"rack_soc": {"min": 10.0, "max": 90.5, "mean": 50.25, "nulls": 0}}
    fields = dict(complete=True, duplicates=0, stats=values, files=files, fingerprint={})
    fields.update(kw)
    fields["stats_json"] = encode_stats(fields.pop("stats"))
    return Partition(
        date=day,
        rows=rows,
        min_timestamp=f"{day}T00:00:00+09:00",
        max_timestamp=f"{day}T23:59:50+09:00",
        **fields,
    )


COLUMNS = (
    Column("timestamp", "timestamp", "TIMESTAMP", False),
    Column("rack_id", "integer", "RACK_ID", True),
    Column("rack_soc", "float", "RACK_SOC", True, "Rack state of charge", "%"),
)


def manifest(*partitions: Partition, site: str = "1", **kw: Any) -> SiteManifest:
    table = TableManifest(kw.pop("columns", COLUMNS), ("rack_id",), partitions)
    fields = dict(name=f"Site {site}", timezone="Asia/Seoul", generated_at="2022-09-06T00:00:00Z")
    fields.update(kw)
    return SiteManifest(site=site, tables={"rack": table}, **fields)


def catalog(*sites: str, **kw: Any) -> dict[str, Any]:
    document = {
        "title": "Test data",
        "description": "",
        "license": "CC-BY-4.0",
        "citation": "",
        "language": "en",
        "public_base_url": "",
        "generated_at": "2022-09-06T00:00:00Z",
        "sites": [{"site": s, "path": f"sites/{s}/manifest.json"} for s in sites],
    }
    document.update(kw)
    return document


# --- a built copy of the PostgreSQL seed publish ----------------------------------------


@pytest.fixture(scope="module")
def built(published: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("site") / "public"
    shutil.copytree(published, root, ignore=WITHOUT_PAGES)
    target = RecordingTarget(root)
    assert build_site(target) == (len(PAGES) + len(LISTS), 0)
    return root, target.puts


# The seed publish: landing, 2 sites, 8 tables, and one month (2022-09) of each table.
TABLES = [(s, t) for s in ("1", "2") for t in ("bank", "etc", "pcs", "rack")]
PAGES = (
    ["index.html", "sites/1/index.html", "sites/2/index.html"]
    + [f"sites/{s}/{t}/index.html" for s, t in TABLES]
    + [f"sites/{s}/{t}/2022-09/index.html" for s, t in TABLES]
)
# Each month's URL list per format: a file's path from the root a line.
LISTS = [f"sites/{s}/{t}/2022-09/urls-{fmt}.txt" for s, t in TABLES for fmt in ("csv", "parquet")]


@pytest.fixture(scope="module")
def tree(built: tuple[Path, list]) -> Path:
    return built[0]


def test_a_build_writes_each_page_once_and_a_rebuild_writes_nothing(
    built: tuple[Path, list],
) -> None:
    root, puts = built
    page = (HTML_TYPE, "no-cache")  # pages change with every publish: always revalidate
    lists = [(key, TEXT_TYPE, "no-cache") for key in LISTS]
    assert sorted(puts) == sorted([(key, *page) for key in PAGES] + lists)  # scripts were there
    again = RecordingTarget(root)
    assert build_site(again) == (0, 0) and again.puts == []


def test_a_failed_page_put_stops_the_pages_and_is_raised(tmp_path: Path) -> None:
    days = [partition(f"2022-{m:02}-01", 10) for m in range(1, 13)]  # 16 pages to send
    # Its third page put fails, as a store refusing a request would.
    target = FailingTarget(tmp_path, 3, counted={"put"}, content_type=HTML_TYPE)
    with pytest.raises(PublishError, match="refused"):
        put_pages(target, catalog("1"), {"1": manifest(*days)})
    # Sent in order: the scripts, two pages, then the refused one; nothing after it was sent.
    kinds = [kind for _, kind, _ in target.puts]
    assert kinds == [ASSET_TYPE] * len(assets()) + [HTML_TYPE, HTML_TYPE, "refused"]
    assert len(list(tmp_path.rglob("*.html"))) == 2


def test_nothing_published_builds_nothing(tmp_path: Path) -> None:
    assert build_site(LocalTarget(tmp_path)) == (0, 0)
    assert list(tmp_path.iterdir()) == []


def test_every_link_resolves_to_a_file_of_the_tree(tree: Path) -> None:
    linked_files = set()
    pages = sorted(tree.rglob("*.html"))
    assert [p.relative_to(tree).as_posix() for p in pages] == sorted(PAGES)
    for page in pages:
        root = parse(page.read_bytes())
        for element in root.iter():
            for attr in ("href", "src"):
                value = element.get(attr)
                if value is None:
                    continue
                assert "://" not in value, (page, value)  # no CDN, fonts or trackers
                path, _, fragment = value.partition("#")
                resolved = (page.parent / unquote(path)).resolve() if path else page
                assert resolved.is_file(), (page, value)
                assert resolved.is_relative_to(tree.resolve()), (page, value)
                assert path == "" or not path.endswith("/"), value  # file:// has no dir index
                if fragment:
                    by_id(parse(resolved.read_bytes()), fragment)
                if "/data/" in f"/{resolved.relative_to(tree.resolve())}":
                    linked_files.add(resolved.relative_to(tree.resolve()).as_posix())
    published = {
        entry.path
        for site in ("1", "2")
        for table in published_manifest(tree, site).tables.values()
        for p in table.partitions
        for entry in p.files.values()
    }
    assert linked_files == published


def test_table_and_month_pages_show_the_manifest_day_by_day(tree: Path) -> None:
    for site in ("1", "2"):
        for name, table in published_manifest(tree, site).tables.items():
            root = parse((tree / f"sites/{site}/{name}/index.html").read_bytes())
            month = parse((tree / f"sites/{site}/{name}/2022-09/index.html").read_bytes())
            for page in (root, month):  # every day is in September
                assert stat(page, "total-days") == str(len(table.partitions))
                assert stat(page, "total-rows") == fmt_int(sum(p.rows for p in table.partitions))
                assert stat(page, "total-duplicates") == fmt_int(
                    sum(p.duplicates for p in table.partitions)
                )
            (listed,) = find(by_id(root, "months"), "tbody")
            assert cells(listed)[:3] == [
                "Sep 2022",
                str(len(table.partitions)),
                fmt_int(sum(p.rows for p in table.partitions)),
            ]
            assert find(listed, "th/a").get("href") == "2022-09/index.html"
            for p in table.partitions:
                row = by_id(month, f"d-{p.date}")
                date, status, rows, extent, duplicates, csv, parquet = cells(row)
                assert (date, rows, duplicates) == (p.date, fmt_int(p.rows), fmt_int(p.duplicates))
                assert status == ("complete" if p.complete else "partial")
                assert extent == f"{fmt_time(p.min_timestamp)} – {fmt_time(p.max_timestamp)}"
                for fmt, cell in (("csv", csv), ("parquet", parquet)):
                    entry = p.files[fmt]
                    assert cell == f"{fmt.upper()} {fmt_bytes(entry.bytes)} {entry.sha256}"
                    (link,) = [a for a in row.iter("a") if a.get("href", "").endswith(f".{fmt}")]
                    assert link.get("href") == f"../../../../{entry.path}"
                    assert link.get("download") is not None
            schema = find(by_id(root, "schema"), "tbody")
            assert [cells(r)[:4] for r in schema] == [
                [c.name, c.type, c.source, "yes" if c.nullable else "no"] for c in table.columns
            ]


def test_seed_rack_page_shows_known_values(tree: Path) -> None:
    """The edge rows of tests/conftest.py: a duplicate on 2022-09-02, a late 09-01 row."""
    root = parse((tree / "sites/1/rack/2022-09/index.html").read_bytes())
    first, second = (cells(by_id(root, f"d-2022-09-{d:02d}")) for d in (1, 2))
    assert first[3] == "00:00:00 – 23:59:59.999999"
    assert second[4] == "3"  # the edge row's duplicate and two of the demo values' own
    assert text(find(root, ".//h1")) == "Sep 2022"


def test_site_and_landing_pages_sum_up_the_manifests(tree: Path) -> None:
    landing = parse((tree / "index.html").read_bytes())
    manifests = [published_manifest(tree, s) for s in ("1", "2")]
    every = [p for m in manifests for t in m.tables.values() for p in t.partitions]
    assert stat(landing, "total-sites") == "2"
    assert stat(landing, "total-tables") == "8"
    assert stat(landing, "total-days") == "2"
    assert stat(landing, "total-rows") == fmt_int(sum(p.rows for p in every))
    assert stat(landing, "total-bytes") == fmt_bytes(
        sum(f.bytes for p in every for f in p.files.values())
    )
    hrefs = [a.get("href") for a in landing.iter("a")]
    assert {"catalog.json", "datapackage.json", "sites/1/index.html"} <= set(hrefs)
    assert "sites/2/rack/index.html" in hrefs
    for m in manifests:
        page = parse((tree / f"sites/{m.site}/index.html").read_bytes())
        body = find(by_id(page, "tables"), "tbody")
        rows = {r.get("data-table"): cells(r) for r in body}
        assert sorted(rows) == sorted(m.tables)
        for name, table in m.tables.items():
            parts = table.partitions
            assert rows[name] == [
                name,
                "",  # this publish's configuration names no data dictionary
                str(len(table.columns)),
                parts[0].date,
                parts[-1].date,
                str(len(parts)),
                fmt_int(sum(p.rows for p in parts)),
                fmt_bytes(sum(f.bytes for p in parts for f in p.files.values())),
                "0",
            ]
        assert "Asia/Seoul" in text(page)


def test_copy_paste_snippets_read_the_whole_table(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = parse((tree / "sites/1/rack/index.html").read_bytes())
    snippet = {e.get("data-snippet"): "".join(e.itertext()) for e in root.iter("pre")}
    assert sorted(snippet) == [
        "curl",
        "duckdb",
        "duckdb-range",
        "pandas",
        "pandas-web",
        "polars",
        "polars-month",
        "polars-range",
        "polars-web",
        "query",
        "wget",
    ]
    rows = sum(p.rows for p in published_manifest(tree, "1").tables["rack"].partitions)
    monkeypatch.chdir(tree)
    table = duckdb.sql(snippet["duckdb"])
    assert table.aggregate("count(*), count(DISTINCT date)").fetchall() == [(rows, 2)]
    for name in ("polars", "pandas"):
        scope: dict[str, Any] = {}
        exec(snippet[name], scope)  # the page's own example, run as a reader would
        assert len(scope["df"]) == rows, name
    assert "BASE='http://127.0.0.1:8000'" in snippet["curl"]  # until the page's script runs


# --- rendering from hand-made manifests ---------------------------------------------------


def test_the_calendar_marks_gaps_and_partial_days() -> None:
    days = [
        partition("2022-09-01", 100),
        partition("2022-09-02", 40),
        partition("2022-09-04", 100),
        partition("2022-09-05", 10, complete=False),
    ]
    pages = render_site(catalog("1"), {"1": manifest(*days)})
    root = parse(pages["sites/1/rack/index.html"])
    (svg,) = [e for e in root.iter(f"{SVG}svg") if "calendar" in e.get("class", "")]
    assert svg.get("role") == "img" and svg.get("aria-label") == "Calendar of rows per day 2022"
    rects = {r.get("data-date"): r for r in svg.iter(f"{SVG}rect")}
    assert len(rects) == 30  # the whole of September
    classes = {d: rects[d].get("class") for d in ("2022-09-01", "2022-09-02", "2022-09-03")}
    assert classes == {"2022-09-01": "l4", "2022-09-02": "l2", "2022-09-03": "gap"}
    assert rects["2022-09-05"].get("class") == "l1 partial"
    assert rects["2022-09-30"].get("class") == "out"
    assert text(rects["2022-09-05"]) == "2022-09-05: 10 rows (partial)"
    assert text(rects["2022-09-03"]) == "2022-09-03: no data"
    links = [a.get("href") for a in svg.iter(f"{SVG}a")]
    assert links == [f"2022-09/index.html#d-2022-09-0{d}" for d in (1, 2, 4, 5)]
    month = parse(pages["sites/1/rack/2022-09/index.html"])
    assert cells(by_id(month, "d-2022-09-05"))[1] == "partial"
    assert stat(root, "total-partial") == stat(month, "total-partial") == "1"


def test_a_calendar_per_year_and_months_in_order() -> None:
    days = [partition("2022-12-31", 5), partition("2023-01-01", 5), partition("2023-02-10", 5)]
    root = parse(render_site(catalog("1"), {"1": manifest(*days)})["sites/1/rack/index.html"])
    labels_ = [e.get("aria-label") for e in root.iter(f"{SVG}svg") if "calendar" in e.get("class")]
    assert labels_ == ["Calendar of rows per day 2022", "Calendar of rows per day 2023"]
    months = [cells(r)[0] for r in find(by_id(root, "months"), "tbody")]
    assert months == ["Dec 2022", "Jan 2023", "Feb 2023"]


def test_days_are_listed_in_date_order_whatever_the_manifest_order() -> None:
    days = [partition("2022-09-03", 5), partition("2022-09-01", 5), partition("2022-09-02", 5)]
    pages = render_site(catalog("1"), {"1": manifest(*days)})
    root = parse(pages["sites/1/rack/2022-09/index.html"])
    listed = [r.get("data-day") for r in root.iter("tr") if r.get("data-day")]
    assert listed == ["2022-09-01", "2022-09-02", "2022-09-03"]


def test_charts_plot_measurements_with_their_numbers_as_a_table() -> None:
    days = [
        partition("2022-09-01", 10),
        partition("2022-09-02", 10, stats={"rack_soc": {"min": None, "max": None, "mean": None}}),
        partition("2022-09-03", 10, stats={"rack_soc": {"min": 1.5, "max": 2.5, "mean": 2.0}}),
    ]
    pages = render_site(catalog("1"), {"1": manifest(*days)})
    table = parse(pages["sites/1/rack/index.html"])
    root = parse(pages["sites/1/rack/2022-09/index.html"])
    # The table's page draws the same chart, without the numbers (its month's page has them).
    assert [e.get("aria-label") for e in table.iter(f"{SVG}svg") if e.get("class") == "chart"]
    assert [t for t in table.iter("table") if "compact" in t.get("class", "")] == []
    charts = [e for e in root.iter(f"{SVG}svg") if e.get("class") == "chart"]
    # rack_id is a device key, not a measurement: only rack_soc gets a chart.
    assert [c.get("aria-label") for c in charts] == [
        "Daily minimum, mean and maximum of rack_soc (%)"
    ]
    (chart,) = charts
    assert text(find(chart, f"{SVG}title")) == chart.get("aria-label")
    # A day without values breaks the line and the band: two runs of one day each.
    assert len(list(chart.iter(f"{SVG}polygon"))) == 2
    assert find(chart, f"{SVG}path").get("d", "").count("M") == 2
    (numbers,) = [t for t in root.iter("table") if "compact" in t.get("class", "")]
    assert [cells(r) for r in find(numbers, "tbody")] == [
        ["2022-09-01", "10", "50.25", "90.5"],
        ["2022-09-02", "–", "–", "–"],
        ["2022-09-03", "1.5", "2", "2.5"],
    ]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param((-1.7976931348623157e308, 1.7976931348623157e308), id="widest"),
        pytest.param((1.7976931348623157e308, 1.7976931348623157e308), id="max-constant"),
        pytest.param((-5e-324, -5e-324), id="tiny-constant"),
        pytest.param((0.0, 0.0), id="zero"),
    ],
)
def test_charts_stay_finite_at_the_edges_of_float(values: tuple[float, float]) -> None:
    low, high = values
    stats = {"rack_soc": {"min": low, "max": high, "mean": high, "nulls": 0}}
    days = [partition("2022-09-01", 1, stats=stats), partition("2022-09-02", 1, stats=stats)]
    root = parse(render_site(catalog("1"), {"1": manifest(*days)})["sites/1/rack/index.html"])
    (chart,) = [e for e in root.iter(f"{SVG}svg") if e.get("class") == "chart"]
    numbers = [
        float(n)
        for e in chart.iter()
        for name, value in e.attrib.items()
        if name in ("x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "points", "d")
        for n in re.findall(r"-?[0-9.]+(?:e[-+]?[0-9]+)?|inf|nan", value)
    ]
    assert numbers and all(0 <= n <= 320 for n in numbers)


def test_statistics_that_are_not_finite_numbers_are_left_out() -> None:
    odd = {"rack_soc": {"min": "<b>x</b>", "max": float("inf"), "mean": 3, "nulls": 0}}
    root = parse(
        render_site(catalog("1"), {"1": manifest(partition("2022-09-01", 1, stats=odd))})[
            "sites/1/rack/2022-09/index.html"
        ]
    )
    (numbers,) = [t for t in root.iter("table") if "compact" in t.get("class", "")]
    assert [cells(r) for r in find(numbers, "tbody")] == [["2022-09-01", "–", "3", "–"]]


def test_statistics_that_are_not_objects_are_left_out() -> None:
    # A hand-edited manifest: statistics stay JSON text until a page reads them.
    days = [
        partition("2022-09-01", 1, stats={"rack_soc": 7}),
        msgspec.structs.replace(partition("2022-09-02", 1), stats_json=msgspec.Raw(b"[1]")),
        partition("2022-09-03", 1),
    ]
    page = render_site(catalog("1"), {"1": manifest(*days)})["sites/1/rack/2022-09/index.html"]
    (numbers,) = [t for t in parse(page).iter("table") if "compact" in t.get("class", "")]
    rows = [cells(r) for r in find(numbers, "tbody")]
    assert rows[:2] == [["2022-09-01", "–", "–", "–"], ["2022-09-02", "–", "–", "–"]]
    assert rows[2] == ["2022-09-03", "10", "50.25", "90.5"]


def hostile_pages() -> dict[str, bytes]:
    columns = (
        Column("timestamp", "timestamp", "TIMESTAMP", False),
        Column("rack_id", "integer", "RACK_ID", True),
        Column(HOSTILE_TEXT, "float", HOSTILE_TEXT, True, HOSTILE_TEXT, HOSTILE_TEXT),
    )
    stats = {HOSTILE_TEXT: {"min": 1.0, "max": 2.0, "mean": 1.5, "nulls": 0}}
    bad_file = FileEntry("javascript:alert(1)", 5, "0" * 64)
    days = [
        partition("2022-09-01", 10, stats=stats),
        partition("2022-09-02", 10, stats=stats, files={"csv": bad_file}),
    ]
    site = manifest(*days, name=HOSTILE_TEXT, timezone=HOSTILE_TEXT, columns=columns)
    document = catalog("1", **{k: HOSTILE_TEXT for k in ("title", "description", "license")})
    document.update(citation=HOSTILE_TEXT, public_base_url="javascript:alert(1)")
    return render_site(document, {"1": site})


def test_hostile_text_from_the_catalog_and_manifests_is_inert() -> None:
    pages = hostile_pages()
    script = (TEMPLATES / "site.js").read_text()
    # A month's URL lists name only files where the layout puts them: the bad path is left out.
    lists = {k: v.decode() for k, v in pages.items() if k.endswith(".txt")}
    day = "site=1/table=rack/date=2022-09-01/1_rack_2022-09-01"
    assert lists == {
        "sites/1/rack/2022-09/urls-csv.txt": f"data/csv/{day}.csv\n",
        "sites/1/rack/2022-09/urls-parquet.txt": f"data/parquet/{day}.parquet\n",
    }
    for key, page in pages.items():
        if key in lists:
            continue
        root = parse(page)
        data_types = ("application/json", "application/ld+json")  # data, never run
        scripts = [s for s in root.iter("script") if s.get("type") not in data_types]
        assert [s.text for s in scripts] == [script], key
        for data in root.iter("script"):  # the explorer's labels: data, never run
            if data.get("type") == "application/json":
                assert json.loads(data.text) == labels()["en"]["explorer_ui"], key
        assert list(root.iter("img")) == [], key
        for element in root.iter():
            assert not [a for a in element.attrib if a.lower().startswith("on")], key
            for attr in ("href", "src", "action", "{http://www.w3.org/1999/xlink}href"):
                value = re.sub(r"[\s\x00-\x1f]", "", element.get(attr, "")).lower()
                assert not value.startswith(("javascript:", "data:", "vbscript:")), key
        body = text(root)
        assert HOSTILE_TEXT.replace("{{7*7}}", "49") not in body, key
        assert "{{7*7}}" in body and "<script>alert(1)</script>" in body, key
        assert HOSTILE_TEXT in text(find(root, "head/title"))
    landing = parse(pages["index.html"])
    ld = json_ld(landing)
    assert ld["name"] == HOSTILE_TEXT and "url" not in ld  # javascript: is no base URL
    assert "<" not in [s for s in landing.iter("script") if s.get("type") == LD][0].text
    # BibTeX: braces, backslashes and the like are text, never markup.
    assert bibtex_fields(snippet(landing, "bibtex"))["title"] == (
        '{<script>alert(1)</script> "><img src=x onerror=alert(1)> \\{\\{7*7\\}\\} '
        "javascript:alert(1)}"
    )
    table = parse(pages["sites/1/rack/index.html"])
    row = cells(list(find(by_id(table, "schema"), "tbody"))[2])
    assert row == [HOSTILE_TEXT, "float", HOSTILE_TEXT, "yes", HOSTILE_TEXT, HOSTILE_TEXT]
    # The bad file path cannot become a link; the public URL is not used for snippets.
    month = parse(pages["sites/1/rack/2022-09/index.html"])
    (csv,) = [a for a in by_id(month, "d-2022-09-02").iter("a")]
    assert csv.get("href") == "#"
    assert "javascript" not in "".join("".join(p.itertext()) for p in table.iter("pre"))


def test_pages_carry_a_content_security_policy_for_their_own_style_and_script() -> None:
    root = parse(
        render_site(catalog("1"), {"1": manifest(partition("2022-09-01", 1))})["index.html"]
    )
    (meta,) = [m for m in root.iter("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    policy = dict(p.strip().split(" ", 1) for p in meta.get("content", "").split(";"))
    assert policy["default-src"] == "'none'"
    for directive, element in (("style-src", "style"), ("script-src", "script")):
        # The page's own script: the one without a type (JSON-LD is data, never run).
        (own,) = [e for e in root.iter(element) if not e.get("type")]
        body = (own.text or "").encode()
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        expected = f"'sha256-{digest}'"
        # Scripts: the page's own, and the explorer's module and reader from assets/ (same
        # origin), which compiles its snappy decoder as WebAssembly.
        assert policy[directive] == (
            expected if element == "style" else f"{expected} 'self' 'wasm-unsafe-eval'"
        )
    assert policy["connect-src"] == "'self'"


@pytest.mark.parametrize(
    ("site", "table", "day", "message"),
    [
        pytest.param("../x", "rack", "2022-09-01", "invalid site name '../x'", id="site"),
        pytest.param("1", "Rack Table", "2022-09-01", "invalid table name", id="table"),
        pytest.param("1", "rack", "2022-09-01/../..", "partition dated", id="day-path"),
        pytest.param("1", "rack", "2022-13-45", "partition dated '2022-13-45'", id="day-invalid"),
    ],
)
def test_names_from_a_target_are_checked_again(
    site: str, table: str, day: str, message: str
) -> None:
    tables = {table: TableManifest(COLUMNS, ("rack_id",), (partition(day, 1),))}
    data = SiteManifest(site, "Site", "Asia/Seoul", "2022-09-06T00:00:00Z", tables)
    with pytest.raises(PublishError, match=re.escape(message)):
        render_site(catalog(site), {site: data})


def test_an_invalid_site_name_in_the_catalog_is_refused_before_any_read(tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_text(json.dumps(catalog("../../etc")))
    with pytest.raises(PublishError, match=r"catalog.json: invalid site name '../../etc'"):
        build_site(LocalTarget(tmp_path))


def test_public_base_url_goes_into_the_snippets() -> None:
    days = [partition(f"2022-09-0{d}", 5) for d in range(1, 6)]
    document = catalog("1", public_base_url="https://data.example.org/ess/")
    root = parse(render_site(document, {"1": manifest(*days)})["sites/1/rack/index.html"])
    snippet = {e.get("data-snippet"): "".join(e.itertext()) for e in root.iter("pre")}
    assert snippet["curl"].startswith("BASE='https://data.example.org/ess'")
    assert "data-base" not in "".join(str(e.attrib) for e in root.iter("span"))
    web = snippet["duckdb-web"]
    urls = re.findall(r"'(https://[^']+)'", web)
    assert urls == [
        f"https://data.example.org/ess/data/parquet/site=1/table=rack/date=2022-09-0{d}/"
        f"1_rack_2022-09-0{d}.parquet"
        for d in (3, 4, 5)
    ]
    assert "read_parquet('data/parquet/site=1/table=rack/date=*/*.parquet'" in snippet["duckdb"]


# --- languages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "rows", "download"),
    [("en", "Rows", "Downloads by day"), ("ko", "행 수", "날짜별 내려받기")],
)
def test_pages_speak_the_catalog_language(language: str, rows: str, download: str) -> None:
    days = [partition("2022-09-01", 5), partition("2022-09-02", 5, complete=False)]
    pages = render_site(catalog("1", language=language), {"1": manifest(*days)})
    for key, page in pages.items():
        if not key.endswith(".html"):
            continue
        root = parse(page)
        assert root.get("lang") == language, key
    table = parse(pages["sites/1/rack/index.html"])
    month = parse(pages["sites/1/rack/2022-09/index.html"])
    assert text(by_id(table, "months-h")) == text(by_id(month, "days-h")) == download
    day_tables = [t for t in month.iter("table") if "days" in t.get("class", "")]
    assert rows in [text(th) for th in find(day_tables[0], "thead").iter("th")]
    if language == "ko":
        assert cells(by_id(month, "d-2022-09-02"))[1] == "미완료"
        assert text(find(month, ".//h1")) == "2022년 9월"
        assert cells(list(find(by_id(table, "months"), "tbody"))[0])[0] == "2022년 9월"
        assert stat(parse(pages["index.html"]), "total-rows") == "10"
        assert text(by_id(parse(pages["index.html"]), "totals-h")) == "한눈에 보기"


def test_both_languages_have_every_label() -> None:
    en, ko = labels()["en"], labels()["ko"]
    assert sorted(en) == sorted(ko)
    assert not set(en) & set(dir(dict))  # `t.keys` in a template would be the dict method
    assert len(en["weekdays"]) == len(ko["weekdays"]) == 7
    assert len(en["months"]) == len(ko["months"]) == 12
    assert set(labels()) == {"en", "ko"}


def test_an_unknown_language_falls_back_to_english() -> None:
    pages = render_site(catalog("1", language="fr"), {"1": manifest(partition("2022-09-01", 1))})
    assert parse(pages["index.html"]).get("lang") == "en"


# --- determinism, formatting, the href filter ----------------------------------------------


def test_rendering_is_deterministic_and_uses_only_the_documents_times() -> None:
    data = {"1": manifest(partition("2022-09-01", 7))}
    first, second = render_site(catalog("1"), data), render_site(catalog("1"), data)
    assert first == second
    landing = parse(first["index.html"])
    assert [t.get("datetime") for t in landing.iter("time")] == ["2022-09-06T00:00:00Z"] * 2
    assert "2022-09-06 00:00 UTC" in text(landing)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (16556, "16.6 kB"),
        (1_300_000, "1.3 MB"),
        (52_400_000_000, "52.4 GB"),
    ],
)
def test_fmt_bytes(value: int, expected: str) -> None:
    assert fmt_bytes(value) == expected


def test_fmt_int_and_fmt_time() -> None:
    assert fmt_int(1234567) == "1,234,567"
    assert fmt_time("2022-09-01T23:50:00+09:00") == "23:50:00"
    assert fmt_time("2022-09-01T12:00:00.5+09:00") == "12:00:00.5"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("../../data/csv/site=1/a.csv", "../../data/csv/site=1/a.csv", id="relative"),
        pytest.param("#d-2022-09-01", "#d-2022-09-01", id="fragment"),
        pytest.param("https://data.example.org/ess", "https://data.example.org/ess", id="https"),
        pytest.param("javascript:alert(1)", "#", id="javascript"),
        pytest.param("JaVaScRiPt:alert(1)", "#", id="javascript-case"),
        pytest.param(" javascript:alert(1)", "#", id="javascript-space"),
        pytest.param("java\tscript:alert(1)", "#", id="javascript-tab"),
        pytest.param("data:text/html,<script>", "#", id="data"),
        pytest.param("//evil.example/x", "#", id="protocol-relative"),
        pytest.param("/etc/passwd", "#", id="absolute"),
        pytest.param('a.csv" onclick="x', "#", id="quote"),
    ],
)
def test_href_lets_through_only_relative_paths_and_web_urls(value: str, expected: str) -> None:
    assert href(value) == expected


# --- the command line ---------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_site_command_rebuilds_pages_from_the_manifests_alone(
    published: Path, tmp_path: Path
) -> None:
    root = tmp_path / "public"
    shutil.copytree(published, root, ignore=WITHOUT_PAGES)
    first = cli("site", "--target", str(root))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"wrote {len(PAGES) + len(LISTS)} page(s) to {root}"
    (root / "sites/2/etc/index.html").unlink()
    again = cli("site", "--target", str(root))
    assert again.stdout.strip() == f"wrote 1 page(s) to {root}"


@pytest.mark.parametrize("command", ["site", "serve"])
def test_site_commands_have_help_with_an_example(command: str) -> None:
    result = cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout and f"ess-export {command} --target" in result.stdout


# --- rendering only what a run changed -------------------------------------------------------


def test_a_run_renders_only_the_pages_its_changes_touch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, out = demo_config(tmp_path, days=3), tmp_path / "public"
    run(config, target=str(out), now=DEMO_LATER, until=date(2022, 8, 31))  # August only
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.html")}
    written: list[str] = []
    put = LocalTarget.put

    def recording(self: LocalTarget, key: str, *args: Any, **kw: Any) -> None:
        written.append(key)
        put(self, key, *args, **kw)

    monkeypatch.setattr(LocalTarget, "put", recording)
    report = run(config, target=str(out), now=DEMO_LATER, sites=["1"])  # site 1 gains 2022-09-01
    assert report.partitions == 4
    tables = ("bank", "etc", "pcs", "rack")
    assert sorted(k for k in written if k.endswith(".html")) == sorted(
        ["index.html", "sites/1/index.html"]
        + [f"sites/1/{t}/index.html" for t in tables]
        + [f"sites/1/{t}/2022-09/index.html" for t in tables]
    )
    for key, html in before.items():  # August's pages and all of site 2's stay as they were
        if key.startswith("sites/2/") or "/2022-08/" in key:
            assert (out / key).read_bytes() == html, key
    assert stale_pages(LocalTarget(out)) == []


def test_changes_name_the_months_to_render_and_the_pages_gone() -> None:
    aug, sep, oct_ = (partition(f"2022-{m}-01", 5) for m in ("08", "09", "10"))
    before = Published(manifest(aug, sep), "sha256:before")
    change = SiteChanges.between(before, manifest(aug, oct_))
    assert change.before == "sha256:before"
    assert change.tables == {"rack": {"2022-09", "2022-10"}}
    assert change.gone == (("1", "rack", "2022-09"),)
    assert gone_pages([change]) == [
        "sites/1/rack/2022-09/index.html",
        "sites/1/rack/2022-09/urls-csv.txt",
        "sites/1/rack/2022-09/urls-parquet.txt",
    ]
    renamed = SiteChanges.between(before, manifest(aug, name="Renamed"))
    assert renamed.tables is None and renamed.gone == (("1", "rack", "2022-09"),)
    dropped = SiteChanges.between(before, dataclasses.replace(manifest(aug), tables={}))
    assert [k for k in gone_pages([dropped]) if k.endswith(".html")] == [
        "sites/1/rack/2022-08/index.html",
        "sites/1/rack/2022-09/index.html",
        "sites/1/rack/index.html",
    ]
    assert SiteChanges.between(None, manifest(aug)) == SiteChanges(None, None, ())
    assert SiteChanges.between(before, manifest(aug, sep)) == SiteChanges("sha256:before", {}, ())


def test_the_site_command_deletes_pages_no_manifest_names(tmp_path: Path) -> None:
    config, out = demo_config(tmp_path, days=2), tmp_path / "public"
    run(config, target=str(out), now=DEMO_LATER)
    left = [out / "sites/1/rack/2021-01/index.html", out / "sites/2/old/index.html"]
    for page in left:
        page.parent.mkdir(parents=True)
        page.write_text("<p>a page of a month that is gone</p>")
    assert sorted(stale_pages(LocalTarget(out))) == sorted(
        p.relative_to(out).as_posix() for p in left
    )
    result = cli("site", "--target", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"wrote 0 page(s) to {out}, deleted 2 of months or tables no manifest has"
    )
    assert not any(p.exists() for p in left) and stale_pages(LocalTarget(out)) == []
    assert (out / "sites/1/manifest.json").exists()  # only pages go


def test_a_run_stopped_before_its_catalog_leaves_its_pages_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, out = demo_config(tmp_path, days=3), tmp_path / "public"
    run(config, target=str(out), now=DEMO_LATER, until=date(2022, 8, 31))
    with monkeypatch.context() as patch:

        def dies(*_: Any, **__: Any) -> None:
            raise PublishError("the run stops here")

        patch.setattr("exporter.pipeline.put_pages", dies)
        with pytest.raises(PublishError):
            run(config, target=str(out), now=DEMO_LATER)  # manifests written, pages and catalog not
    assert "sites/1/rack/2022-09/index.html" in stale_pages(LocalTarget(out))
    report = run(config, target=str(out), now=DEMO_LATER)  # nothing left to export ...
    assert report.partitions == 0
    assert stale_pages(LocalTarget(out)) == []  # ... but the pages caught up


def test_new_templates_render_every_page_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, out = demo_config(tmp_path, days=2), tmp_path / "public"
    run(config, target=str(out), now=DEMO_LATER)
    page = out / "sites/2/pcs/2022-08/index.html"
    page.write_bytes(b"rendered by an older version")
    assert run(config, target=str(out), now=DEMO_LATER).partitions == 0
    assert page.read_bytes() == b"rendered by an older version"  # nothing changed: no render
    catalog = json.loads((out / "catalog.json").read_text())
    catalog["generator"]["site_templates"] = "sha256:older"
    (out / "catalog.json").write_text(json.dumps(catalog))
    run(config, target=str(out), now=DEMO_LATER)
    assert stale_pages(LocalTarget(out)) == []


def test_the_landing_page_describes_the_dataset_as_schema_org_json_ld(tree: Path) -> None:
    catalog_ = json.loads((tree / "catalog.json").read_text())
    days = [
        p
        for entry in catalog_["sites"]
        for table in published_manifest(tree, entry["site"]).tables.values()
        for p in table.partitions
    ]
    formats = sorted({fmt for p in days for fmt in p.files})
    landing = parse((tree / "index.html").read_bytes())
    assert text(find(landing, "head/title")) == catalog_["title"]
    ld = json_ld(landing)  # one JSON-LD block, in the body
    assert ld["@context"] == "https://schema.org" and ld["@type"] == "Dataset"
    assert ld["name"] == catalog_["title"]
    assert ld["description"] == (catalog_["description"] or catalog_["title"])
    assert ld["license"] == f"https://spdx.org/licenses/{catalog_['license']}.html"
    assert ld["dateModified"] == catalog_["generated_at"]
    first, last = min(p.date for p in days), max(p.date for p in days)
    assert ld["temporalCoverage"] == f"{first}/{last}" == "2022-09-01/2022-09-02"
    files = [d for d in ld["distribution"] if d["contentUrl"].startswith("data/")]
    assert formats == ["csv", "parquet"]
    assert [(d["@type"], d["encodingFormat"], d["contentUrl"]) for d in files] == [
        ("DataDownload", "text/csv", "data/csv/"),
        ("DataDownload", "application/vnd.apache.parquet", "data/parquet/"),
    ]
    for entry in ld["distribution"]:  # every distribution is there to download
        assert (tree / entry["contentUrl"]).exists(), entry


def test_a_public_url_makes_the_json_ld_and_bibtex_urls_absolute() -> None:
    document = catalog("1", public_base_url="https://data.example.org/ess/")
    document.update(citation="Kim et al. (2024), ESS data 100% open & free_ly")
    landing = parse(
        render_site(document, {"1": manifest(partition("2022-09-01", 1))})["index.html"]
    )
    ld = json_ld(landing)
    assert ld["url"] == "https://data.example.org/ess/"
    assert {d["contentUrl"] for d in ld["distribution"]} == {
        "https://data.example.org/ess/data/csv/",
        "https://data.example.org/ess/data/parquet/",
        "https://data.example.org/ess/datapackage.json",
    }
    fields = bibtex_fields(snippet(landing, "bibtex"))
    assert fields["url"] == "https://data.example.org/ess/"
    assert fields["howpublished"] == r"\url{https://data.example.org/ess/}"
    assert fields["note"] == (
        r"Kim et al. (2024), ESS data 100\% open \& free\_ly. Days 2022-09-01 to 2022-09-01. "
        "License: CC-BY-4.0"
    )


def test_how_to_cite_has_a_bibtex_entry(tree: Path) -> None:
    catalog_ = json.loads((tree / "catalog.json").read_text())
    assert catalog_["citation"] == ""  # the seed's: none, so the note has days and license
    landing = parse((tree / "index.html").read_bytes())
    cite = by_id(landing, "cite-h")
    assert text(cite) == "How to cite"
    fields = bibtex_fields(snippet(landing, "bibtex"))
    year = catalog_["generated_at"][:4]
    assert fields == {
        "@type": "misc",
        "@key": f"round_trip_test_{year}",
        "title": "{Round-trip test}",
        "year": year,
        "note": f"Days 2022-09-01 to 2022-09-02. License: {catalog_['license']}",
    }
