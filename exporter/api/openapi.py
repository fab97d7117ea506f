"""GET /openapi.json: every route and parameter of the old API, and the published columns."""

from __future__ import annotations

from typing import Any

from ..query import Dataset

__all__ = ["openapi_document"]

_TIME = "Local time of the site, YYYY-MM-DDThh:mm:ss (no offset), both ends inclusive."


def _param(name: str, where: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


_SITE = _param("operating_site_id", "path", "Site id.", type="integer")
_BANK = _param("bank_id", "path", "Bank id.", type="integer")
_RACK = _param("rack_id", "path", "Rack id (a whole number).")
_LIST_PARAMS = [
    _param("fields", "query", "Comma-separated fields to keep (drf-flex-fields); order is fixed."),
    _param("omit", "query", "Comma-separated fields to leave out; wins over fields."),
    _param("date", "query", "One local day, YYYY-MM-DD.", type="string", format="date"),
    _param("start-time", "query", _TIME),
    _param("end-time", "query", _TIME),
    _param("page", "query", "Page number from 1, or 'last'."),
    _param("page_size", "query", "Rows per page (default 1000, at most 10000).", type="integer"),
    _param("format", "query", "'json', or 'api': the reply in an HTML page.", enum=["json", "api"]),
]
_ERROR = {
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "exception type": {"type": "string"},
        "message": {"type": "string"},
    },
}
_PAGE = {
    "type": "object",
    "properties": {
        "count": {"type": "integer"},
        "next": {"type": ["string", "null"], "format": "uri"},
        "previous": {"type": ["string", "null"], "format": "uri"},
        "results": {"type": "array", "items": {"type": "object"}},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list_operation(summary: str, path_params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": [*path_params, *_LIST_PARAMS],
            "responses": {
                "200": _json(_PAGE, "A page of rows in time order."),
                "400": _json(_ERROR, "A bad date or time, site or rack id."),
                "404": _json({"type": "object"}, "Invalid page."),
            },
        }
    }


def _columns(dataset: Dataset) -> dict[str, Any]:
    schemas = {}
    for site, tables in dataset.tables().items():
        for table in tables:
            manifest = dataset.table_manifest(site, table)
            schemas[f"site{site}_{table}"] = {
                "type": "object",
                "properties": {
                    c.name: {"description": f"{c.type}" + (f", {c.unit}" if c.unit else "")}
                    for c in manifest.columns
                },
            }
    return schemas


def openapi_document(dataset: Dataset) -> dict[str, Any]:
    base = "/api/ess/operating-sites/{operating_site_id}"
    download = {
        "get": {
            "summary": "Every row of a table in [start-time, end-time] as CSV",
            "parameters": [
                _SITE,
                _param("data_type", "path", "Table.", enum=["bank", "rack", "pcs", "etc"]),
                {**_param("start-time", "query", _TIME), "required": True},
                {**_param("end-time", "query", _TIME), "required": True},
            ],
            "responses": {
                "200": {"description": "CSV", "content": {"text/csv": {}}},
                "400": _json(_ERROR, "A missing or bad time, or an unknown site or table."),
                "404": _json(_ERROR, "No row in the window (Index Error)."),
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ESS operating data (the seed service's API, served from the files)",
            "version": "1",
        },
        "paths": {
            f"{base}/banks/{{bank_id}}/": _list_operation("Bank rows", [_SITE, _BANK]),
            f"{base}/banks/{{bank_id}}/racks/": _list_operation("Rack rows", [_SITE, _BANK]),
            f"{base}/banks/{{bank_id}}/racks/{{rack_id}}/": _list_operation(
                "Rows of one rack", [_SITE, _BANK, _RACK]
            ),
            f"{base}/pcs/": _list_operation("PCS rows", [_SITE]),
            f"{base}/etc/": _list_operation("Sensor rows", [_SITE]),
            "/api/ess/download/operating-sites/{operating_site_id}/{data_type}/": download,
            "/healthz": {
                "get": {
                    "summary": "Catalog age and state",
                    "responses": {"200": {"description": "ok"}},
                }
            },
        },
        "components": {"schemas": _columns(dataset)},
    }
