"""Load and validate the TOML configuration into frozen dataclasses.

Everything a run needs is checked here, before any I/O: names, time zones, DSNs, formats.
String values may reference the environment as ``${VAR}`` or ``${VAR:-default}``; secrets
(database passwords) must come from there, never from the file itself.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .dictionary import load_dictionary
from .dsn import DSN_SCHEMES, dsn_secrets, mask, redact
from .errors import ConfigError
from .formats import names as format_names
from .layout import NAME_PATTERN, NAME_RULE, is_name
from .settings import ColumnDoc, Config, DatasetConfig, S3Options, SiteConfig, TableConfig

__all__ = [
    "DSN_SCHEMES",
    "NAME_PATTERN",
    "ColumnDoc",
    "Config",
    "DatasetConfig",
    "S3Options",
    "SiteConfig",
    "TableConfig",
    "check_name",
    "load",
    "dsn_secrets",
    "load_demo",
    "mask",
    "redact",
]

LANGUAGES = ("en", "ko")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DSN_EXPECTED = "expected postgresql://USER:PASSWORD@HOST:PORT/DBNAME or sqlite:PATH"


def check_name(kind: str, value: str, where: str) -> str:
    """Reject a site or table name that is unsafe as a path segment or URL part."""
    if not is_name(value):
        raise ConfigError(
            f"{where}: invalid {kind} name {value!r}; use {NAME_RULE} (e.g. 'rack', 'site-2')"
        )
    return value


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a config file; raise ConfigError naming file and key."""
    path = Path(path)
    env = os.environ if env is None else env
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; pass --config FILE") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return _Loader(path, env).config(raw)


def load_demo(env: Mapping[str, str] | None = None) -> Config:
    """The embedded default: ``config/demo.toml`` as shipped in the package.

    Its relative paths (the SQLite files, the target) are relative to the working directory.
    """
    resource = importlib.resources.files("exporter.config_files") / "demo.toml"
    with importlib.resources.as_file(resource) as path:
        return load(path, env)


class _Loader:
    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {message}")

    def table_of(self, raw: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(key, "must be a table")
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise self.fail(
                f"{key}.{unknown[0]}" if key else unknown[0],
                f"unknown key; valid keys here: {', '.join(allowed)}",
            )
        return raw

    def string(self, raw: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = raw.get(key, default)
        if value is None:
            raise self.fail(f"{where}.{key}" if where else key, "is required")
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key}" if where else key, "must be a string")
        return self.expand(value, f"{where}.{key}" if where else key)

    def strings(self, raw: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{where}.{key}", "must be a list of strings")
        return tuple(value)

    def count(self, raw: dict[str, Any], key: str, where: str, default: int) -> int:
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail(f"{where}.{key}", "must be a whole number >= 0")
        return value

    def expand(self, value: str, key: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            raise self.fail(
                key, f"environment variable {name} is not set; export it or give a default"
            )

        return _ENV_REF.sub(substitute, value)

    def config(self, raw: dict[str, Any]) -> Config:
        raw = self.table_of(raw, "", ("dataset", "export", "sites"))
        dataset = self.dataset(raw.get("dataset", {}))
        export = self.table_of(
            raw.get("export", {}),
            "export",
            ("target", "formats", "settle_minutes", "lookback_days", "lock_minutes", "s3"),
        )
        known = format_names()  # the registry's, read when the file is loaded
        formats = tuple(export.get("formats", list(known)))
        if not formats or any(f not in known for f in formats) or len(set(formats)) < len(formats):
            raise self.fail("export.formats", f"must be a non-empty list of {list(known)}")
        settle = self.count(export, "settle_minutes", "export", 60)
        lookback = self.count(export, "lookback_days", "export", 3)
        sites_raw = self.table_of(raw.get("sites", {}), "sites", tuple(raw.get("sites", {})))
        if not sites_raw:
            raise self.fail("sites", "no site configured; add a [sites.<id>] table")
        sites = tuple(self.site(site_id, value) for site_id, value in sites_raw.items())
        if dataset.dictionary:
            dataset, sites = self.documented(dataset, sites)
        return Config(
            path=self.path,
            dataset=dataset,
            target=self.string(export, "target", "export", "./public"),
            formats=formats,
            settle_minutes=settle,
            lookback_days=lookback,
            lock_minutes=self.count(export, "lock_minutes", "export", 5),
            s3=self.s3(export.get("s3", {})),
            sites=sites,
        )

    def documented(
        self, dataset: DatasetConfig, sites: tuple[SiteConfig, ...]
    ) -> tuple[DatasetConfig, tuple[SiteConfig, ...]]:
        """The data dictionary merged into every table's column docs; a value the
        configuration gives for a column wins over the dictionary's."""
        found = load_dictionary(dataset.dictionary, self.path)
        known = {
            name: ColumnDoc(description=e.en, unit=e.unit, description_ko=e.ko)
            for name, e in found.columns.items()
        }

        def merged(table: TableConfig) -> TableConfig:
            docs = dict(known)
            for column, own in table.columns.items():
                base = known.get(column, ColumnDoc())
                docs[column] = ColumnDoc(
                    description=own.description or base.description,
                    unit=own.unit or base.unit,
                    description_ko=own.description_ko or base.description_ko,
                )
            return replace(table, columns=docs)

        sites = tuple(replace(s, tables=tuple(merged(t) for t in s.tables)) for s in sites)
        names = {t.name for s in sites for t in s.tables}
        return replace(dataset, dictionary_tables=found.to_document(names)), sites

    def s3(self, raw: Any) -> S3Options:
        keys = ("endpoint_url", "region", "path_style", "checksum", "max_attempts")
        raw = self.table_of(raw, "export.s3", keys)
        path_style = raw.get("path_style", False)
        if not isinstance(path_style, bool):
            raise self.fail("export.s3.path_style", "must be true or false")
        checksum = self.string(raw, "checksum", "export.s3", "when_supported")
        if checksum not in ("when_supported", "when_required"):
            raise self.fail("export.s3.checksum", "must be 'when_supported' or 'when_required'")
        attempts = self.count(raw, "max_attempts", "export.s3", 5)
        if not 1 <= attempts <= 20:
            raise self.fail("export.s3.max_attempts", "must be between 1 and 20")
        return S3Options(
            endpoint_url=self.string(raw, "endpoint_url", "export.s3", "") or None,
            region=self.string(raw, "region", "export.s3", "") or None,
            path_style=path_style,
            checksum=checksum,
            max_attempts=attempts,
        )

    def dataset(self, raw: Any) -> DatasetConfig:
        fields_ = (
            "title",
            "description",
            "license",
            "citation",
            "language",
            "public_base_url",
            "dictionary",
        )
        raw = self.table_of(raw, "dataset", fields_)
        values = {k: self.string(raw, k, "dataset") for k in fields_ if k in raw}
        values.setdefault("title", "ESS operating data")
        if values.get("language", "en") not in LANGUAGES:
            raise self.fail("dataset.language", f"must be one of {', '.join(LANGUAGES)}")
        return DatasetConfig(**values)

    def site(self, site_id: str, raw: Any) -> SiteConfig:
        where = f"sites.{site_id}"
        check_name("site", site_id, f"{self.path}: {where}")
        raw = self.table_of(raw, where, ("name", "timezone", "dsn", "tables"))
        timezone = self.string(raw, "timezone", where, "Asia/Seoul")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(
                f"{where}.timezone",
                f"unknown time zone {timezone!r}; use an IANA name such as 'Asia/Seoul' or 'UTC'",
            ) from None
        tables_raw = raw.get("tables")
        if not isinstance(tables_raw, dict) or not tables_raw:
            raise self.fail(f"{where}.tables", "add at least one [sites.<id>.tables.<name>] table")
        tables = tuple(self.table(f"{where}.tables", n, v) for n, v in tables_raw.items())
        return SiteConfig(
            id=site_id,
            name=self.string(raw, "name", where, f"Site {site_id}"),
            timezone=timezone,
            dsn=self.dsn(raw, where),
            tables=tables,
        )

    def dsn(self, raw: dict[str, Any], where: str) -> str:
        literal = raw.get("dsn")
        if not isinstance(literal, str):
            raise self.fail(f"{where}.dsn", 'is required: a string such as "${ESS1_DSN}"')
        # What the file itself writes: variables as empty, defaults as given. A password
        # there (userinfo, password=, a ${VAR:-default}) is a secret in the file.
        written = _ENV_REF.sub(lambda m: m.group(2) or "", literal)
        if dsn_secrets(written):
            raise self.fail(
                f"{where}.dsn",
                "holds a literal password (in the URL, a password= parameter or a "
                "${VAR:-default}); put the DSN in an environment variable and write "
                'dsn = "${ESS1_DSN}"',
            )
        dsn = self.expand(literal, f"{where}.dsn")
        return self.checked_dsn(dsn, f"{where}.dsn")

    def checked_dsn(self, dsn: str, key: str) -> str:
        """The DSN if well formed; else an error naming the part at fault (never a secret)."""
        try:
            parts = urlsplit(dsn)
        except ValueError as exc:  # e.g. "Invalid IPv6 URL": names no part of the DSN
            raise self.fail(key, f"malformed DSN ({exc}); {_DSN_EXPECTED}") from None
        engine = DSN_SCHEMES.get(parts.scheme)
        if engine is None:
            raise self.fail(key, f"unsupported DSN scheme {parts.scheme!r}; {_DSN_EXPECTED}")
        if engine == "sqlite":
            if not parts.path:
                raise self.fail(key, f"malformed DSN: no file after 'sqlite:'; {_DSN_EXPECTED}")
            return "sqlite://" + str(Path(parts.path).resolve())
        port = parts.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2]
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise self.fail(
                key,
                f"malformed DSN: port {port!r} is not a number from 1 to 65535; {_DSN_EXPECTED}",
            )
        if not parts.hostname:
            raise self.fail(key, f"malformed DSN: the host is missing; {_DSN_EXPECTED}")
        if not parts.path.strip("/"):
            raise self.fail(key, f"malformed DSN: the database name is missing; {_DSN_EXPECTED}")
        return dsn

    def table(self, where: str, name: str, raw: Any) -> TableConfig:
        key = f"{where}.{name}"
        check_name("table", name, f"{self.path}: {key}")
        raw = self.table_of(
            raw, key, ("source", "timestamp", "keys", "include", "exclude", "columns")
        )
        docs_raw = self.table_of(
            raw.get("columns", {}), f"{key}.columns", tuple(raw.get("columns", {}))
        )
        docs = {}
        for column, doc in docs_raw.items():
            where = f"{key}.columns.{column}"
            doc = self.table_of(doc, where, ("description", "unit", "description_ko"))
            docs[column] = ColumnDoc(
                description=self.string(doc, "description", where, ""),
                unit=self.string(doc, "unit", where, ""),
                description_ko=self.string(doc, "description_ko", where, ""),
            )
        return TableConfig(
            name=name,
            source=self.string(raw, "source", key, name),
            timestamp=self.string(raw, "timestamp", key, "TIMESTAMP"),
            keys=self.strings(raw, "keys", key),
            include=self.strings(raw, "include", key),
            exclude=self.strings(raw, "exclude", key),
            columns=docs,
        )
