"""The DuckDB database behind a `Dataset`: bounded, locked, one cursor per thread.

Before any text of the user's is seen, the database gets its limits and its file access:

- ``memory_limit`` (default a quarter of the machine), ``threads`` (default up to 4),
  temporary files only in ``<cache dir>/tmp/<unique>`` up to ``max_temp_directory_size``
  (no spilling at all if that folder cannot be made);
- ``enable_external_access = false`` with ``allowed_paths`` (a directory root's Parquet
  files) or ``allowed_directories`` (a remote root's verified cache): every other path is
  refused before it is opened, so neither its content nor its existence reaches an error;
- ``lock_configuration = true``: no statement can change any of this.

Every query runs under a `Deadline` that interrupts its cursor when its time is up.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import duckdb

__all__ = [
    "DEFAULT_TEMP_LIMIT",
    "DEFAULT_TIMEOUT",
    "Deadline",
    "Engine",
    "Limits",
    "default_memory",
    "default_threads",
    "is_size",
    "referenced_names",
]

_T = TypeVar("_T")
DEFAULT_TIMEOUT = 60.0
DEFAULT_TEMP_LIMIT = "10GiB"
_SIZE = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)


def is_size(text: str) -> bool:
    """A size DuckDB's memory settings accept: 4GB, 512MiB, 1.5GB."""
    return bool(_SIZE.match(text))


def _machine_memory() -> int:
    """Physical memory, or the cgroup's limit when that is smaller (a container)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            total = min(total, int(limit))
    return total


def default_memory() -> str:
    """A quarter of the machine: room for the other programs running beside a query."""
    return f"{max(_machine_memory() // 4 // 2**20, 64)}MiB"


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Limits:
    """What one query may use. None: the default (see `default_memory`, `default_threads`)."""

    timeout: float = DEFAULT_TIMEOUT
    """Seconds of DuckDB work per query (time spent by the reader of a stream is not counted)."""
    memory: str | None = None
    threads: int | None = None
    temp_limit: str = DEFAULT_TEMP_LIMIT
    """Disk for spilled intermediate results, in `temp_dir`."""
    temp_dir: Path | None = None
    """Where spilled results go; None: the query cache's tmp folder."""
    memory_value: str = field(init=False, default="")

    def __post_init__(self) -> None:
        # The resolved figure, for messages ("the limit of 5.8GiB").
        object.__setattr__(self, "memory_value", self.memory or default_memory())


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_sql_string(i) for i in items) + "]"


class Engine:
    """An in-memory DuckDB database, limited and locked; each thread queries on its own cursor."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        limits: Limits,
        *,
        zone: str,
        paths: Iterable[str] = (),
        directories: Iterable[str] = (),
        temp_base: Path,
    ) -> None:
        self.limits = limits
        self.temp_dir = _temp_dir(limits.temp_dir or temp_base)
        settings = {
            "memory_limit": limits.memory_value,
            "threads": str(limits.threads or default_threads()),
            # '' turns spilling off: better than DuckDB's default, ./.tmp in the working dir.
            "temp_directory": str(self.temp_dir or ""),
            "max_temp_directory_size": limits.temp_limit,
            "TimeZone": zone,
        }
        for name, value in settings.items():
            connection.execute(f"SET GLOBAL {name} = {_sql_string(value)}")
        connection.execute(f"SET allowed_paths = {_sql_list(paths)}")
        connection.execute(f"SET allowed_directories = {_sql_list(directories)}")
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
        self._base = connection
        self._local = threading.local()
        self._owners: dict[threading.Thread, duckdb.DuckDBPyConnection] = {}
        self._lock = threading.Lock()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's connection to the database (DuckDB connections are not shared).

        A thread that has ended hands its cursor on: a server making a thread per request
        keeps as many cursors as it has threads at once, not one per request ever served.
        A stream is to be read before the thread that opened it ends.
        """
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                ended = next((t for t in self._owners if not t.is_alive()), None)
                cursor = self._owners.pop(ended) if ended else self._base.cursor()
                self._owners[threading.current_thread()] = cursor
            self._local.cursor = cursor
        return cursor

    def discard_cursor(self) -> None:
        """Close this thread's cursor; its next query opens a new one."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is not None:
            with self._lock:
                self._owners.pop(threading.current_thread(), None)
            self._local.cursor = None
            cursor.close()

    @property
    def cursors(self) -> int:
        return len(self._owners)

    def deadline(self) -> Deadline:
        return Deadline(self.cursor(), self.limits.timeout)

    def close(self) -> None:
        with self._lock:
            for cursor in self._owners.values():
                cursor.close()
            self._owners.clear()
        self._base.close()  # the last connection: DuckDB removes its temporary folder


def _temp_dir(base: Path) -> Path | None:
    """A folder of its own under `base` (made by DuckDB on the first spill), or None."""
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # no spilling rather than spilling elsewhere
    return base.resolve() / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


class Deadline:
    """A time budget for one query, spent only while DuckDB works on it.

    Each piece of work (binding, each batch of a stream) starts a timer for what is left,
    which interrupts the cursor when it fires.
    """

    def __init__(self, cursor: duckdb.DuckDBPyConnection, seconds: float) -> None:
        self.cursor = cursor
        self.seconds = seconds
        self.left = seconds
        self.expired = False

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Interrupts the work when the budget runs out; work that outlasted it, but
        ended before the interrupt landed, is over the limit all the same."""
        self._check()
        timer = threading.Timer(self.left, self._expire)
        timer.daemon = True
        started = time.monotonic()
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            self.left -= time.monotonic() - started
        self._check()

    def _check(self) -> None:
        if self.left <= 0 or self.expired:
            self.expired = True
            raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

    def _expire(self) -> None:
        self.expired = True
        self.cursor.interrupt()

    def call(self, work: Callable[[], _T]) -> _T:
        with self.running():
            return work()


def referenced_names(statement: str) -> set[str]:
    """Every identifier and string constant in `statement`, lower-cased, from the tokenizer.

    A superset of the tables it reads (column names, aliases, strings too), found without
    binding: binding would already open the files a statement names.
    """
    tokens = duckdb.tokenize(statement)
    ends = [start for start, _ in tokens[1:]] + [len(statement)]
    names = set()
    for (start, kind), end in zip(tokens, ends, strict=True):
        if kind not in (duckdb.token_type.identifier, duckdb.token_type.string_const):
            continue
        text = statement[start:end].strip()
        quote = text[:1]
        if quote in ("'", '"') and text.endswith(quote) and len(text) >= 2:
            text = text[1:-1].replace(quote * 2, quote)
        names.add(text.lower())
    return names
