"""`ess-export api`: the seed service's HTTP API, answered from the published files.

Needs the ``api`` extra (``pip install 'ess-export[api]'``: Starlette and uvicorn).
"""

from __future__ import annotations

from .app import ApiSettings, create_app

__all__ = ["ApiSettings", "create_app"]
