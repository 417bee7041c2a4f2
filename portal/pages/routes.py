"""Public pages: the code form, one printed copy (`/v/{code}`), its JSON, and document download.

Server-rendered with jinja2 (autoescaped) and usable without JavaScript; the scripts in static/ add
hashing of local files and the in-browser proof check. Lookups are rate-limited per client IP.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from ledger.anchoring.tsa import ROOT_CERT_FILE as TSA_ROOT_FILE
from ledger.documents import qr
from ledger.documents.sealca import ROOT_CERT_FILE as SEAL_ROOT_FILE
from ledger.envelopes import printing
from ledger.envelopes.core import TSA_DIR, Ledger
from ledger.envelopes.public import copy_version, copy_view
from ledger.errors import LedgerError, RefusedError, StorageError
from portal import body as request_body
from portal.keys import HEAD, HEADS, LEDGER, LOOKUP_LIMIT, PAGES, PDF_CHECKER, TEMPLATES
from portal.pages import i18n, texts
from verifier.documents.pdfsig import PdfReport
from verifier.lifecycle import CLOSED

routes = web.RouteTableDef()


STATIC = Path(__file__).parent / "static"


def _versions() -> dict[str, str]:
    """Each script's, style sheet's and icon's address with its content's hash: a page, its check and the
    check's words change together, so a browser must never pair a new page with a cached old script."""
    out = {f"/static/{f.name}": hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in sorted(STATIC.iterdir())
           if f.suffix in (".js", ".css", ".svg", ".ico")}
    out |= {f"/texts/{lang}.js": hashlib.sha256(body).hexdigest()[:16] for lang, body in texts.SCRIPTS.items()}
    return {path: f"{path}?v={digest}" for path, digest in out.items()}


ASSETS = _versions()


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("portal.pages", "templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True))
    env.globals["asset"] = ASSETS.__getitem__
    return env


def render(request: web.Request, name: str, status: int = 200, switch_to: str = "", **ctx: Any) -> web.Response:
    """A page in the reader's language, whose language switch opens `switch_to` (by default this
    page; nothing of the query is kept: copy pages are cached whatever query they were asked with,
    and the lookup page is made only for text that is no code)."""
    lang = i18n.choose(request)
    other = "en" if lang == "zh-CN" else "zh-CN"
    led = request.app[LEDGER]
    html = request.app[TEMPLATES].get_template(name).render(
        lang=lang, other_lang=other, switch=f"{switch_to}?lang={other}", t=i18n.TEXT[lang],
        events=i18n.EVENTS[lang], details=i18n.DETAILS[lang], when=lambda iso: i18n.time_html(iso, lang),
        domain=led.config.public_host, origin=led.config.origin, **ctx)
    return _html(request, lang, html.encode(), status)


_COPY_PATH = re.compile(r"/v/([^/.]+)(?:/document)?")
_PASTED_URL = re.compile(r"^\s*https?://[^/\s]+(?:/[^?#\s]*)?/v/([^/?#\s]+)", re.IGNORECASE)


def a_page(request: web.Request) -> bool:
    """Is this one of the pages a person opens (a copy's page, its download form, the lookup), rather
    than the API, a JSON view or the log's files?"""
    return request.path in ("/lookup", SIGNATURE_CHECK) or _COPY_PATH.fullmatch(request.path) is not None


def wants_html(request: web.Request) -> bool:
    """Does the client accept HTML (a browser), by its Accept header (a q of 0 refuses it)?"""
    for part in request.headers.get("Accept", "").split(","):
        media, *params = part.split(";")
        if media.strip().lower() in ("text/html", "application/xhtml+xml"):
            q = next((p.split("=", 1)[1].strip() for p in params if p.strip().lower().startswith("q=")), "1")
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def error_page(request: web.Request, status: int, code: str) -> web.Response:
    """A failure as a page in the reader's language: what went wrong in its words (never the server's
    message, which may quote what was sent), and the way back."""
    t = i18n.TEXT[i18n.choose(request)]
    message = t.get("error_" + code) or t["error_other"].format(status=status)
    m = _COPY_PATH.fullmatch(request.path)
    code_ = qr.normalise(m.group(1)) if m else None
    back = f"/v/{code_}" if code_ else "/"
    return render(request, "error.html", status=status, message=message, code=code, back=back, switch_to=back)


def _html(request: web.Request, lang: str, body: bytes, status: int = 200) -> web.Response:
    """An HTML page in `lang`, remembering an explicit `?lang=` choice in a cookie."""
    resp = web.Response(body=body, content_type="text/html", charset="utf-8", status=status)
    resp.headers["Content-Language"] = lang
    resp.headers["Vary"] = "Accept-Language, Cookie"
    if request.query.get("lang") in i18n.LANGS:
        resp.set_cookie("lang", lang, max_age=365 * 86400, samesite="Lax", httponly=True)
    return resp


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return render(request, "index.html")


FAVICON_CACHE = "public, max-age=86400"  # a fixed address (not named by its content): kept a day


@routes.get("/favicon.ico")
async def favicon(request: web.Request) -> web.FileResponse:
    """The icon, where a browser looks for it unasked (a JSON view, the log's files: no page links it)."""
    return web.FileResponse(STATIC / "favicon.ico", headers={"Cache-Control": FAVICON_CACHE})


def _unknown(request: web.Request, code: str | None) -> web.Response:
    """UNKNOWN CODE, with the code looked up, when it is one (to compare with the paper); text that
    is no code is not shown back."""
    return render(request, "unknown.html", status=404, looked_up=qr.grouped(code) if code else None)


@routes.get("/lookup")
async def lookup(request: web.Request) -> web.StreamResponse:
    request.app[LOOKUP_LIMIT].check(request)
    typed = request.query.get("code", "")
    pasted = _PASTED_URL.search(typed)  # a QR code's whole address, pasted into the form
    code = qr.normalise(pasted.group(1) if pasted else typed)
    if code is None:
        return _unknown(request, None)
    raise web.HTTPSeeOther(f"/v/{code}")


async def _view(request: web.Request) -> dict[str, Any] | None:
    request.app[LOOKUP_LIMIT].check(request)
    led = request.app[LEDGER]
    code = qr.normalise(request.match_info["code"])
    if code is None or await _version(led, code) is None:
        return None
    return await asyncio.to_thread(copy_view, led, code)


@routes.get(r"/v/{code:[^/.]+}")
async def copy_page(request: web.Request) -> web.Response:
    request.app[LOOKUP_LIMIT].check(request)
    led = request.app[LEDGER]
    code = qr.normalise(request.match_info["code"])
    if code is not None and code != request.match_info["code"]:
        raise web.HTTPMovedPermanently(f"/v/{code}")
    version = await _version(led, code) if code is not None else None
    if version is None or code is None:
        return _unknown(request, code)
    lang = i18n.choose(request)
    key = (code, lang)
    cache = request.app[PAGES]
    body = cache.get(key, version)
    if body is None:
        version, v = await asyncio.to_thread(_versioned_view, led, code)
        if v is None or version is None:
            return _unknown(request, code)
        resp = render(request, "copy.html", v=v, closed=CLOSED)
        assert resp.body is not None
        cache.put(key, version, bytes(resp.body))  # type: ignore[arg-type]
        return resp
    return _html(request, lang, body)


def _versioned_view(led: Ledger, code: str) -> tuple[tuple[int, int, int, int] | None, dict[str, Any] | None]:
    """A copy's page and the version it is kept under, read as of one checkpoint (a page read from a
    replica is kept under the replica's version, never under a newer one it does not show)."""
    with led.log.reading():
        return copy_version(led, code), copy_view(led, code, proofs=False)


HEAD_CACHE_S = 30.0  # a served envelope head is at most this old (browsers accept HEAD_MAX_AGE)
HEAD_TRIES = 3  # views built for one JSON answer when the envelope keeps growing past this process's tree


CATCH_UP_WAIT_S = 2.0  # a page waits this long for its writer to take in another process's tree


async def _catch_up(led: Ledger) -> None:
    """This process's tree is older than the log: move it to the latest published tree.

    A writer takes the tree in with a write transaction, which waits while another process writes
    (a long `ledger import`): a page waits for it at most CATCH_UP_WAIT_S, then is made from the
    tree it has (the catch-up goes on, and the `following` loop would do it anyway)."""
    if led.writer:  # another process (`ledger append`) wrote: take its tree in now
        try:
            await asyncio.wait_for(asyncio.shield(led.acatch_up()), CATCH_UP_WAIT_S)
        except TimeoutError:
            pass
    else:  # a worker: read the writer's latest checkpoint from the database
        led.log.refresh()


async def _version(led: Ledger, code: str) -> tuple[int, int, int, int] | None:
    """`copy_version`, after taking in the tree that holds the copy's events if this process's is older
    (a copy printed a moment ago, or by a CLI process beside the server)."""
    version = await asyncio.to_thread(copy_version, led, code)  # a thread: it may measure the replica's lag
    if version is not None and version[0] >= version[3]:
        await _catch_up(led)
        version = await asyncio.to_thread(copy_version, led, code)
    return version


async def _head(request: web.Request, env: str, size: int) -> str | None:
    """The log's signed statement that the envelope's last event in the tree of `size` was its last
    in the whole log, signed at most HEAD_CACHE_S ago (signing is the writer's: the statement is
    shared between requests).

    None when the envelope has events after `size`: this process's tree is older than the log. It is
    brought up to date here; build the view again at the new size and ask again. The writer refuses
    to sign for such a tree ("stale_size"); a statement from the cache, signed when there was no
    such event, is served only while this process's database still holds none (one primary-key
    lookup), so the cache never vouches for a view its own process knows to be behind. A refusal is
    never cached.
    """
    led = request.app[LEDGER]
    heads = request.app[HEADS]
    note = heads.get((env, size), HEAD_CACHE_S)
    if note is not None:
        row = led.log._reader().execute("SELECT last_index FROM envelopes WHERE env = ?", (env,)).fetchone()
        if row is None or row[0] < size:
            return note
    else:
        try:
            note = await request.app[HEAD](env, size)
        except RefusedError as e:
            if e.code != "stale_size":
                raise
        else:
            heads.put((env, size), note)
            return note
    await _catch_up(led)
    return None


def _one_tree(led: Ledger, v: dict[str, Any]) -> None:
    """The view's checkpoint is of the tree its proofs are for (the tree may move on while the view
    is built: copy_view reads the size first and the checkpoint last)."""
    log = v["log"]
    if log["checkpoint"].split("\n", 2)[1:2] != [str(log["size"])]:
        log["checkpoint"] = led.log.checkpoint_at(log["size"])


@routes.get(r"/v/{code:[^/.]+}.json")
async def copy_json(request: web.Request) -> web.Response:
    """A copy's facts with the checkpoint, the inclusion proofs and the envelope head, all about one
    tree, which holds every event of the envelope the log had when the head was signed."""
    request.app[LOOKUP_LIMIT].check(request)  # once, however many views the answer takes
    led = request.app[LEDGER]
    code = qr.normalise(request.match_info["code"])
    if code is not None:
        await _version(led, code)
    newer = 0  # after a refusal as stale: a view of a newer tree (the primary's, if the replica has none)
    for _ in range(HEAD_TRIES):
        v = await asyncio.to_thread(copy_view, led, request.match_info["code"], min_size=newer)
        if v is None:
            return web.json_response({"error": {"code": "unknown_code", "message": "no contract has this code"}},
                                     status=404)
        _one_tree(led, v)
        head = await _head(request, v["env"], v["log"]["size"])
        if head is not None:
            v["log"]["head"] = head
            return web.json_response(v, headers={"Cache-Control": "no-store"})
        newer = v["log"]["size"] + 1
    return web.json_response(
        {"error": {"code": "stale_size", "message": "the envelope's events kept changing while this answer was "
                   "made; try again"}}, status=503, headers={"Cache-Control": "no-store", "Retry-After": "1"})


@routes.get(r"/v/{code:[^/.]+}/document")
async def download(request: web.Request) -> web.StreamResponse:
    v = await _view(request)
    if v is None or v["document"].get("download") != "public":
        raise web.HTTPNotFound(text="this document is not available for download")
    return await _send_document(request, v, "private, max-age=300")


async def _send_document(request: web.Request, v: dict[str, Any], cache_control: str) -> web.StreamResponse:
    """The document a copy's page offers: the registered original as it is, or, for a void contract or a
    tenant that watermarks its downloads, with those marks added as an incremental update."""
    led, document = request.app[LEDGER], v["document"]
    headers = {"Content-Type": "application/pdf", "Cache-Control": cache_control,
               "Content-Disposition": attachment(document.get("name") or "")}
    tenant = await asyncio.to_thread(printing.tenant_of, led, v["env"])
    p = led.config.printing_for(tenant)
    if v["status"] == "voided" or (p.watermark and p.watermark_downloads):
        body = await asyncio.to_thread(printing.downloaded_copy, led, tenant, v)
        return web.Response(body=body, headers=headers)
    return web.FileResponse(led.blobs.open(document["sha256"]), headers=headers)


def attachment(name: str) -> str:
    """Content-Disposition for the document under its registered name (RFC 6266: an ASCII fallback,
    and the name itself as RFC 8187 UTF-8), ending in .pdf; "document.pdf" when it has none."""
    name = "".join(c for c in name if c.isprintable() and c not in '/\\"').strip().strip(".") or "document"
    if not name.lower().endswith(".pdf"):
        name += ".pdf"
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "-_. ") else "_" for c in name)
    return f'attachment; filename="{fallback}"; filename*=UTF-8\'\'{quote(name, safe="")}'


@routes.post(r"/v/{code:[^/.]+}/document")
async def download_with_code(request: web.Request) -> web.StreamResponse:
    """Download with the access code printed or sent with the document (policy "code"); rate-limited."""
    v = await _view(request)
    if v is None or v["document"].get("download") != "code":
        raise web.HTTPNotFound(text="this document is not available with an access code")
    try:
        async with asyncio.timeout(request_body.IDLE_S):  # a small form: all of it within the idle time
            form = await request.post()
    except TimeoutError:
        raise RefusedError(f"the form did not come within {request_body.IDLE_S:g} s", code="request_timeout",
                           status=408) from None
    except web.HTTPException:
        raise
    except Exception:  # noqa: BLE001  # a malformed form (boundary, charset, truncated part) is the client's
        raise web.HTTPBadRequest(text="send the access code as a form field access_code") from None
    given = str(form.get("access_code", ""))[:64]
    led = request.app[LEDGER]
    if not await asyncio.to_thread(led.check_access_code, v["env"], v["document_no"], given):
        raise web.HTTPForbidden(text="the access code is wrong")
    return await _send_document(request, v, "private, no-store")


@routes.get(r"/d/{sha256:[0-9a-f]{64}}")
async def document_known(request: web.Request) -> web.Response:
    """Is a document with this SHA-256 registered? The caller hashed a file it holds."""
    request.app[LOOKUP_LIMIT].check(request)
    led = request.app[LEDGER]
    sha = request.match_info["sha256"]
    versions = await asyncio.to_thread(registered_versions, led, sha)
    return web.json_response({"sha256": sha, "registered": bool(versions), "versions": versions})


def registered_versions(led: Ledger, sha: str, limit: int = 10) -> list[dict[str, Any]]:
    """Which registered versions of documents have this SHA-256: the original of a document, a party's
    signed PDF, a scan of a paper copy (ordinals only: nothing names an envelope or a person)."""
    r = led.log._reader()
    out: list[dict[str, Any]] = [{"kind": "original", "document": int(n)} for (n,) in r.execute(
        "SELECT document FROM documents WHERE sha256 = ? ORDER BY idx LIMIT ?", (sha, limit))]
    for document, kind, party, copy in r.execute(
            "SELECT document, kind, party, copy FROM versions WHERE sha256 = ? ORDER BY idx LIMIT ?", (sha, limit)):
        out.append({"kind": kind, "document": int(document),
                    **({"party": int(party)} if party is not None else {}),
                    **({"copy": int(copy)} if copy is not None else {})})
    return out[:limit]


SIGNATURE_CHECK = "/check/signatures"
SEAL_DIR = "seal"  # the ledger's seal CA (`ledger.documents.sealca`), if it has one
PDF_HEADER = b"%PDF-"
HEADER_WINDOW = 1024  # where a reader accepts the header (as `verifier.documents.pdfsig` does)


@routes.post(SIGNATURE_CHECK)
async def check_signatures(request: web.Request) -> web.Response:
    """Check the signatures of a PDF the reader sent on purpose: in the checker process, against the
    roots this ledger trusts, at the server's time. The file is held in a temporary file for the check
    only, and removed at once, whatever the outcome."""
    request.app[LOOKUP_LIMIT].check(request)
    led = request.app[LEDGER]
    roots, tsa_roots = await asyncio.to_thread(trust_roots, led)
    at = led.clock()
    up = led.blobs.upload()  # a temporary file in the blob store's folder, size-limited; never finished
    try:
        await _receive_pdf(request, up)
        await asyncio.to_thread(up.flush)
        report = await request.app[PDF_CHECKER].signatures(Path(up.tmp), roots, at, tsa_roots)
    finally:
        up.abort()
    answer = {"at": _utc(at.isoformat()), **await asyncio.to_thread(_signature_answer, led, report)}
    if wants_html(request):
        resp = render(request, "signatures.html", r=answer, utc=_utc)
        resp.headers["Vary"] = "Accept, Accept-Language, Cookie"
    else:
        resp = web.json_response(answer)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def trust_roots(led: Ledger) -> tuple[list[bytes], list[bytes]]:
    """The roots (DER) the signature check trusts: for signers, the seal CA's root (if the ledger has
    one), the configured `signature_roots` and the `[seal]` table's roots; for time-stamps, the local TSA's root, the `[[tsa]]`
    roots and the configured ones. Nothing is fetched.

    Raises:
        StorageError: a configured or local root cannot be read or is no certificate (503: the server's).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    def certs(path: Path) -> list[bytes]:
        try:
            return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(path.read_bytes())]
        except (OSError, ValueError) as e:
            raise StorageError(f"the signature check cannot read its trust root {path} ({e}); fix "
                               "signature_roots in config.toml") from None

    def under_home(name: str) -> Path:
        return Path(name) if Path(name).is_absolute() else led.home / name

    configured = [c for name in (*led.config.signature_roots, *led.config.seal.roots) for c in certs(under_home(name))]
    seal_root = led.home / SEAL_DIR / SEAL_ROOT_FILE
    signers = (certs(seal_root) if seal_root.exists() else []) + configured
    tsa_root = led.home / TSA_DIR / TSA_ROOT_FILE
    tsas = (certs(tsa_root) if tsa_root.exists() else [])
    tsas += [c for t in led.config.tsa for name in t.roots for c in certs(under_home(name))] + configured
    return signers, tsas


async def _receive_pdf(request: web.Request, up: Any) -> None:
    """Write the PDF into `up`: the body itself (application/pdf), or a form's one file field `pdf` (a
    browser without JavaScript). 413 past the document size limit, 422 for what is no PDF."""
    head = b""
    if request.content_type == "application/pdf":
        if request.content_length is not None and request.content_length > up.store.max_size:
            raise RefusedError(f"a PDF to check is at most {up.store.max_size} bytes", code="too_large", status=413)
        async for chunk in request_body.chunks(request):
            head += chunk[: HEADER_WINDOW - len(head)]
            up.write(chunk)
    elif request.content_type == "multipart/form-data":
        try:
            async for chunk in _form_file(request):
                head += chunk[: HEADER_WINDOW - len(head)]
                up.write(chunk)
        except (web.HTTPException, LedgerError):
            raise
        except Exception:  # noqa: BLE001  # a malformed form (boundary, headers, truncated part) is the client's
            raise RefusedError("send the PDF as the form's one file field pdf", code="bad_form", status=400) from None
    else:
        raise RefusedError("send the PDF as application/pdf, or as the file field pdf of a multipart/form-data "
                           "form", code="unsupported_media_type", status=415)
    if PDF_HEADER not in head:
        raise RefusedError("the file is not a PDF (it has no %PDF- header at its start)", code="not_pdf", status=422)


async def _form_file(request: web.Request) -> AsyncIterator[bytes]:
    """The chunks of the form's file field `pdf`, its only field; 408 when nothing comes for IDLE_S."""
    async def within(step: Any) -> Any:
        try:
            async with asyncio.timeout(request_body.IDLE_S):
                return await step
        except TimeoutError:
            raise RefusedError(f"no part of the body came for {request_body.IDLE_S:g} s", code="request_timeout",
                               status=408) from None

    reader = await request.multipart()
    part = await within(reader.next())
    if part is None or getattr(part, "name", None) != "pdf" or not hasattr(part, "read_chunk"):
        raise RefusedError("send the PDF as the form's one file field pdf", code="bad_form", status=400)
    while chunk := await within(part.read_chunk()):
        yield chunk
    if await within(reader.next()) is not None:
        raise RefusedError("the form has fields besides pdf; send the PDF alone", code="bad_form", status=400)


def _signature_answer(led: Ledger, report: PdfReport) -> dict[str, Any]:
    """The report as JSON, with the registered versions the whole file and each signed revision are."""
    out = report.to_json()
    out["registered"] = registered_versions(led, report.sha256)
    for s, check in zip(out["signatures"], report.signatures, strict=True):
        s["registered"] = registered_versions(led, check.revision_sha256)
    return out


def _utc(iso: str) -> str:
    """A moment of the report as the pages show the log's times: RFC 3339 UTC, to the second."""
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
