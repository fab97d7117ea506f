"""`frictionless validate public/datapackage.json`, the first thing a data portal runs,
passes on a publish whose data has NULL integers, NaN and ±inf floats and empty strings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

FRICTIONLESS = Path(sys.executable).parent / "frictionless"


def test_the_data_package_of_a_publish_with_nulls_nan_inf_and_empty_strings_validates(
    published: Path,
) -> None:
    # The data holds every case (the seed's edge rows): checked, so the test cannot go vacuous.
    rack_csv = (published / "data/csv/site=1/table=rack/date=2022-09-01").glob("*.csv")
    text = next(rack_csv).read_text()
    assert ",NaN," in text and ",inf," in text and ",-inf," in text
    assert (
        ',"",'
        in (
            published / "data/csv/site=2/table=bank/date=2022-09-01/2_bank_2022-09-01.csv"
        ).read_text()
    )
    bank = pq.read_table(published / "data/parquet/site=2/table=bank/date=2022-09-01")
    integers = [f.name for f in bank.schema if str(f.type).startswith("int")]
    assert any(bank.column(name).null_count for name in integers)

    result = subprocess.run(
        [FRICTIONLESS, "validate", "datapackage.json", "--json"],
        cwd=published,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    errors = [e for task in report["tasks"] for e in task["errors"]]
    assert (result.returncode, report["valid"], errors[:3]) == (0, True, [])
    tasks = {task["name"]: task["type"] for task in report["tasks"]}
    assert tasks["2-bank-csv"] == "table"  # the CSV files are validated row by row
    assert tasks["2-bank-parquet"] == "file"  # the Parquet files listed, as files

    package = json.loads((published / "datapackage.json").read_text())
    listed = {path for r in package["resources"] for path in r["path"]}
    on_disk = {p.relative_to(published).as_posix() for p in (published / "data").rglob("*.*")}
    assert listed == on_disk
