"""An optional bearer-token check, as the seed's `IsAuthenticated` + simplejwt answered it.

Off by default (the reference reconstruction runs with SEED_API_AUTH=off). With a secret,
every /api/ess/ request needs ``Authorization: Bearer <JWT>`` signed with HS256 by that
secret, with ``token_type: "access"``, an ``exp`` in the future and a ``user_id``; the
replies for a missing, malformed or invalid token are simplejwt's 401s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

from starlette.responses import Response

from .replies import json_reply

__all__ = ["TOKEN_SECRET_ENV", "TokenCheck"]

TOKEN_SECRET_ENV = "ESS_API_JWT_SECRET"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="api"'}
_INVALID = {
    "detail": "Given token not valid for any token type",
    "code": "token_not_valid",
    "messages": [
        {
            "token_class": "AccessToken",
            "token_type": "access",
            "message": "Token is invalid or expired",
        }
    ],
}


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenCheck:
    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def claims(self, token: str) -> dict[str, Any] | None:
        """The token's claims if it is a valid, unexpired HS256 access token, else None."""
        try:
            head, body, signature = token.split(".")
            header = json.loads(_b64(head))
            claims = json.loads(_b64(body))
            given = _b64(signature)
        except (ValueError, binascii.Error):
            return None
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            return None
        wanted = hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(wanted, given) or not isinstance(claims, dict):
            return None
        expiry = claims.get("exp")
        if not isinstance(expiry, int | float) or expiry <= time.time():
            return None
        if claims.get("token_type") != "access":
            return None
        return claims

    def check(self, authorization: str | None) -> Response | None:
        """None if the request may proceed, else the 401 the seed service gave."""
        parts = (authorization or "").split()
        if not parts or parts[0] != "Bearer":
            detail = {"detail": "Authentication credentials were not provided."}
            return json_reply(detail, 401, _CHALLENGE)
        if len(parts) != 2:
            detail = {
                "detail": "Authorization header must contain two space-delimited values",
                "code": "bad_authorization_header",
            }
            return json_reply(detail, 401, _CHALLENGE)
        claims = self.claims(parts[1])
        if claims is None:
            return json_reply(_INVALID, 401, _CHALLENGE)
        if "user_id" not in claims:
            detail = {
                "detail": "Token contained no recognizable user identification",
                "code": "token_not_valid",
            }
            return json_reply(detail, 401, _CHALLENGE)
        return None
