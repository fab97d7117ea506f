"""Run `ess-export` in this process and stop its PostgreSQL server at a chosen moment.

    python -m tests.support.faults STAGE run --config ...

STAGE is where the server stops (a real ``pg_ctl stop -m immediate``, argv as JSON in
``FAULT_HALT``; ``FAULT_DSN`` is a superuser DSN of the site's database, ``FAULT_TABLE`` the
source table to lock):

- ``before-schema``, ``before-extent``, ``before-fingerprints``: during planning, just
  before the source is asked for a table's columns, its first and last day, or its day
  fingerprints (``--full-check``);
- ``during-fingerprints``: while the fingerprint query runs (it waits on a lock held here);
- ``read``: after the first slice of a day (``FAULT_DAY``, or the first day read) has been
  read, while the next slices wait on a lock held here;
- ``read-lock``: like ``read``, but the server is not stopped: the lock alone stalls the
  reads (for a ``statement_timeout`` set in the DSN to cancel them);
- ``read-halt``: after the first slice of a day, with no lock: the next slices connect to a
  server that is gone.

Everything else is the real command: its stderr and exit code are what a user sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg

from exporter.cli import main
from exporter.sources import Source
from exporter.sources.postgres import PostgresSource

WAIT_S = 60  # how long the stopper waits for a query to block on the lock


def _halt() -> None:
    subprocess.run(json.loads(os.environ["FAULT_HALT"]), capture_output=True, timeout=120)


_held: list[psycopg.Connection[Any]] = []
_armed: list[bool] = []


def _lock() -> None:
    holder = psycopg.connect(os.environ["FAULT_DSN"])  # its transaction holds the lock
    holder.execute(f'LOCK TABLE "{os.environ["FAULT_TABLE"]}" IN ACCESS EXCLUSIVE MODE')
    _held.append(holder)


def _lock_then_halt() -> None:
    """Lock the table, and stop the server once some query waits for that lock."""
    dsn = os.environ["FAULT_DSN"]
    _lock()

    def stopper() -> None:
        with psycopg.connect(dsn, autocommit=True) as watch:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                ).fetchone()
                if waiting and waiting[0]:
                    break
                time.sleep(0.02)
        _halt()

    threading.Thread(target=stopper, daemon=True).start()


READ_FAULTS = {"read": _lock_then_halt, "read-lock": _lock, "read-halt": _halt}


# Stages that stop the server just before the run calls this method of its source.
HALT_BEFORE = {
    "before-schema": "_describe",
    "before-extent": "extent",
    "before-fingerprints": "fingerprints",
}


def install(stage: str) -> None:
    if stage in HALT_BEFORE or stage == "during-fingerprints":
        name = HALT_BEFORE.get(stage, "fingerprints")
        method = getattr(PostgresSource, name)
        fault = _halt if stage in HALT_BEFORE else _lock_then_halt

        def halted(self: PostgresSource, *args: Any) -> Any:
            fault()
            return method(self, *args)

        setattr(PostgresSource, name, halted)
    elif stage in READ_FAULTS:
        stream = Source.stream
        fault = READ_FAULTS[stage]

        def after_first(self: Source, schema: Any, start: Any, end: Any, day: str) -> Iterator[Any]:
            armed = not any(_armed) and os.environ.get("FAULT_DAY", day) == day
            _armed.append(armed)
            for n, batch in enumerate(stream(self, schema, start, end, day)):
                yield batch
                if n == 0 and armed:
                    fault()

        Source.stream = after_first  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown stage {stage!r}")


if __name__ == "__main__":
    install(sys.argv[1])
    main(sys.argv[2:], prog_name="ess-export")
