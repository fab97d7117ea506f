"""The `ess-export` group and what its commands share: errors, dates, config, targets.

Expected failures (`ExportError`) become one line on stderr and their exit code; nothing
here prints a traceback for them. The library loads inside the commands, so that each
command pays at start-up only for what it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError, ExportError, PublishError

if TYPE_CHECKING:
    from ..config import Config, S3Options
    from ..storage import Reader

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
    if config is None:
        return message
    from ..config import mask

    for site in config.sites:
        message = mask(message, site.dsn)
    return message


def _bare(exc: click.UsageError) -> click.UsageError:
    # Without its context, click prints a usage error as the one `Error:` line.
    if not isinstance(exc, click.exceptions.NoArgsIsHelpError):
        exc.ctx = None
    return exc


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ess-export")
def main() -> None:
    """Publish ESS operating data as an open, static dataset.

    \b
    Example:
      ess-export demo && ess-export run --config config/demo.toml
    """


def day_option(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    """A click callback: YYYY-MM-DD to a date."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


def load_config(config_path: str | None) -> Config:
    """The configuration at `config_path`, or the packaged demo one; its DSNs get masked."""
    from .. import config as config_module

    if config_path is None:
        config = config_module.load_demo()
    else:
        config = config_module.load(config_path)
    click.get_current_context().meta[_CONFIG_KEY] = config  # for _masked
    return config


def store_config(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--config` for the commands that read a publish: its [export.s3] reaches the target."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="TOML configuration whose [export.s3] options (endpoint, region, ...) "
        "are used to reach an s3:// target.",
    )(command)


def store_options(config_path: str | None) -> S3Options | None:
    """The store options of the configuration at `config_path`, if one is given."""
    return None if config_path is None else load_config(config_path).s3


def published(uri: str, s3: S3Options | None = None, *, writable: bool = False) -> Reader:
    """The store under `uri`, which must hold a published dataset (its catalog.json); a
    `writable` one (a Target) for the commands that write into it."""
    from ..layout import CATALOG_KEY
    from ..storage import open_reader, open_target

    target = (open_target if writable else open_reader)(uri, s3)
    if target.head(CATALOG_KEY) is None:
        raise PublishError(
            f"no published dataset at {uri} (no catalog.json); give the folder, s3:// or "
            f"https:// base that holds one, or publish with `ess-export run --target {uri}`"
        )
    return target
