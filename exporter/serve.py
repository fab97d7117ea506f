"""The preview server of a local publish (``ess-export serve``): static files with byte ranges."""

from __future__ import annotations

import functools
import re
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["RangeRequestHandler", "make_server"]

_BYTE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Static files, with single byte ranges (RFC 9110 14.2): the "from the web" readers
    (polars, DuckDB, hyparquet, the explorer) read a Parquet file's footer and row groups
    this way. A header of several ranges is ignored (the whole file is sent), as allowed."""

    _span: tuple[int, int] | None = None

    def send_head(self) -> Any:
        self._span = None
        path = self.translate_path(self.path)
        match = _BYTE_RANGE.fullmatch(self.headers.get("Range", "").strip())
        if not match or match.groups() == ("", "") or not Path(path).is_file():
            return super().send_head()
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed by the caller, as in the base
        except OSError:
            self.send_error(404, "File not found")
            return None
        size = Path(path).stat().st_size
        first, last = match.groups()
        if first:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        else:  # "bytes=-N": the last N bytes
            start, end = max(size - int(last), 0), size - 1
        if start >= size or start > end:
            source.close()
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        source.seek(start)
        self._span = (start, end)
        return source

    def end_headers(self) -> None:
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def copyfile(self, source: Any, outputfile: Any) -> None:
        if self._span is None:
            return super().copyfile(source, outputfile)
        remaining = self._span[1] - self._span[0] + 1
        while remaining > 0 and (chunk := source.read(min(remaining, 1 << 16))):
            outputfile.write(chunk)
            remaining -= len(chunk)
        return None


def make_server(directory: str | Path, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server over a local publish (``ess-export serve``); port 0 picks a free one."""
    handler = functools.partial(RangeRequestHandler, directory=str(directory))
    return ThreadingHTTPServer((host, port), handler)
