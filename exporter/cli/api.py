"""`ess-export api`: serve the old HTTP API from a publish."""

from __future__ import annotations

import click

from .base import store_config, store_options


@click.command("api")
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
@store_config
def api_command(
    target: str,
    host: str,
    port: int,
    workers: int,
    refresh: float,
    cors_origins: tuple[str, ...],
    require_token: bool,
    cache_dir: str | None,
    config_path: str | None,
) -> None:
    """Serve the old HTTP API (/api/ess/...) from a publish; Ctrl-C stops it.

    Needs the api extra: pip install 'ess-export[api]'.

    \b
    Example:
      ess-export api --target ./public --port 8000
      curl 'http://127.0.0.1:8000/api/ess/operating-sites/1/banks/1/racks/1/?page_size=2'
    """
    try:
        from ..api import ApiSettings
        from ..api.server import check_target, serve, settings_with_token
    except ImportError as exc:
        raise click.ClickException(
            f"ess-export api needs the api extra ({exc.name} is missing): "
            "pip install 'ess-export[api]'"
        ) from None
    settings = ApiSettings(
        target, refresh_seconds=refresh, cors_origins=cors_origins, s3=store_options(config_path)
    )
    settings = settings_with_token(settings, require_token)
    check_target(settings, cache_dir)
    click.echo(f"serving the API of {target} at http://{host}:{port}/api/ess/ (Ctrl-C to stop)")
    serve(settings, host, port, workers, cache_dir)
