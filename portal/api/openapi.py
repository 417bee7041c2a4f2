"""The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`.

Every request and answer body has a schema: the event schemas are made from the ledger's own event
table (`ledger.envelopes.events.SCHEMA`), so the document cannot drift from what the server accepts.
Tests compare the paths with the routes and validate real answers against the schemas.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ledger.envelopes.events import INTERNAL, SCHEMA
from ledger.envelopes.queries import PAGE_MAX
from verifier.lifecycle import STATUSES

routes = web.RouteTableDef()

REF_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
TIME = {"type": "string", "description": "RFC 3339 UTC, milliseconds (2026-12-01T08:00:00.000Z)"}
_ERROR = {"$ref": "#/components/schemas/Error"}
_REF = {"name": "ref", "in": "path", "required": True, "schema": {"type": "string", "pattern": REF_PATTERN},
        "description": "your reference of the envelope"}
_INDEX = {"name": "index", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
_CURSOR = {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
           "description": "`next_cursor` of the previous page"}
_LIMIT = {"name": "limit", "in": "query", "required": False,
          "schema": {"type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": 100}}
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
               "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
               "description": "a retry with the same key (and the same request) gets the first answer, and "
                              "appends nothing; kept for `idempotency_hours` per API key"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


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
    params = list(params or [])
    if status == "201":
        params.append(IDEMPOTENCY)
    if params:
        op["parameters"] = params
    return op


def _field(kind: Any) -> dict[str, Any]:
    """The JSON schema of one field kind of the ledger's event table."""
    if isinstance(kind, tuple):
        return {"type": "string", "enum": list(kind)}
    if kind == "ref":
        return {"type": "string", "pattern": REF_PATTERN}
    if kind == "hex":
        return {"type": "string", "pattern": "^[0-9A-Fa-f]{64}$"}
    name, *args = kind.split(":")
    if name == "text":
        return {"type": "string", "minLength": 1, "maxLength": int(args[0])}
    assert name == "int", kind
    return {"type": "integer", "minimum": int(args[0]), "maximum": int(args[1])}


def _event(type: str, *, envelope: bool, with_type: bool = True) -> dict[str, Any]:
    spec = SCHEMA[type]
    props: dict[str, Any] = {"envelope": {"type": "string", "pattern": REF_PATTERN}}
    if with_type:
        props["type"] = {"const": type}
    props.update({name: _field(kind) for name, (kind, _) in spec.items()})
    required = (["type"] if with_type else []) + (["envelope"] if envelope else [])
    required += [name for name, (_, req) in spec.items() if req]
    return {"type": "object", "required": required, "properties": props, "additionalProperties": False}


def _events(envelope: bool) -> dict[str, Any]:
    one = {"oneOf": [_event(t, envelope=envelope) for t in SCHEMA if t not in INTERNAL]}
    return {"oneOf": [one, {"type": "array", "items": one, "minItems": 1}]}


def _page(name: str, item: str) -> dict[str, Any]:
    return {"type": "object", "required": [name, "next_cursor"], "additionalProperties": False,
            "properties": {name: {"type": "array", "items": _ref(item)}, "envelope": {"type": "string"},
                           "next_cursor": {"type": ["string", "null"],
                                           "description": "pass as ?cursor= for the next page; null: no more"}}}


ACK = {"type": "object", "required": ["index", "leaf_hash", "checkpoint_size", "envelope", "env", "seq", "type",
                                      "time"],
       "additionalProperties": False, "properties": {
           "index": {"type": "integer"}, "leaf_hash": HEX64, "envelope": {"type": "string"},
           "env": {"type": "string"}, "seq": {"type": "integer"}, "type": {"type": "string", "enum": list(SCHEMA)},
           "time": TIME, "checkpoint_size": {"type": "integer"},
           "code": {"type": "string", "description": "copy.printed: the copy's QR code"},
           "qr_url": {"type": "string", "description": "POST .../copies: the URL the QR code holds"},
           "code_grouped": {"type": "string", "description": "POST .../copies: the code as printed"},
           "copy": {"type": "integer", "description": "POST .../copies: the copy's number (1 for the first)"},
           "qr_svg": {"type": "string", "description": "POST .../copies: the QR code as SVG, to print"},
           "access_code": {"type": "string", "description": "document.added with download code: shown once"},
           "sha256": {"type": "string", "description": "POST .../documents: the upload's SHA-256"},
           "size": {"type": "integer", "description": "POST .../documents: the upload's size in bytes"},
           "document": {"type": "string", "description": "POST .../scans: your reference of its document"}}}
ENVELOPE_SUMMARY: dict[str, Any] = {"type": "object", "additionalProperties": False,
                    "required": ["envelope", "env", "status", "events", "first_index", "last_index", "created",
                                 "updated"],
                    "properties": {"envelope": {"type": "string"}, "env": {"type": "string"},
                                   "status": {"type": "string", "enum": list(STATUSES)},
                                   "events": {"type": "integer"}, "first_index": {"type": "integer"},
                                   "last_index": {"type": "integer"}, "created": TIME, "updated": TIME}}
STATE = {"type": "object", "required": ["status", "parties", "documents", "copies", "void_requested", "events",
                                        "times"],
         "properties": {
             "status": {"type": "string", "enum": list(STATUSES)},
             "parties": {"type": "array", "description": "[role, order, authenticated, signed, declined, consented]",
                         "items": {"type": "array", "prefixItems": [
                             {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "boolean"},
                             {"type": "boolean"}, {"type": "boolean"}], "minItems": 6, "maxItems": 6}},
             "documents": {"type": "array", "items": HEX64},
             "copies": {"type": "array", "items": {"type": "integer"}},
             "void_requested": {"type": "boolean"}, "events": {"type": "integer"},
             "times": {"type": "object", "additionalProperties": TIME}}}
ENVELOPE: dict[str, Any] = {**ENVELOPE_SUMMARY, "required": [*ENVELOPE_SUMMARY["required"], "state"],
                            "properties": {**ENVELOPE_SUMMARY["properties"], "state": STATE}}
EVENT_OUT = {"type": "object", "additionalProperties": False,
             "required": ["index", "leaf_hash", "seq", "type", "time", "data", "refs"],
             "properties": {"index": {"type": "integer"}, "leaf_hash": HEX64, "seq": {"type": "integer"},
                            "type": {"type": "string", "enum": list(SCHEMA)}, "time": TIME,
                            "data": {"type": "object", "description": "the entry's data as the log holds it: "
                                     "ordinals, hashes and salted commitments"},
                            "refs": {"type": "object", "additionalProperties": False,
                                     "properties": {"party": {"type": "string"}, "document": {"type": "string"}},
                                     "description": "your references of the party and document it names"}}}
SIGNED_VERSION = {"type": "object", "additionalProperties": False, "required": ["party", "sha256", "index", "time"],
                  "properties": {"party": {"type": ["string", "null"]}, "sha256": HEX64,
                                 "index": {"type": "integer"}, "time": TIME}}
SEALED_VERSION = {"type": "object", "additionalProperties": False,
                  "required": ["sha256", "certificate", "index", "time"],
                  "properties": {"sha256": HEX64, "certificate": HEX64, "index": {"type": "integer"}, "time": TIME}}
DOCUMENT_OUT = {"type": "object", "additionalProperties": False,
                "required": ["document", "ordinal", "sha256", "size", "name", "download", "index", "copies",
                             "signed_versions", "sealed_versions"],
                "properties": {"document": {"type": ["string", "null"]}, "ordinal": {"type": "integer"},
                               "sha256": HEX64, "size": {"type": "integer"}, "name": {"type": ["string", "null"]},
                               "download": {"type": "string", "enum": ["public", "code", "none"]},
                               "index": {"type": "integer"}, "copies": {"type": "integer"},
                               "signed_versions": {"type": "array", "items": SIGNED_VERSION},
                               "sealed_versions": {"type": "array", "items": SEALED_VERSION}}}
PARTY_OUT = {"type": "object", "additionalProperties": False,
             "required": ["party", "ordinal", "role", "order", "kind", "name", "contact", "authenticated", "signed",
                          "declined", "consented_to_void", "index"],
             "properties": {"party": {"type": ["string", "null"]}, "ordinal": {"type": "integer"},
                            "role": {"type": "string"}, "order": {"type": "integer"}, "kind": {"type": "string"},
                            "name": {"type": ["string", "null"]}, "contact": {"type": ["string", "null"]},
                            "authenticated": {"type": "boolean"}, "signed": {"type": "boolean"},
                            "declined": {"type": "boolean"}, "consented_to_void": {"type": "boolean"},
                            "index": {"type": "integer"}}}
ANCHORED = {"type": "object", "additionalProperties": False,
            "required": ["format", "index", "entry", "tlog_proof", "anchors"],
            "properties": {"format": {"const": "evidence-ledger/anchored-proof@v1"}, "index": {"type": "integer"},
                           "entry": {"type": "string", "contentEncoding": "base64"},
                           "tlog_proof": {"type": "string"},
                           "anchors": {"type": "array", "items": {
                               "type": "object", "additionalProperties": False,
                               "required": ["id", "tsa", "renews", "gen_time", "serial", "token"],
                               "properties": {"id": {"type": "integer"}, "tsa": {"type": "string"},
                                              "renews": {"type": ["integer", "null"]}, "gen_time": TIME,
                                              "serial": {"type": "string"},
                                              "token": {"type": "string", "contentEncoding": "base64"}}}}}}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {"error": {
        "type": "object", "required": ["code", "message"], "additionalProperties": False,
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
    "Ack": ACK,
    "Acks": {"type": "object", "required": ["acks"], "additionalProperties": False,
             "properties": {"acks": {"type": "array", "items": _ref("Ack"), "minItems": 1}}},
    "Envelope": ENVELOPE,
    "EnvelopeSummary": ENVELOPE_SUMMARY,
    "EnvelopePage": _page("envelopes", "EnvelopeSummary"),
    "Event": EVENT_OUT,
    "EventPage": {**_page("events", "Event"), "required": ["envelope", "events", "next_cursor"]},
    "Document": DOCUMENT_OUT,
    "Documents": {"type": "object", "additionalProperties": False, "required": ["envelope", "documents"],
                  "properties": {"envelope": {"type": "string"},
                                 "documents": {"type": "array", "items": _ref("Document")}}},
    "Party": PARTY_OUT,
    "Parties": {"type": "object", "additionalProperties": False, "required": ["envelope", "parties"],
                "properties": {"envelope": {"type": "string"}, "parties": {"type": "array", "items": _ref("Party")}}},
    "EntryWithProof": {"type": "object", "additionalProperties": False, "required": ["index", "entry", "proof"],
                       "properties": {"index": {"type": "integer"},
                                      "entry": {"type": "string", "contentEncoding": "base64"},
                                      "proof": {"type": "string", "description": "C2SP tlog-proof@v1"}}},
    "AnchoredProof": ANCHORED,
    "Seals": {"type": "object", "additionalProperties": False, "required": ["seals"], "properties": {"seals": {
        "type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["fingerprint", "kind", "name", "image_sha256", "parties", "roles", "registered", "retired",
                         "uses"],
            "properties": {
                "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                                "description": "SHA-256 of the certificate (DER) or of the impression's scan: the "
                                               "`seal` of seal.used"},
                "kind": {"enum": ["electronic", "physical"]}, "name": {"type": "string"},
                "image_sha256": {"type": ["string", "null"]},
                "parties": {"type": "array", "items": {"type": "string"}},
                "roles": {"type": "array", "items": {"type": "string"}},
                "registered": {"type": "string"}, "retired": {"type": ["string", "null"]},
                "certificate": {"type": "object", "additionalProperties": False,
                                "required": ["subject", "issuer", "serial", "not_after"],
                                "properties": {k: {"type": "string"} for k in ("subject", "issuer", "serial",
                                                                                "not_after")}},
                "uses": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False, "required": ["envelope", "party", "index", "time"],
                    "properties": {"envelope": {"type": "string"}, "party": {"type": ["string", "null"]},
                                   "index": {"type": "integer"}, "time": {"type": "string"}}}}}}}}},
}

ACKS = {"application/json": {"schema": _ref("Acks")}}


def _ok(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Evidence ledger API", "version": "1",
             "description": "Post signing events; every write is acknowledged once durable, as {\"acks\": [...]}."},
    "components": {
        "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                       "description": "`ledger keys create --tenant T --scopes append,read`"}},
        "schemas": SCHEMAS,
    },
    "paths": {
        "/api/v1/events": {"post": _op("Append events (one or many, atomic)", "append", ACKS,
                                       body=_json_body(_events(envelope=True)))},
        "/api/v1/envelopes": {
            "post": _op("Create an envelope", "append", ACKS, body=_json_body(
                _event("envelope.created", envelope=True, with_type=False))),
            "get": _op("List your envelopes, oldest first", "read", _ok("EnvelopePage"), status="200", params=[
                {"name": "status", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": f"comma-separated, some of {', '.join(STATUSES)}"},
                {"name": "created_after", "in": "query", "required": False,
                 "schema": {"type": "string", "format": "date-time"}, "description": "created at or after (RFC 3339)"},
                {"name": "created_before", "in": "query", "required": False,
                 "schema": {"type": "string", "format": "date-time"}, "description": "created before (RFC 3339)"},
                _CURSOR, _LIMIT])},
        "/api/v1/seals": {"get": _op("Your registered seals (`ledger seals add`) and their uses, newest first",
                                     "read", _ok("Seals"), status="200", params=[_LIMIT])},
        "/api/v1/envelopes/{ref}": {"get": _op("Read an envelope's status", "read", _ok("Envelope"), params=[_REF],
                                               status="200")},
        "/api/v1/envelopes/{ref}/events": {
            "post": _op("Append events to one envelope (`envelope` may be left out)", "append", ACKS,
                        body=_json_body(_events(envelope=False)), params=[_REF]),
            "get": _op("The envelope's timeline, with each event's log index and leaf hash", "read", _ok("EventPage"),
                       params=[_REF, _CURSOR, _LIMIT], status="200")},
        "/api/v1/envelopes/{ref}/parties": {
            "post": _op("Add a party", "append", ACKS, params=[_REF],
                        body=_json_body(_event("party.added", envelope=False, with_type=False))),
            "get": _op("The envelope's parties, by your references", "read", _ok("Parties"), params=[_REF],
                       status="200")},
        "/api/v1/envelopes/{ref}/copies": {"post": _op(
            "Issue a printed copy: its QR code (JSON), or with Accept: application/pdf the print-ready PDF of the "
            "document's latest version with the copy's QR code, code and number stamped (an incremental update)",
            "append", {**ACKS, "application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            params=[_REF], body=_json_body(_event("copy.printed", envelope=False, with_type=False)))},
        "/api/v1/envelopes/{ref}/documents": {
            "post": _op(
                "Upload a PDF document (streamed, size-limited)", "append", ACKS,
                params=[_REF,
                        {"name": "document", "in": "query", "required": True,
                         "schema": {"type": "string", "pattern": REF_PATTERN}},
                        {"name": "name", "in": "query", "required": True,
                         "schema": {"type": "string", "minLength": 1, "maxLength": 255}},
                        {"name": "download", "in": "query", "required": False,
                         "schema": {"type": "string", "enum": ["public", "code", "none"]}}],
                body={"required": True, "content": {"application/pdf": {"schema": {"type": "string",
                                                                                   "format": "binary"}}}}),
            "get": _op("The envelope's documents, by your references, with their signed versions", "read",
                       _ok("Documents"), params=[_REF], status="200")},
        "/api/v1/envelopes/{ref}/scans": {"post": _op(
            "Register a scan of a printed copy signed or sealed by hand (PDF, JPEG or PNG; streamed, "
            "size-limited): the QR code on it names the copy", "append", ACKS, params=[_REF],
            body={"required": True, "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                                for t in ("application/pdf", "image/jpeg", "image/png")}})},
        "/api/v1/envelopes/{ref}/documents/{document}/seal": {"post": _op(
            "Seal the document's latest version with the platform's e-seal (PAdES B-LT) and register it as a "
            "version (document.sealed)", "append", ACKS,
            params=[_REF, {"name": "document", "in": "path", "required": True,
                           "schema": {"type": "string", "pattern": REF_PATTERN}}])},
        "/api/v1/envelopes/{ref}/evidence": {"get": _op(
            "The envelope's court-ready evidence bundle (zip, streamed): entries, openings, tlog-proofs, checkpoints, "
            "RFC 3161 anchors, certificates, documents, the sealed report and VERIFY.md; records evidence.exported. "
            "`verifier verify BUNDLE.zip` checks it offline", "export",
            {"application/zip": {"schema": {"type": "string", "format": "binary"}}}, status="200",
            params=[_REF, {"name": "lang", "in": "query", "required": False,
                           "schema": {"type": "string", "enum": ["zh-CN", "en"], "default": "zh-CN"},
                           "description": "the report's language"}])},
        "/api/v1/entries/{index}/proof": {"get": _op(
            "A C2SP tlog-proof of one of your entries (text); with ?entry=1, JSON with the entry's bytes", "read",
            {"text/plain": {"schema": {"type": "string"}}, "application/json": {"schema": _ref("EntryWithProof")}},
            status="200",
            params=[_INDEX, {"name": "entry", "in": "query", "required": False,
                             "schema": {"type": "string", "enum": ["0", "1", "true", "false"]}}])},
        "/api/v1/entries/{index}/anchored": {"get": _op(
            "One of your entries' trusted time: an anchored proof (RFC 3161 tokens of a checkpoint holding it)",
            "read", _ok("AnchoredProof"), status="200",
            params=[_INDEX, {"name": "tsa", "in": "query", "required": False, "schema": {"type": "string"},
                             "description": "anchored by this TSA"}])},
        "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                         "responses": {"200": {"description": "ok"}}}},
    },
}


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
