"""Throwaway PostgreSQL clusters for tests and benchmarks (no pytest dependency).

``PgCluster.start()`` runs initdb in a new folder under /tmp and starts a server listening only
on 127.0.0.1 with scram-sha-256 password auth and durability off; ``stop()`` (also run at exit)
kills it and deletes the folder. As root, initdb and pg_ctl run as the ``postgres`` user.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

# Appended to postgresql.conf: loopback only, durability off and fixed sizes for speed.
SETTINGS = """
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
max_connections = 100
"""


class PgClusterError(RuntimeError):
    """The cluster could not be created or started."""


def _bindir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = Path(subprocess.check_output([pg_config, "--bindir"], text=True).strip())
        if (bindir / "initdb").exists():
            return bindir
    # pg_config may come from libpq-dev alone; the server's own tools live here.
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (bindir / "initdb").exists():
            return bindir
    raise PgClusterError(
        "PostgreSQL server not found (no pg_config/initdb): "
        "run `make test`, which installs the `postgresql` package"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A running throwaway cluster; use ``PgCluster.start()``, ideally as a context manager."""

    host = "127.0.0.1"
    superuser = "postgres"

    def __init__(self, base: Path, bindir: Path, port: int, password: str) -> None:
        self.base, self.bindir, self.port, self.password = base, bindir, port, password
        self.datadir, self.logfile = base / "data", base / "server.log"
        self._stopped = False

    @classmethod
    def start(cls, *, password: str = "pgcluster-pw", port: int | None = None) -> PgCluster:
        """Create and start a cluster; a free loopback port is picked if ``port`` is None."""
        bindir = _bindir()  # /tmp, not pytest's tmp_path: postgres must be able to enter it
        self = cls(Path(tempfile.mkdtemp(prefix="pgcluster-", dir="/tmp")), bindir, 0, password)
        atexit.register(self.stop)
        try:
            self._initdb()
            for attempt in range(1, 4):  # a picked free port may be taken before the server binds
                self.port = port or _free_port()
                self.logfile.unlink(missing_ok=True)
                opts = ["-l", self.logfile, "-w", "-t", "60", "-o", f"-p {self.port}"]
                res = self._run("pg_ctl", "-D", self.datadir, *opts, "start")
                if res.returncode == 0:
                    return self
                log = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
                if port is not None or "could not bind" not in log or attempt == 3:
                    tail = "\n".join(log.splitlines()[-30:])
                    raise PgClusterError(f"pg_ctl start failed: {res.stderr}\nserver log:\n{tail}")
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def _argv(self, tool: str, *args: object) -> list[str]:
        cmd = [str(self.bindir / tool), *map(str, args)]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def _run(self, tool: str, *args: object) -> subprocess.CompletedProcess[str]:
        cmd = self._argv(tool, *args)
        return subprocess.run(cmd, cwd=self.base, capture_output=True, text=True, timeout=120)

    def halt_argv(self) -> list[str]:
        """The command that stops the server at once, as a crash would (data kept)."""
        return self._argv("pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        """Start the server again on the same port after a halt (if it is not running)."""
        if self._run("pg_ctl", "-D", self.datadir, "status").returncode == 0:
            return
        opts = ["-l", self.logfile, "-w", "-t", "60", "-o", f"-p {self.port}"]
        res = self._run("pg_ctl", "-D", self.datadir, *opts, "start")
        if res.returncode != 0:
            raise PgClusterError(f"pg_ctl start failed: {res.stderr}")

    def _initdb(self) -> None:
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            for path in (self.base, pwfile):  # the server refuses to run as root
                shutil.chown(path, "postgres")
        args = ["-U", self.superuser, "--pwfile", pwfile, "--auth=scram-sha-256", "-E", "UTF8"]
        args += ["--locale=C.UTF-8", "--no-sync", "--no-instructions"]
        res = self._run("initdb", "-D", self.datadir, *args)
        pwfile.unlink()
        if res.returncode != 0:
            raise PgClusterError(f"initdb failed:\n{res.stdout}\n{res.stderr}")
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(f"{SETTINGS}unix_socket_directories = '{self.base}'\n")

    def dsn(self, dbname: str, *, user: str | None = None, password: str | None = None) -> str:
        """URL for ``dbname``; the superuser password is used unless another user is given."""
        if password is None and user in (None, self.superuser):
            password = self.password
        auth = quote(user or self.superuser, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def create_database(self, name: str) -> str:
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[Any, ...]]:
        """Autocommit connection as the superuser."""
        return psycopg.connect(self.dsn(dbname), autocommit=True)

    def stop(self) -> None:
        """Kill the server (immediate mode) and delete the folder; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if (self.datadir / "postmaster.pid").exists():  # absent if initdb or start failed
            self._run("pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
