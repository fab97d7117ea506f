"""`ess-export query` and `sql`: answer questions from the published files (DuckDB).

exporter.query (DuckDB, polars) is imported inside the commands: the others never load it.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .base import published, store_config, store_options

_OUTPUT_FORMATS = click.Choice(["json", "csv", "parquet", "table"])
_CACHE_HELP = (
    "Cache for the files of s3:// and http(s):// roots "
    "[default: $ESS_EXPORT_CACHE, else $XDG_CACHE_HOME/ess-export or ~/.cache/ess-export]."
)


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from ..query.engine import is_size

    if value is not None and not is_size(value):
        raise click.BadParameter(f"{value!r} is not a size; give e.g. 4GB, 512MB or 1.5GiB")
    return value


_LIMITS = ("timeout", "memory", "threads", "temp_limit")


def _reading(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options `query` and `sql` share: -o, --cache-dir, the bounds of every query (see
    README, Querying) and --config. The command receives `output` and `open_dataset()`: the
    publish under its URI, opened with them."""

    @functools.wraps(command)
    def reading(**params: Any) -> Any:
        uri, cache_dir, config_path = (params.pop(n) for n in ("uri", "cache_dir", "config_path"))
        limits = {name: params.pop(name) for name in _LIMITS}

        def open_dataset() -> Any:
            from .. import query

            target = published(uri, store_options(config_path))
            return query.Dataset.open(uri, target=target, cache_dir=cache_dir, **limits)

        return command(open_dataset=open_dataset, **params)

    options = [
        click.option(
            "-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout."
        ),
        click.option("--cache-dir", type=click.Path(file_okay=False), help=_CACHE_HELP),
        click.option(
            "--timeout",
            metavar="SECONDS",
            type=click.FloatRange(min=0, min_open=True),
            help="Stop a query after this many seconds of work [default: 60].",
        ),
        click.option(
            "--memory",
            metavar="SIZE",
            callback=_size,
            help="Memory a query may use, e.g. 8GB [default: a quarter of the machine's].",
        ),
        click.option(
            "--threads",
            type=click.IntRange(min=1),
            help="Threads a query may use [default: up to 4].",
        ),
        click.option(
            "--temp-limit",
            metavar="SIZE",
            callback=_size,
            help="Disk for a query's temporary files, in the cache folder [default: 10GiB].",
        ),
        store_config,
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), reading)


def _emit(output: str | None, write: Callable[[Any], object], binary: bool = False) -> None:
    """Hand `write` stdout (no -o, or -o -), or a file that appears only once complete."""
    if output is None or output == "-":
        _to_stdout(write, binary)
        return
    path = Path(output)
    if path.exists() and not path.is_file():  # /dev/null, a FIFO: never rename over it
        with open(path, "wb") as handle:
            write(handle)
        return
    partial = path.with_name(f".{path.name}.part")
    try:
        with open(partial, "wb") as handle:
            write(handle)
        os.replace(partial, path)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)


def _to_stdout(write: Callable[[Any], object], binary: bool) -> None:
    if binary and sys.stdout.isatty():
        raise click.UsageError("Parquet is binary: give -o FILE or redirect stdout")
    try:
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
    except OSError as exc:
        # polars reports EPIPE as a plain OSError("Broken pipe (os error 32)").
        if not isinstance(exc, BrokenPipeError) and "os error 32" not in str(exc):
            raise
        # The reader left early (`| head`): stop quietly, as Python's docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _page_writer(fmt: str, page: Any) -> Callable[[Any], object]:
    from .. import query

    if fmt == "json":
        return lambda out: out.write(query.page_json(page).encode())
    if fmt == "table":
        footer = f"page {page.page} of {page.pages}, {page.count} row(s); next: {page.next}\n"
        return lambda out: out.write((query.render_table(page.rows) + footer).encode())
    writer = query.WRITERS[fmt]
    return lambda out: writer(page.to_arrow().to_reader(), out)


@click.command("query")
@click.argument("uri")
@click.option("--site", required=True, help="Site id, as listed in catalog.json.")
@click.option("--table", required=True, help="Table: bank, rack, pcs or etc.")
@click.option("--bank", help="Only rows of this bank_id (tables that have the column).")
@click.option("--rack", help="Only rows of this rack_id (tables that have the column).")
@click.option("--fields", help="Comma-separated columns, in output order [default: all].")
@click.option("--start", help="From this time, inclusive (ISO 8601; see above).")
@click.option("--end", help="Up to this time, inclusive like the old download.")
@click.option("--page", help="Page number from 1, or 'last'.")
@click.option(
    "--page-size",
    default="100",
    show_default=True,
    help="Rows per page; more than 1000 is clamped to 1000.",
)
@click.option("--format", "fmt", type=_OUTPUT_FORMATS, default="json", show_default=True)
@_reading
def query_command(
    open_dataset: Callable[[], Any],
    site: str,
    table: str,
    page: str | None,
    page_size: str,
    fmt: str,
    output: str | None,
    **question: Any,
) -> None:
    """Answer the old API's question from the published files under URI.

    URI is a directory, s3://BUCKET/PREFIX (endpoint from AWS_ENDPOINT_URL) or the
    http(s):// base of a published site. Only the days that meet the time range are
    read; the files of a remote root are fetched once into a cache and checked
    against the manifest's sha256.

    \b
    Times are ISO 8601: 2022-09-01T10:00:00, 2022-09-01T10:00:00+09:00, ...Z.
    A time without an offset is the site's local time (the manifest's timezone);
    a date alone is its local midnight. --start and --end are both inclusive.
    Rows come ordered by timestamp, then the table's keys, then the fields.

    \b
    --format json (default): {"count", "next", "previous", "results"}; next and
      previous are page numbers or null (the old service gave URLs). Timestamps are
      RFC 3339 local times; NaN, inf and -inf are the strings "NaN", "inf", "-inf";
      NULL is null.
    --format csv|parquet without --page: every matching row, streamed a day at a
      time (the old download); CSV as the published CSV files. With --page: that page.
    --format table: one page as a text table.
    Pages start at 1 (default 1). Page 0, a negative, non-integer or past-the-end
    page fails with "Invalid page." and exit 2; page 1 of an empty result is count 0.

    \b
    Examples:
      ess-export query ./public --site 1 --table rack --bank 1 --rack 1 \\
          --fields timestamp,rack_soc --start 2022-09-01T10:00:00 \\
          --end 2022-09-01T12:00:00 --page 1
      ess-export query s3://bucket/ess --site 1 --table rack \\
          --start 2022-09-01 --end 2022-09-02 --format csv -o rack.csv
    """
    from .. import query

    with open_dataset() as dataset:
        if page is None and fmt in query.WRITERS:
            reader = dataset.rows(site, table, **question)
            writer = query.WRITERS[fmt]
            _emit(output, lambda out: writer(reader, out), binary=fmt == "parquet")
            return
        result = dataset.query(site, table, page=page, page_size=page_size, **question)
        _emit(output, _page_writer(fmt, result), binary=fmt == "parquet")


@click.command("sql")
@click.argument("uri")
@click.argument("statement")
@click.option("--format", "fmt", type=_OUTPUT_FORMATS, default="table", show_default=True)
@_reading
def sql_command(
    open_dataset: Callable[[], Any], statement: str, fmt: str, output: str | None
) -> None:
    """Run one DuckDB SELECT over the published files under URI.

    \b
    Views: one per table across the sites (rack, bank, pcs, etc), with `site` and
    `date` columns from the file layout and columns matched by name (NULL where a
    site lacks one); one per site (rack_1, pcs_2, ...). Timestamps are in the
    sites' zone (UTC if they differ).
    The views are catalog objects: SHOW TABLES, DESCRIBE rack_1, SUMMARIZE rack
    and information_schema work. Only one SELECT (or SHOW, DESCRIBE, SUMMARIZE)
    runs, in a database that can read the dataset's files and nothing else: no
    other files, extensions, ATTACH, COPY or SET.
    For s3:// and http(s):// roots, the files of the views the statement names
    are fetched into the cache first.

    \b
    Every query is bounded (exit 2 and one line naming the limit when reached):
    --timeout 60 seconds, --memory a quarter of the machine, --threads up to 4,
    --temp-limit 10GiB of temporary files, kept in the cache folder.

    \b
    --format table (default) shows up to 1000 rows; json gives {"count", "results"}
    with the query command's conventions; csv and parquet stream every row.

    \b
    Examples:
      ess-export sql ./public "SELECT site, date, avg(rack_soc) FROM rack GROUP BY ALL ORDER BY ALL"
      ess-export sql ./public "FROM rack_1 WHERE rack_soc > 90" --format csv -o high.csv
    """
    from .. import query

    with open_dataset() as dataset:
        reader = dataset.sql_reader(statement)
        if fmt in query.WRITERS:
            writer = query.WRITERS[fmt]
            _emit(output, lambda out: writer(reader, out), binary=fmt == "parquet")
        elif fmt == "json":
            text = query.records_json(reader.read_all())
            _emit(output, lambda out: out.write(text.encode()))
        else:
            frame, more = query.head_frame(reader, query.MAX_PAGE_SIZE)
            text = query.render_table(frame)
            if more:
                text += f"(first {query.MAX_PAGE_SIZE} rows; use --format csv for all)\n"
            _emit(output, lambda out: out.write(text.encode()))
