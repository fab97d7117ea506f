"""Pausing the cyclic garbage collector around allocation-heavy, cycle-free work."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Parsing a year's manifest allocates some 50,000 dicts and rendering its pages as many
    tuples, none of them in a reference cycle. The collections those allocations trigger
    free nothing, and once the heap holds the manifests each full one costs tens of ms.
    Reference counting still frees everything as usual meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
