"""`ess-export api` as a real process on a loopback port, for tests that need uvicorn itself."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", target, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


class ApiServer:
    """``ess-export api --target TARGET`` on a free port; stderr (the access log) kept."""

    def __init__(
        self, target: str, *args: str, env: dict[str, str] | None = None, wait: float = 60
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._err = tempfile.TemporaryFile()
        argv = [sys.executable, "-m", "exporter", "api", "--target", target]
        argv += ["--port", str(self.port), *args]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            env={**os.environ, **(env or {})},
            cwd=Path(__file__).resolve().parents[2],
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ess-export api exited: {self.stderr}")
            try:
                if get(self.port, "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ess-export api did not answer within {wait} s: {self.stderr}")

    @property
    def stderr(self) -> str:
        self._err.seek(0)
        return self._err.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
