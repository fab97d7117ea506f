"""`ess-export verify`: re-hash a publish against its manifests."""

from __future__ import annotations

import sys

import click

from .base import published, store_config, store_options


@click.command("verify")
@click.option("--target", required=True, help="Published tree: a directory or s3://BUCKET/PREFIX.")
@click.option(
    "--sample",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Fraction of the files to re-hash (the same files every time).",
)
@store_config
def verify_command(target: str, sample: float, config_path: str | None) -> None:
    """Re-hash published files against the manifests; report missing, differing, extra.

    Exits 1 if anything is missing or differs, or an object is named by no manifest.

    \b
    Example:
      ess-export verify --target s3://open-data/ess --sample 0.1
    """
    from ..verification import verify

    found = verify(published(target, store_options(config_path)), sample)
    for label, what in found.problems:
        click.echo(f"{label}: {what}")
    problems = len(found.problems)
    click.echo(f"checked {found.checked} file(s): {problems} problem(s)")
    if problems:
        sys.exit(1)
