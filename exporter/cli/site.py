"""`ess-export site` and `serve`: rebuild the index pages of a publish, preview it locally."""

from __future__ import annotations

from pathlib import Path

import click

from .base import published, store_config, store_options


@click.command("site")
@click.option("--target", required=True, help="Published tree: a directory or s3://BUCKET/PREFIX.")
@store_config
def site_command(target: str, config_path: str | None) -> None:
    """Rebuild the index pages from the published manifests alone (no database, no config).

    Only pages whose content changed are written; the pages of months and tables that no
    manifest has any more are deleted.

    \b
    Example:
      ess-export site --target ./public
    """
    from ..site import build_site

    written, deleted = build_site(published(target, store_options(config_path), writable=True))
    gone = f", deleted {deleted} of months or tables no manifest has" if deleted else ""
    click.echo(f"wrote {written} page(s) to {target}{gone}")


@click.command("serve")
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
    from ..serve import make_server

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
