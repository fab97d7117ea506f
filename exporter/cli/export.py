"""`ess-export run` and `plan`: export the configured sites, or show what would be exported."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .base import day_option, load_config

if TYPE_CHECKING:  # the export stack loads only when a command runs
    from ..pipeline import Plan, RunReport
    from ..plan import Job
    from ..write import EncodedPartition

NOTHING_TO_DO = 4


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
        click.option(
            "--since", callback=day_option, help="First local day to export (YYYY-MM-DD)."
        ),
        click.option("--until", callback=day_option, help="Last local day to export (YYYY-MM-DD)."),
        click.option("--rebuild", is_flag=True, help="Re-export every day, published or not."),
        click.option(
            "--full-check",
            is_flag=True,
            help="Compare every published day with the source and re-export changes.",
        ),
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)


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


@click.command("run")
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
    from .. import pipeline

    config = load_config(config_path)
    progress = _Progress()
    report, failure = None, None
    try:
        report = pipeline.run(
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


@click.command("plan")
@_selection
def plan_command(config_path: str | None, **selection: Any) -> None:
    """Show what `run` would export, without exporting.

    \b
    Example:
      ess-export plan --config config/demo.toml --site 1 --since 2022-09-01
    """
    from .. import pipeline

    pipeline.run(load_config(config_path), dry_run=True, on_plan=_print_plan, **selection)
