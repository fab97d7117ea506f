"""Embedded demo source: deterministic synthetic ESS operating data for two sites."""

from __future__ import annotations

from .tables import DEFAULT_START, KEYS, SCHEMAS, generate, keys_for, write_sqlite

__all__ = ["DEFAULT_START", "KEYS", "SCHEMAS", "generate", "keys_for", "write_sqlite"]
