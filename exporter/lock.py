"""The site lease: at most one run publishes a site, and a dead run does not block the next.

``locks/<site>.json`` is created only if absent (If-None-Match: * on S3, an exclusive create
locally) and names its owner and an expiry. While the run is alive a heartbeat thread
renews the expiry with a conditional write; a lease is taken over (conditionally too) once
it has expired, or at once on the same host when its owner process is gone. A run whose
renewal fails has lost its lease: it stops before its next commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .errors import LockHeld, PublishError
from .layout import lock_key

if TYPE_CHECKING:
    from .storage import Target

__all__ = ["Lease", "site_lease"]

JSON_TYPE = "application/json"
# Renew five times per lease length, at most every minute and at least every second.
RENEWALS_PER_LEASE = 5
MAX_RENEW_SECONDS = 60.0
MIN_RENEW_SECONDS = 1.0
_HOST = socket.gethostname()
# Tokens of the leases this process holds now: an in-process owner not listed is gone.
_LIVE: set[str] = set()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


class Lease:
    """One run's hold on a site; `check()` raises once the hold is lost."""

    def __init__(self, target: Target, site: str, length: timedelta) -> None:
        self.target, self.site, self.length = target, site, length
        self.key = lock_key(site)
        self.token = uuid.uuid4().hex
        self.owner = f"{_HOST}:{os.getpid()}:{self.token[:8]}"
        self.started = datetime.now(UTC)
        self.tag: str | None = None
        self.renewed = time.monotonic()
        self.lost: str | None = None
        self._stop = threading.Event()
        self._guard = threading.Lock()  # the heartbeat and release never write at once

    def _body(self) -> bytes:
        now = datetime.now(UTC)
        document = {
            "owner": self.owner,
            "host": _HOST,
            "pid": os.getpid(),
            "token": self.token,
            "started": self.started.isoformat(),
            "renewed": now.isoformat(),
            "expires": (now + self.length).isoformat(),
        }
        return json.dumps(document).encode()

    def acquire(self) -> None:
        tag = self.target.put_if(self.key, self._body(), JSON_TYPE, tag=None)
        if not tag:
            found = self.target.get_tagged(self.key)
            held = _parse(found[0]) if found else {}
            why = _takeover_reason(held)
            if found is not None and why is None:
                raise LockHeld(
                    f"site {self.site} is being published by another run "
                    f"({held.get('owner', '?')}, since {held.get('started', '?')}); its lease "
                    f"{self.target.url(self.key)} expires {held.get('expires', '?')} unless "
                    "renewed. Wait for it; a dead run's lease is taken over once it expires"
                )
            tag = self.target.put_if(
                self.key, self._body(), JSON_TYPE, tag=found[1] if found else None
            )
            if not tag:
                raise LockHeld(
                    f"site {self.site}: another run took over the lease "
                    f"{self.target.url(self.key)} at the same moment; try again later"
                )
        self.tag = tag
        _LIVE.add(self.token)

    def renew(self) -> None:
        with self._guard:
            if self.lost or self.tag is None:
                return
            try:
                tag = self.target.put_if(self.key, self._body(), JSON_TYPE, tag=self.tag)
            except PublishError as exc:  # a passing fault: the next beat tries again
                if time.monotonic() - self.renewed > self.length.total_seconds():
                    self.lost = f"it expired: cannot renew it ({exc})"
                return
            if tag:
                self.tag, self.renewed = tag, time.monotonic()
            else:
                self.lost = "another run took it over"

    def check(self) -> None:
        if self.lost:
            raise PublishError(
                f"site {self.site}: lost the lease {self.target.url(self.key)} "
                f"({self.lost}); stopped before committing. Run again"
            )

    def release(self) -> None:
        self._stop.set()
        _LIVE.discard(self.token)
        with self._guard:
            if self.lost or self.tag is None:
                return
            # Renewed within half its length, the lease cannot have been taken over: delete
            # it without reading it first (one request instead of two).
            fresh = time.monotonic() - self.renewed < self.length.total_seconds() / 2
            if not fresh:
                found = self.target.get_tagged(self.key)
                if found is None or found[1] != self.tag:
                    return
            self.target.delete(self.key)

    def heartbeat(self) -> None:
        interval = self.length.total_seconds() / RENEWALS_PER_LEASE
        interval = min(max(interval, MIN_RENEW_SECONDS), MAX_RENEW_SECONDS)
        while not self._stop.wait(interval):
            self.renew()


def _parse(raw: bytes) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        found = json.loads(raw)
        if isinstance(found, dict):
            return found
    return {}


def _takeover_reason(held: dict[str, Any]) -> str | None:
    """Why a lease found on the target may be taken over; None while its owner is alive."""
    try:
        expires = datetime.fromisoformat(held["expires"])
    except (KeyError, TypeError, ValueError):
        return "unreadable"
    if expires <= datetime.now(UTC):
        return "expired"
    if held.get("host") == _HOST and isinstance(held.get("pid"), int):
        if not _pid_alive(held["pid"]):
            return "owner process gone"
        if held["pid"] == os.getpid() and held.get("token") not in _LIVE:
            return "owner run ended"
    return None


@contextlib.contextmanager
def site_lease(target: Target, site: str, length: timedelta) -> Iterator[Lease]:
    """Hold the site's lease for the duration (renewed in the background); LockHeld if a
    live run holds it."""
    lease = Lease(target, site, length)
    lease.acquire()
    beat = threading.Thread(target=lease.heartbeat, name=f"lease-{site}", daemon=True)
    beat.start()
    try:
        yield lease
    except BaseException:
        # The error that stopped the run is the one to report: a lease left behind by a
        # failing target is taken over (its owner run has ended, or expires).
        with contextlib.suppress(Exception):
            lease.release()
        raise
    else:
        lease.release()
    finally:
        beat.join()  # release() stopped it, whether or not it failed
