"""``GET /api/openapi.json``: the JSON API and the download endpoint, described for clients
and tools (OpenAPI 3.1). The tus endpoints are left to the tus protocol's own specification.

Written out rather than generated: the answers' shapes are part of the contract, and a test
checks every path here against the routes the gateway serves.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api import audit, quotas
from app.api.responses import json_response

SHA256 = {
    "name": "sha256",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
}
# Text the database can hold (PostgreSQL's takes no NUL).
TEXT = {"type": "string", "pattern": "^[^\x00]*$"}
USER = {"name": "user", "in": "path", "required": True, "schema": TEXT}
UPLOAD_ID = {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}}
ERROR = {
    "description": "refused, with a one-line reason",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
# The identity check answers before any endpoint does, for tus clients as well: in plain text,
# with the reason also in WWW-Authenticate (RFC 6750).
UNAUTHORIZED = {
    "description": "no valid bearer token",
    "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    "content": {"text/plain": {"schema": {"type": "string"}}},
}
TIME = {"type": ["string", "null"], "format": "date-time"}
TIME_PARAMETER = {"type": "string", "format": "date-time"}
LIMITS = {
    name: {"type": ["integer", "null"], "minimum": 0, "maximum": maximum}
    for name, maximum in quotas.MAXIMA.items()
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(
    summary: str,
    responses: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {**responses, "401": UNAUTHORIZED},
    }
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": body}}
    return operation


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "tusgate",
        "version": "1",
        "description": "Resumable uploads (tus 1.0 at /files/) and downloads by SHA-256.",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/me": {"get": _op("The caller, their limits and usage", {"200": _json(_ref("Me"))})},
        "/api/uploads/{upload_id}": {
            "get": _op(
                "An upload of the caller",
                {"200": _json(_ref("Upload")), "404": ERROR},
                [UPLOAD_ID],
            )
        },
        "/api/files": {
            "get": _op(
                "The caller's files, newest first",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"files": {"type": "array", "items": _ref("File")}},
                        }
                    )
                },
            )
        },
        "/api/files/{sha256}": {
            "delete": _op(
                "Stop owning a file; its bytes go with the last owner",
                {"204": {"description": "no longer owned"}, "404": ERROR},
                [SHA256],
            )
        },
        "/api/files/{sha256}/link": {
            "post": _op(
                "A signed download link",
                {"200": _json(_ref("Link")), "404": ERROR},
                [SHA256],
            )
        },
        "/api/files/{sha256}/hold": {
            "put": _op(
                "Put a file on legal hold (admins)",
                {"204": {"description": "held"}, "400": ERROR, "403": ERROR, "404": ERROR},
                [SHA256],
            ),
            "delete": _op(
                "Release a legal hold (admins)",
                {"204": {"description": "released"}, "400": ERROR, "403": ERROR, "404": ERROR},
                [SHA256],
            ),
        },
        "/api/files/availability": {
            "post": _op(
                "Which files can be downloaded now; optionally start their restores",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "files": {"type": "array", "items": _ref("Availability")}
                            },
                        }
                    ),
                    "400": ERROR,
                    "408": ERROR,
                    "413": ERROR,
                },
                body={
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["checksums"],
                        "properties": {
                            "checksums": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 100,
                                "items": SHA256["schema"],
                            },
                            "restore": {"type": "boolean", "default": False},
                        },
                    }
                },
            )
        },
        "/api/quotas/{user}": {
            "get": _op(
                "A user's limits and usage (admins)",
                {"200": _json(_ref("Quota")), "400": ERROR, "403": ERROR},
                [USER],
            ),
            "put": _op(
                "Override a user's limits; null returns one to the default (admins)",
                {
                    "200": _json(_ref("Quota")),
                    "400": ERROR,
                    "403": ERROR,
                    "408": ERROR,
                    "413": ERROR,
                },
                [USER],
                {
                    "schema": {
                        "type": "object",
                        "properties": LIMITS,
                        "minProperties": 1,
                        "additionalProperties": False,
                    }
                },
            ),
        },
        "/api/audit": {
            "get": _op(
                "The audit trail, newest first (admins)",
                {"200": _json({"type": "object"}), "400": ERROR, "403": ERROR},
                [
                    *({"name": name, "in": "query", "schema": TEXT} for name in audit.TEXTS),
                    *(
                        {"name": name, "in": "query", "schema": TIME_PARAMETER}
                        for name in ("since", "until")
                    ),
                    {
                        "name": "before",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                ],
            )
        },
        "/download/{sha256}": {
            "get": _op(
                "The file's bytes, whole or one range; a cold file is restored first",
                {
                    "200": {"description": "the file", "content": {"application/octet-stream": {}}},
                    "206": {"description": "one range of the file"},
                    "202": _json(
                        {
                            "type": "object",
                            "properties": {
                                "sha256": {"type": "string"},
                                "state": {"const": "restoring"},
                                "retry_after": {"type": "integer"},
                            },
                        },
                        "being restored: ask again after Retry-After",
                    ),
                    "304": {"description": "If-None-Match matched"},
                    "403": ERROR,
                    "404": ERROR,
                    "416": ERROR,
                    "429": ERROR,
                    "503": ERROR,
                },
                [
                    SHA256,
                    {
                        "name": "token",
                        "in": "query",
                        "required": False,
                        "description": "a signed link's token, instead of a bearer token",
                        "schema": {"type": "string"},
                    },
                ],
            ),
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
            "File": {
                "type": "object",
                "properties": {
                    "sha256": {"type": "string"},
                    "name": {"type": ["string", "null"]},
                    "size": {"type": "integer"},
                    "content_type": {"type": ["string", "null"]},
                    "created_at": TIME,
                    "expires_at": TIME,
                },
            },
            "Upload": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "state": {"type": "string"},
                    "offset": {"type": "integer"},
                    "length": {"type": ["integer", "null"]},
                    "writing": {"type": "boolean"},
                    "sha256": {"type": ["string", "null"]},
                },
            },
            "Link": {
                "type": "object",
                "properties": {"url": {"type": "string"}, "expires_at": TIME},
            },
            "Availability": {
                "type": "object",
                "properties": {
                    "sha256": {"type": "string"},
                    "available": {"type": "boolean"},
                    "state": {"enum": ["online", "cached", "restoring", "cold", "unavailable"]},
                    "expires_at": TIME,
                },
            },
            "Quota": {
                "type": "object",
                "properties": {
                    "limits": {"type": "object", "properties": LIMITS},
                    "overrides": {"type": "object", "properties": LIMITS},
                    "usage": {"type": "object", "additionalProperties": {"type": "integer"}},
                },
            },
            "Me": {
                "allOf": [
                    _ref("Quota"),
                    {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "name": {"type": "string"},
                            "roles": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                ]
            },
        },
    },
}


async def document(request: Request) -> Response:
    return json_response(DOCUMENT)


routes = [Route("/api/openapi.json", document, methods=["GET"])]
