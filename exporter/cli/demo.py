"""`ess-export demo`: write the embedded-default source databases."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from ..demo.schemas import DEFAULT_START
from .base import day_option


@click.command("demo")
@click.option(
    "--days",
    default=3,
    show_default=True,
    type=click.IntRange(1, 366),
    help="Days of data per site.",
)
@click.option(
    "--start",
    callback=day_option,
    default=DEFAULT_START.isoformat(),
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
    from ..demo import write_sqlite

    paths = write_sqlite(Path(out), start=start, days=days, seed=seed, interval_s=interval)
    for path in paths:
        click.echo(f"wrote {path}")
