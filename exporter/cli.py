"""The `ess-export` command line: parse options, call one library function, print.

This is the only module that imports click. Expected failures (`ExportError`) become one
line on stderr and their exit code; nothing here prints a traceback for them.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import config as config_module
from . import demo as demo_module
from .errors import ConfigError, ExportError, PublishError
from .storage import Target, open_target
from .verification import verify

if TYPE_CHECKING:  # the export stack loads only for the commands that export (run, plan)
    from .pipeline import Plan, RunReport
    from .plan import Job
    from .write import EncodedPartition

__all__ = ["main"]

_CONFIG_KEY = "ess_export.config"


class _Cli(click.Group):
    """Turns the library's expected failures into one-line errors with the right exit code.

    Usage errors too are one `Error:` line, without click's usage banner (`--help` has it).
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _bare(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _bare(exc) from None
        except ExportError as exc:
            message = _masked(" ".join(str(exc).splitlines()), ctx)
            if isinstance(exc, ConfigError):
                raise click.UsageError(message) from None
            click.echo(f"Error: {message}", err=True)
            ctx.exit(exc.exit_code)


def _masked(message: str, ctx: click.Context) -> str:
    # Whatever part of a DSN carried a password, and whichever module wrote the message.
    config = ctx.meta.get(_CONFIG_KEY)
    for site in config.sites if config else ():
        message = config_module.mask(message, site.dsn)
    return message


def _bare(exc: click.UsageError) -> click.UsageError:
    # Without its context, click prints a usage error as the one `Error:` line.
    if not isinstance(exc, click.exceptions.NoArgsIsHelpError):
        exc.ctx = None
    return exc


def _published(uri: str) -> Target:
    """The target under `uri`, which must hold a published dataset (its catalog.json)."""
    target = open_target(uri)
    if target.head("catalog.json") is None:
        raise PublishError(
            f"no published dataset at {uri} (no catalog.json); give the folder, s3:// or "
            f"https:// base that holds one, or publish with `ess-export run --target {uri}`"
        )
    return target


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ess-export")
def main() -> None:
    """Publish ESS operating data as an open, static dataset.

    \b
    Example:
      ess-export demo && ess-export run --config config/demo.toml
    """


def _day(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


def _selection(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by `run` and `plan`."""
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            help="TOML configuration file [default: the packaged demo configuration, "
            "config/demo.toml, its paths relative to the working directory].",
        ),
        click.option("--target", help="Directory to publish to (overrides export.target)."),
        click.option("--site", "sites", multiple=True, help="Only this site (repeatable)."),
        click.option("--table", "tables", multiple=True, help="Only this table (repeatable)."),
        click.option("--since", callback=_day, help="First local day to export (YYYY-MM-DD)."),
        click.option("--until", callback=_day, help="Last local day to export (YYYY-MM-DD)."),
        click.option("--rebuild", is_flag=True, help="Re-export every day, published or not."),
        click.option(
            "--full-check",
            is_flag=True,
            help="Compare every published day with the source and re-export changes.",
        ),
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)


def _load(config_path: str | None) -> config_module.Config:
    if config_path is None:
        config = config_module.load_demo()
    else:
        config = config_module.load(config_path)
    click.get_current_context().meta[_CONFIG_KEY] = config  # for _masked
    return config


def _print_plan(plan: Plan) -> None:
    for table in plan.tables:
        head = f"site {table.site.id} table {table.schema.table.name}"
        if not table.jobs:
            click.echo(f"{head}: up to date")
            continue
        click.echo(f"{head}: {len(table.jobs)} day(s)")
        for job in table.jobs:
            state = "complete" if job.complete else "incomplete"
            click.echo(f"  {job.day}  {state:<10}  {job.reason}")


class _Progress:
    """A progress bar on a terminal, one log line per partition otherwise (cron, CI)."""

    def __init__(self) -> None:
        self.interactive = sys.stderr.isatty()
        self.bar: Any = None

    def on_plan(self, plan: Plan) -> None:
        total = len(plan.jobs)
        click.echo(f"planned {total} partition(s)", err=True)
        if self.interactive and total:
            self.bar = click.progressbar(length=total, label="exporting", file=sys.stderr)
            self.bar.__enter__()

    def on_partition(self, job: Job, encoded: EncodedPartition | None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            return
        what = (
            "no rows"
            if encoded is None
            else (f"{encoded.rows} rows, {sum(f.size for f in encoded.files.values())} bytes")
        )
        click.echo(f"site {job.site} table {job.table} {job.day}: {what}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


NOTHING_TO_DO = 4


@main.command("run")
@_selection
@click.option("--dry-run", is_flag=True, help="Plan only: print what would be exported.")
@click.option(
    "--prune",
    "prune_unnamed",
    is_flag=True,
    help="Delete objects under data/ that no manifest names (`verify` lists them).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    help="Write a JSON run report to this file (for CI).",
)
@click.option(
    "--exit-nothing",
    is_flag=True,
    help=f"Exit with code {NOTHING_TO_DO} when there was nothing to export.",
)
def run_command(
    config_path: str | None,
    dry_run: bool,
    report_path: str | None,
    exit_nothing: bool,
    **selection: Any,
) -> None:
    """Export the configured sites and publish them to the target.

    The target is a directory or s3://BUCKET/PREFIX (endpoint from AWS_ENDPOINT_URL or
    export.s3.endpoint_url; credentials from the standard AWS chain).

    \b
    Example (from cron):
      ess-export run --config config/sites.toml --target s3://open-data/ess --report run.json
    """
    from .pipeline import run

    config = _load(config_path)
    progress = _Progress()
    report, failure = None, None
    try:
        report = run(
            config,
            dry_run=dry_run,
            on_plan=_print_plan if dry_run else progress.on_plan,
            progress=progress.on_partition,
            **selection,
        )
    except BaseException as exc:
        failure = exc
        raise
    finally:
        progress.close()
        if report_path:
            _write_report(report_path, report or getattr(failure, "report", None))
    if not dry_run:
        _summary(report, selection.get("target") or config.target)
    if exit_nothing and not report.jobs:
        sys.exit(NOTHING_TO_DO)


def _write_report(path: str, report: RunReport | None) -> None:
    # A failed run still leaves a report: its error line, the partition that failed and
    # what was done before (the exception follows); an unexpected error, only that it failed.
    document = report.to_dict() if report else {"failed": True}
    Path(path).write_text(json.dumps(document, indent=2) + "\n")


def _summary(report: RunReport, target: str) -> None:
    for key in report.unnamed:
        click.echo(f"pruned {key} (named by no manifest)", err=True)
    for key in report.emptied:
        click.echo(f"deleted {key} (its day has no rows any more)", err=True)
    click.echo(
        f"exported {report.partitions} partition(s) ({report.unchanged} unchanged), "
        f"{report.rows} rows, {report.bytes / 1e6:.1f} MB sent in {report.requests} "
        f"request(s), {report.seconds:.1f} s, to {target}"
    )


@main.command("verify")
@click.option("--target", required=True, help="Published tree: a directory or s3://BUCKET/PREFIX.")
@click.option(
    "--sample",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Fraction of the files to re-hash (the same files every time).",
)
def verify_command(target: str, sample: float) -> None:
    """Re-hash published files against the manifests; report missing, differing, extra.

    Exits 1 if anything is missing or differs, or an object is named by no manifest.

    \b
    Example:
      ess-export verify --target s3://open-data/ess --sample 0.1
    """
    found = verify(_published(target), sample)
    for label, what in found.problems:
        click.echo(f"{label}: {what}")
    problems = len(found.problems)
    click.echo(f"checked {found.checked} file(s): {problems} problem(s)")
    if problems:
        sys.exit(1)


@main.command("plan")
@_selection
def plan_command(config_path: str | None, **selection: Any) -> None:
    """Show what `run` would export, without exporting.

    \b
    Example:
      ess-export plan --config config/demo.toml --site 1 --since 2022-09-01
    """
    from .pipeline import run

    run(_load(config_path), dry_run=True, on_plan=_print_plan, **selection)


@main.command("demo")
@click.option(
    "--days",
    default=3,
    show_default=True,
    type=click.IntRange(1, 366),
    help="Days of data per site.",
)
@click.option(
    "--start",
    callback=_day,
    default=demo_module.DEFAULT_START.isoformat(),
    show_default=True,
    help="First local day (YYYY-MM-DD).",
)
@click.option(
    "--interval",
    default=10,
    show_default=True,
    type=click.IntRange(1, 3600),
    help="Seconds between readings.",
)
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same data).")
@click.option(
    "--out",
    default="demo-data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the SQLite files.",
)
def demo_command(days: int, start: date, interval: int, seed: int, out: str) -> None:
    """Write the embedded-default source databases (SQLite, two sites).

    \b
    Example:
      ess-export demo --days 7 && ess-export run
    """
    paths = demo_module.write_sqlite(
        Path(out), start=start, days=days, seed=seed, interval_s=interval
    )
    for path in paths:
        click.echo(f"wrote {path}")


# -- the index site (site_templates/ rendered by exporter/site.py) ---------------------------


@main.command("site")
@click.option("--target", required=True, help="Published tree: a directory or s3://BUCKET/PREFIX.")
def site_command(target: str) -> None:
    """Rebuild the index pages from the published manifests alone (no database, no config).

    Only pages whose content changed are written; the pages of months and tables that no
    manifest has any more are deleted.

    \b
    Example:
      ess-export site --target ./public
    """
    from .site import build_site

    written, deleted = build_site(_published(target))
    gone = f", deleted {deleted} of months or tables no manifest has" if deleted else ""
    click.echo(f"wrote {written} page(s) to {target}{gone}")


@main.command("serve")
@click.option(
    "--target",
    default="./public",
    show_default=True,
    type=click.Path(exists=True, file_okay=False),
    help="The local publish to serve (a directory).",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="IPv4 address to listen on.")
def serve_command(target: str, port: int, host: str) -> None:
    """Preview a local publish over HTTP; Ctrl-C stops it.

    Byte-range requests are answered, so Parquet readers (polars, DuckDB) work on it.

    \b
    Example:
      ess-export serve --target ./public --port 8000
    """
    from .serve import make_server

    if not (Path(target) / "index.html").is_file():
        click.echo(f"no index.html in {target}: run `ess-export site --target {target}`", err=True)
    try:
        server = make_server(target, host, port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
        ) from None
    with server:
        url = f"http://{host}:{server.server_address[1]}/index.html"
        click.echo(f"serving {target} at {url} (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("stopped")


@main.command("api")
@click.option("--target", required=True, help="Published root: a directory, s3://B/P or https://.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--refresh",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds between checks of the catalog for a new publish.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    default=["*"],
    show_default=True,
    help="Origin browsers may call from (repeatable).",
)
@click.option(
    "--require-token",
    is_flag=True,
    help="Require a bearer JWT signed with HS256 by the secret in $ESS_API_JWT_SECRET.",
)
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Cache for remote roots.")
def api_command(
    target: str,
    host: str,
    port: int,
    workers: int,
    refresh: float,
    cors_origins: tuple[str, ...],
    require_token: bool,
    cache_dir: str | None,
) -> None:
    """Serve the old HTTP API (/api/ess/...) from a publish; Ctrl-C stops it.

    Needs the api extra: pip install 'ess-export[api]'.

    \b
    Example:
      ess-export api --target ./public --port 8000
      curl 'http://127.0.0.1:8000/api/ess/operating-sites/1/banks/1/racks/1/?page_size=2'
    """
    try:
        from .api import ApiSettings
        from .api.server import check_target, serve, settings_with_token
    except ImportError as exc:
        raise click.ClickException(
            f"ess-export api needs the api extra ({exc.name} is missing): "
            "pip install 'ess-export[api]'"
        ) from None
    settings = ApiSettings(target, refresh_seconds=refresh, cors_origins=cors_origins)
    settings = settings_with_token(settings, require_token)
    check_target(settings, cache_dir)
    click.echo(f"serving the API of {target} at http://{host}:{port}/api/ess/ (Ctrl-C to stop)")
    serve(settings, host, port, workers, cache_dir)


# --- query and sql: the old API's questions, answered from the published files ----------
# exporter.query (DuckDB) is imported inside the commands: the other commands never load it.

_OUTPUT_FORMATS = click.Choice(["json", "csv", "parquet", "table"])
_CACHE_HELP = (
    "Cache for the files of s3:// and http(s):// roots "
    "[default: $ESS_EXPORT_CACHE, else $XDG_CACHE_HOME/ess-export or ~/.cache/ess-export]."
)


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from .engine import is_size

    if value is not None and not is_size(value):
        raise click.BadParameter(f"{value!r} is not a size; give e.g. 4GB, 512MB or 1.5GiB")
    return value


def _limits(command: Callable[..., Any]) -> Callable[..., Any]:
    """The bounds of every query, shared by `query` and `sql` (see README, Querying)."""
    options = [
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
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)


def _emit(output: str | None, write: Callable[[Any], object], binary: bool = False) -> None:
    """Hand `write` stdout (no -o, or -o -), or a file that appears only once complete."""
    import os

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
    import os

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
    from . import query

    if fmt == "json":
        return lambda out: out.write(query.page_json(page).encode())
    if fmt == "table":
        footer = f"page {page.page} of {page.pages}, {page.count} row(s); next: {page.next}\n"
        return lambda out: out.write((query.render_table(page.rows) + footer).encode())
    writer = query.write_csv if fmt == "csv" else query.write_parquet
    return lambda out: writer(page.to_arrow().to_reader(), out)


@main.command("query")
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
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help=_CACHE_HELP)
@_limits
def query_command(
    uri: str,
    site: str,
    table: str,
    page: str | None,
    page_size: str,
    fmt: str,
    output: str | None,
    cache_dir: str | None,
    timeout: float | None,
    memory: str | None,
    threads: int | None,
    temp_limit: str | None,
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
    from . import query

    _published(uri)
    limits = {"timeout": timeout, "memory": memory, "threads": threads, "temp_limit": temp_limit}
    with query.Dataset.open(uri, cache_dir=cache_dir, **limits) as dataset:
        if page is None and fmt in ("csv", "parquet"):
            reader = dataset.rows(site, table, **question)
            writer = query.write_csv if fmt == "csv" else query.write_parquet
            _emit(output, lambda out: writer(reader, out), binary=fmt == "parquet")
            return
        result = dataset.query(site, table, page=page, page_size=page_size, **question)
        _emit(output, _page_writer(fmt, result), binary=fmt == "parquet")


@main.command("sql")
@click.argument("uri")
@click.argument("statement")
@click.option("--format", "fmt", type=_OUTPUT_FORMATS, default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help=_CACHE_HELP)
@_limits
def sql_command(
    uri: str,
    statement: str,
    fmt: str,
    output: str | None,
    cache_dir: str | None,
    timeout: float | None,
    memory: str | None,
    threads: int | None,
    temp_limit: str | None,
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
    from . import query

    _published(uri)
    limits = {"timeout": timeout, "memory": memory, "threads": threads, "temp_limit": temp_limit}
    with query.Dataset.open(uri, cache_dir=cache_dir, **limits) as dataset:
        reader = dataset.sql_reader(statement)
        if fmt in ("csv", "parquet"):
            writer = query.write_csv if fmt == "csv" else query.write_parquet
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
