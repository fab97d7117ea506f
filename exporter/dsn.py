"""Database DSNs: the engines by scheme, and the passwords a DSN carries (masked in output)."""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["DSN_SCHEMES", "dsn_secrets", "mask", "redact"]

# Where a DSN can carry a password: the URL's userinfo, or a libpq password parameter.
_NETLOC = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")
_PASSWORD_PARAM = re.compile(r"[?&](?:ssl)?password=([^&#]*)", re.IGNORECASE)
# DSN scheme -> the module of exporter/sources/ that reads it: the one table of engines
# (`sources.open_source` opens a site with it, `config` validates DSNs with it).
DSN_SCHEMES = {"postgresql": "postgres", "postgres": "postgres", "sqlite": "sqlite"}


def dsn_secrets(dsn: str) -> tuple[str, ...]:
    """Every password a DSN carries (userinfo, ``password=``, ``sslpassword=``), as
    written and percent-decoded; parsed leniently, so a malformed DSN still gives them."""
    found = []
    netloc = _NETLOC.match(dsn)
    if netloc:
        userinfo = netloc.group(1).rpartition("@")[0]
        found.append(userinfo.partition(":")[2])
    found += _PASSWORD_PARAM.findall(dsn)
    secrets = {form for value in found if value for form in (value, unquote(value))}
    return tuple(sorted(secrets, key=lambda s: (-len(s), s)))  # longest first: whole words


def mask(text: str, dsn: str) -> str:
    """`text` with every password of `dsn` replaced by ``***``."""
    for secret in dsn_secrets(dsn):
        text = text.replace(secret, "***")
    return text


def redact(dsn: str) -> str:
    """The DSN without its passwords, for messages."""
    return mask(dsn, dsn)
