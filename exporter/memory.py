"""Keeping memory and its bookkeeping bounded: native heap trimming, collector pauses."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable, Iterator

import pyarrow as pa

__all__ = ["gc_paused", "release_freed_memory"]


def release_freed_memory() -> None:
    """Hand memory freed by the last partition back to the system.

    Arrow's allocator keeps freed pages, and so does glibc's malloc (connectorx allocates
    there, from threads that each get an arena of their own): without this a week's export
    peaked at 414 MB against 298 MB for one day; with it, 311 MB.
    """
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None on a C library without it (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Rendering a year's pages allocates some 50,000 tuples and strings, none of them in a
    reference cycle. The collections those allocations trigger free nothing, and with the
    manifests on the heap each full one is dear (all pages: 1.17 s paused, 1.38 s not).
    Reference counting still frees everything as usual meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
