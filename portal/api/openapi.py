"""The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`. A test compares it to the routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

routes = web.RouteTableDef()

_ERROR = {"$ref": "#/components/schemas/Error"}
_ACK = {"$ref": "#/components/schemas/Ack"}
_REF = {"name": "ref", "in": "path", "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, scope: str, ok: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, status: str = "201") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"apiKey": [scope]}],
        "responses": {status: {"description": "ok", "content": ok}, **_errors(400, 401, 403, 404, 408, 409, 413,
                                                                              415, 422, 429, 503)},
    }
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = params
    return op


EVENT = {"type": "object", "required": ["type", "envelope"],
         "properties": {"type": {"type": "string"}, "envelope": {"type": "string"}},
         "additionalProperties": True}
EVENTS = {"oneOf": [EVENT, {"type": "array", "items": EVENT, "minItems": 1}]}
ACKS = {"application/json": {"schema": {"type": "object", "properties": {"acks": {"type": "array", "items": _ACK}}}}}
ONE_ACK = {"application/json": {"schema": _ACK}}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Evidence ledger API", "version": "1",
             "description": "Post signing events; every write is acknowledged once durable."},
    "components": {
        "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                       "description": "`ledger keys create --tenant T --scopes append,read`"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
            "Ack": {"type": "object", "required": ["index", "leaf_hash", "checkpoint_size"], "properties": {
                "index": {"type": "integer"}, "leaf_hash": {"type": "string"}, "envelope": {"type": "string"},
                "env": {"type": "string"}, "seq": {"type": "integer"}, "type": {"type": "string"},
                "time": {"type": "string"}, "checkpoint_size": {"type": "integer"},
                "code": {"type": "string", "description": "copy.printed: the copy's QR code"},
                "qr_url": {"type": "string", "description": "POST .../copies: the URL the QR code holds"},
                "code_grouped": {"type": "string", "description": "POST .../copies: the code as printed"},
                "access_code": {"type": "string", "description": "document.added with download code: shown once"},
                "sha256": {"type": "string", "description": "POST .../documents: the upload's SHA-256"},
                "size": {"type": "integer", "description": "POST .../documents: the upload's size in bytes"}}},
        },
    },
    "paths": {
        "/api/v1/events": {"post": _op("Append events (one or many, atomic)", "append", ACKS,
                                       body=_json_body(EVENTS))},
        "/api/v1/envelopes": {"post": _op("Create an envelope", "append", ONE_ACK, body=_json_body({
            "type": "object", "required": ["envelope", "title"],
            "properties": {"envelope": {"type": "string"}, "title": {"type": "string"}}}))},
        "/api/v1/envelopes/{ref}": {"get": _op("Read an envelope's status", "read", {"application/json": {
            "schema": {"type": "object"}}}, params=[_REF], status="200")},
        "/api/v1/envelopes/{ref}/events": {"post": _op("Append events to one envelope", "append", ACKS,
                                                       body=_json_body(EVENTS), params=[_REF])},
        "/api/v1/envelopes/{ref}/parties": {"post": _op("Add a party", "append", ONE_ACK, params=[_REF],
                                                        body=_json_body({"type": "object"}))},
        "/api/v1/envelopes/{ref}/copies": {"post": _op("Issue the QR code of a printed copy", "append", ONE_ACK,
                                                       params=[_REF], body=_json_body({
                                                           "type": "object", "required": ["document"],
                                                           "properties": {"document": {"type": "string"}}}))},
        "/api/v1/envelopes/{ref}/documents": {"post": _op(
            "Upload a PDF document (streamed, size-limited)", "append", ONE_ACK,
            params=[_REF,
                    {"name": "document", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "name", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "download", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["public", "code", "none"]}}],
            body={"required": True, "content": {"application/pdf": {"schema": {"type": "string",
                                                                               "format": "binary"}}}})},
        "/api/v1/entries/{index}/proof": {"get": _op(
            "A C2SP tlog-proof of one of your entries", "read",
            {"text/plain": {"schema": {"type": "string"}}}, status="200",
            params=[{"name": "index", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}])},
        "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                         "responses": {"200": {"description": "ok"}}}},
    },
}


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
