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
from typing import Any

import click

from . import config as config_module
from . import demo as demo_module
from .errors import ConfigError, ExportError
from .pipeline import Plan, RunReport, run
from .plan import Job
from .publish import verify
from .storage import open_target
from .write import EncodedPartition

__all__ = ["main"]

DEFAULT_CONFIG = "config/demo.toml"


class _Cli(click.Group):
    """Turns the library's expected failures into one-line errors with the right exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExportError as exc:
            if isinstance(exc, ConfigError):
                raise click.UsageError(str(exc), ctx) from None
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)


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
            default=DEFAULT_CONFIG,
            show_default=True,
            type=click.Path(dir_okay=False),
            help="TOML configuration file.",
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


def _load(config_path: str) -> config_module.Config:
    return config_module.load(config_path)


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
    help="Delete objects under data/ that no manifest names (else only report them).",
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
    config_path: str,
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
    config = _load(config_path)
    progress = _Progress()
    report = None
    try:
        report = run(
            config,
            dry_run=dry_run,
            on_plan=_print_plan if dry_run else progress.on_plan,
            progress=progress.on_partition,
            **selection,
        )
    finally:
        progress.close()
        if report_path:
            _write_report(report_path, report)
    if not dry_run:
        _summary(report, selection.get("target") or config.target)
    if exit_nothing and not report.jobs:
        sys.exit(NOTHING_TO_DO)


def _write_report(path: str, report: RunReport | None) -> None:
    # A failed run still leaves a report, saying what failed (the exception follows).
    document = report.to_dict() if report else {"failed": True}
    Path(path).write_text(json.dumps(document, indent=2) + "\n")


def _summary(report: RunReport, target: str) -> None:
    if report.unnamed and not report.pruned:
        click.echo(
            f"{len(report.unnamed)} object(s) under data/ are named by no manifest "
            f"(e.g. {report.unnamed[0]}); delete them with --prune",
            err=True,
        )
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
    found = verify(open_target(target), sample)
    for label, keys in (
        ("missing", found.missing),
        ("differs", found.differ),
        ("extra", found.extra),
    ):
        for key in keys:
            click.echo(f"{label}: {key}")
    problems = len(found.missing) + len(found.differ) + len(found.extra)
    click.echo(f"checked {found.checked} file(s): {problems} problem(s)")
    if problems:
        sys.exit(1)


@main.command("plan")
@_selection
def plan_command(config_path: str, **selection: Any) -> None:
    """Show what `run` would export, without exporting.

    \b
    Example:
      ess-export plan --config config/demo.toml --site 1 --since 2022-09-01
    """
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
