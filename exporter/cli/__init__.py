"""The `ess-export` command line."""

from __future__ import annotations

from .query import main

__all__ = ["main"]
