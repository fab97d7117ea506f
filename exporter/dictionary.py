"""The data dictionary: what each table and source column holds, in English and Korean.

``config/dictionary.toml`` ships in the package and describes every column of the seed's
tables (both sites); a configuration names it with ``[dataset] dictionary = "builtin"``, or
names a file of its own shaped alike. `config.load` merges it into each table's column docs
(an entry of the configuration itself wins), so the manifests, the data package and the
site pages all carry it.
"""

from __future__ import annotations

import functools
import importlib.resources
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["BUILTIN", "Dictionary", "Entry", "builtin", "load_dictionary"]

BUILTIN = "builtin"
_ENTRY_KEYS = ("en", "ko", "unit")


@dataclass(frozen=True)
class Entry:
    en: str
    ko: str = ""
    unit: str = ""

    def to_document(self) -> dict[str, str]:
        return {k: v for k, v in (("en", self.en), ("ko", self.ko), ("unit", self.unit)) if v}


@dataclass(frozen=True)
class Dictionary:
    about: Entry
    """Where the descriptions come from and how far to trust them."""
    tables: dict[str, Entry]
    """Purpose of each table, by published table name (``rack``)."""
    columns: dict[str, Entry]
    """By source column name, exactly as the sites spell it (``RACK_STATUS_FOR_Online``)."""

    def to_document(self, tables: set[str]) -> dict[str, Any]:
        """What the catalog carries for the site pages: the note and `tables`' purposes."""
        return {
            "about": self.about.to_document(),
            "tables": {
                name: self.tables[name].to_document()
                for name in sorted(tables & self.tables.keys())
            },
        }


@functools.cache
def builtin() -> Dictionary:
    """``config/dictionary.toml`` as shipped in the package."""
    resource = importlib.resources.files("exporter.config_files") / "dictionary.toml"
    return _parse(resource.read_text(encoding="utf-8"), "the built-in dictionary.toml")


def load_dictionary(spec: str, config_path: Path) -> Dictionary:
    """``builtin``, or a TOML file (relative to the configuration file's folder)."""
    if spec == BUILTIN:
        return builtin()
    path = (config_path.parent / spec).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{config_path}: dataset.dictionary: cannot read {path} ({exc.__class__.__name__}); "
            f'give a readable TOML file or "{BUILTIN}"'
        ) from None
    return _parse(text, str(path))


def _parse(text: str, where: str) -> Dictionary:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - {"about", "tables", "columns"})
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; valid: about, tables, columns")
    return Dictionary(
        about=_entry(raw["about"], f"{where}: about") if "about" in raw else Entry(""),
        tables={k: _entry(v, f"{where}: tables.{k}") for k, v in _table(raw, "tables", where)},
        columns={k: _entry(v, f"{where}: columns.{k}") for k, v in _table(raw, "columns", where)},
    )


def _table(raw: dict[str, Any], key: str, where: str) -> list[tuple[str, Any]]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a table")
    return list(value.items())


def _entry(raw: Any, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise ConfigError(f'{where}: must be a table like {{ en = "...", ko = "..." }}')
    unknown = sorted(set(raw) - set(_ENTRY_KEYS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; valid keys: en, ko, unit")
    if not all(isinstance(raw.get(k, ""), str) for k in _ENTRY_KEYS):
        raise ConfigError(f"{where}: en, ko and unit must be strings")
    if not raw.get("en"):
        raise ConfigError(f'{where}.en: is required (the English description, en = "...")')
    return Entry(en=raw["en"], ko=raw.get("ko", ""), unit=raw.get("unit", ""))


def page_texts(catalog: dict[str, Any], language: str) -> dict[str, Any]:
    """The dictionary's texts a page shows, from the catalog (anything else ignored):
    ``about`` and each table's ``purpose``, as (text in `language`, text in the other)."""
    document = catalog.get("dictionary")
    document = document if isinstance(document, dict) else {}
    tables = document.get("tables")
    tables = tables if isinstance(tables, dict) else {}
    return {
        "about": _pair(document.get("about"), language),
        "purpose": {name: _pair(entry, language) for name, entry in tables.items()},
    }


def _pair(entry: Any, language: str) -> tuple[str, str]:
    if not isinstance(entry, dict):
        return "", ""
    en, ko = (str(entry.get(k) or "") for k in ("en", "ko"))
    return (ko or en, en if ko else "") if language == "ko" else (en, ko)
