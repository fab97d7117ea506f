"""The static preview: the first rows of a table's latest complete day, rendered into its
page at publish time from the day's Parquet file (no script), reading only what it shows."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import html5lib
import pyarrow as pa
import pyarrow.parquet as pq
from msgspec.structs import replace

from exporter.manifest import FileEntry, Partition, encode_stats
from exporter.site import build_site
from exporter.site.preview import latest_complete, read_preview
from exporter.storage import LocalTarget, S3Target
from tests.conftest import published_manifest

XHTML = "{http://www.w3.org/1999/xhtml}"


def preview_table(page: Path) -> tuple[str, list[list[str]]]:
    tree = html5lib.parse(page.read_bytes(), transport_encoding="utf-8")
    table = next(t for t in tree.iter(f"{XHTML}table") if "preview" in (t.get("class") or ""))
    rows = [["".join(c.itertext()) for c in row] for row in table.iter(f"{XHTML}tr")]
    return table.get("data-date"), rows


def test_each_table_page_shows_the_first_20_rows_of_its_latest_complete_day_as_in_its_csv(
    demo_published: Path,
) -> None:
    for site, table in [("1", "rack"), ("2", "rack"), ("2", "bank"), ("2", "pcs"), ("1", "etc")]:
        day = published_manifest(demo_published, site).tables[table].partitions[-1]
        assert (day.date, day.complete) == ("2022-09-03", True)
        shown, rows = preview_table(demo_published / f"sites/{site}/{table}/index.html")
        text = (demo_published / day.files["csv"].path).read_text()
        assert (shown, rows) == (day.date, list(csv.reader(io.StringIO(text)))[:21])
    _, rows = preview_table(demo_published / "sites/1/rack/index.html")
    assert rows[1][:4] == ["2022-09-03T00:00:00+09:00", "1", "1", "23.8"]


def test_ess_export_site_renders_the_same_preview_and_a_partial_day_is_never_shown(
    demo_published: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "public"
    shutil.copytree(demo_published, copy, ignore=shutil.ignore_patterns("*.html"))
    build_site(LocalTarget(copy))
    page = "sites/2/bank/index.html"
    assert (copy / page).read_bytes() == (demo_published / page).read_bytes()
    partial = replace(_day("d/1.parquet", 1), complete=False)
    assert latest_complete([partial]) is None
    assert latest_complete([partial, replace(partial, date="2022-08-31", complete=True)]).date == (
        "2022-08-31"
    )


def _day(path: str, size: int) -> Partition:
    return Partition(
        date="2022-09-01",
        rows=200_000,
        complete=True,
        min_timestamp="",
        max_timestamp="",
        duplicates=0,
        fingerprint={},
        stats_json=encode_stats({}),
        files={"parquet": FileEntry(path, size, "")},
    )


def test_on_s3_it_reads_the_footer_and_the_first_row_group_only(bucket: str) -> None:
    n = 200_000
    table = pa.table({"x": pa.array(range(n), pa.int64()), "y": pa.array([0.5] * n)})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=50_000, compression="none")
    data = sink.getvalue()
    target = S3Target(f"s3://{bucket}/pub")
    target.put("d/1.parquet", data, "application/vnd.apache.parquet")
    target.requests = 0

    preview = read_preview(target, _day("d/1.parquet", len(data)), "Asia/Seoul", rows=3)

    assert (preview.columns, preview.rows) == (
        ("x", "y"),
        (("0", "0.5"), ("1", "0.5"), ("2", "0.5")),
    )
    assert preview.total == 200_000
    # A few ranged GETs: the footer, then the first row group (a quarter of the file).
    assert 2 <= target.requests <= 8
