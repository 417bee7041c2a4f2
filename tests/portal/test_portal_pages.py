"""Public pages over HTTP: status banners for every state, masking, escaping, languages, rate limits,
and the page in its reader's terms (times, organisations, prints, the verdict, the way back, an icon)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from markupsafe import escape

from ledger.envelopes.core import Ledger
from ledger.envelopes.demo import TENANT, create_demo
from ledger.envelopes.public import STATUS_LABEL, mask_name
from ledger.errors import RefusedError
from portal.app import create_app
from portal.pages import i18n
from portal.pages.i18n import DETAILS, EVENTS, LANGS, TEXT
from portal.pages.routes import ASSETS, attachment
from tests.conftest import new_ledger
from verifier.entry import EVENT_TYPES
from verifier.lifecycle import AUTH_METHODS, CHANNELS, PARTY_KINDS, SEAL_KINDS

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, engine: str) -> Iterator[tuple[Ledger, dict[str, str]]]:
    led = new_ledger(tmp_path_factory.mktemp("pages") / "home", engine)
    codes = {d["status"]: d["code"] for d in create_demo(led)}
    yield led, codes
    led.close()


@pytest.fixture
async def client(aiohttp_client: Client, demo: tuple[Ledger, dict[str, str]]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(demo[0]))


@pytest.mark.parametrize("status, banner", [
    ("completed", "VALID"), ("sent", "IN PROGRESS"), ("withdrawn", "WITHDRAWN"), ("declined", "DECLINED"),
    ("voided", "VOID"),
])
async def test_every_state_has_its_banner(client: TestClient[Any, Any], demo: Any, status: str,
                                          banner: str) -> None:
    code = demo[1][status]
    r = await client.get(f"/v/{code}", headers={"Accept-Language": "en"})
    html = await r.text()
    assert r.status == 200
    assert f'data-status="{status}"' in html and f"<h1>{banner}" in html
    assert "Z***n" in html and "Zhang San" not in html, "names are masked"
    assert "Price changed" not in html and "Wrong counterparty" not in html, "reasons stay private"
    if status == "voided":
        assert "every signing party consented" in html
    parties = html.split('id="parties"', 1)[1].split("</table>", 1)[0]
    if status in ("withdrawn", "declined", "voided"):  # closed: a signer who had not signed never will
        assert TEXT["en"]["pending"] not in parties
        assert (TEXT["en"]["not_signed"] in parties) == (status == "withdrawn"), "the demo's withdrawn had unsigned"
    else:
        assert TEXT["en"]["not_signed"] not in parties
    assert "existed no later than the time below" in html, "the trusted time is said to be an upper bound"


def test_a_masked_name_does_not_tell_its_length() -> None:
    assert mask_name("Zhang San") == "Z***n"
    assert mask_name(" 张小明 ") == "张***明"
    assert mask_name("李四") == "李*" and mask_name("X") == "X*"
    assert len(mask_name("Bo Li")) == len(mask_name("Maximilian Alexander von Hohenberg-Schwarzburg"))


async def test_unknown_code(client: TestClient[Any, Any]) -> None:
    r = await client.get("/v/0000000000000000000Z")
    html = await r.text()
    assert r.status == 404 and "UNKNOWN CODE" in html
    assert "00000-00000-00000-0000Z" in html, "the code looked up is shown, to compare with the paper"
    r = await client.get("/lookup?code=%3Cb%3Enot+a+code")
    html = await r.text()
    assert r.status == 404 and "looked up" not in html
    assert not re.search(r"(?i)%3Cb|&lt;b|not[+ ]a[+ ]code", html), "text that is no code is not shown back"
    r = await client.get("/v/0000000000000000000Z.json")
    assert r.status == 404 and (await r.json())["error"]["code"] == "unknown_code"


async def test_lookup_accepts_the_printed_forms(client: TestClient[Any, Any], demo: Any) -> None:
    code = demo[1]["completed"]
    for typed in (code.lower(), "-".join(code[i:i + 5] for i in range(0, 20, 5)),
                  " ".join(code[i:i + 5] for i in range(0, 20, 5)), code.replace("1", "l").replace("0", "o"),
                  # as a Chinese input method types it (full-width), with typographic dashes, or pasted whole
                  "－".join(full_width(code[i:i + 5]) for i in range(0, 20, 5)),
                  "\u2013".join(code[i:i + 5] for i in range(0, 20, 5)),
                  f"  https://verify.example.com/v/{code}#k=00112233445566778899aabbccddeeff&d=0011 "):
        r = await client.get("/lookup", params={"code": typed}, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == f"/v/{code}", typed
    r = await client.get("/lookup", params={"code": f"HTTPS://Verify.Example.com/check/v/{code}"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == f"/v/{code}", "any case, a portal under a path"
    for not_one in (code[:-1], code + "0", f"https://verify.example.com/x/{code}", "x" * 500,
                    "\u2460" * 20, "\u00df" * 10, "\u2160" * 20):  # circled 1, sharp s, roman numeral one
        assert (await client.get("/lookup", params={"code": not_one})).status == 404, not_one


def test_a_download_is_named_safely() -> None:
    assert attachment("合同 2026.pdf") == \
        "attachment; filename=\"__ 2026.pdf\"; filename*=UTF-8''%E5%90%88%E5%90%8C%202026.pdf"
    for hostile in ('x"; filename=evil.exe', "../../etc/passwd", "a\r\nSet-Cookie: s=1", "\u202eexe.pdf"):
        header = attachment(hostile)
        assert "\r" not in header and "\n" not in header and "/" not in header and "\u202e" not in header
        assert header.count('"') == 2 and header.endswith(".pdf"), header
    assert attachment("") == "attachment; filename=\"document.pdf\"; filename*=UTF-8''document.pdf"


def full_width(ascii_text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in ascii_text)


async def test_json_carries_verifiable_proofs(client: TestClient[Any, Any], demo: Any) -> None:
    import base64

    from verifier.checkpoint import verify_checkpoint
    from verifier.merkle import leaf_hash, verify_inclusion
    from verifier.note import Ed25519Verifier

    led, codes = demo
    v = await (await client.get(f"/v/{codes['voided']}.json")).json()
    key = Ed25519Verifier.from_string(v["log"]["verifier_key"])
    cp = verify_checkpoint(v["log"]["checkpoint"], key).checkpoint
    for p in v["proofs"]:
        verify_inclusion(p["index"], cp.size, leaf_hash(base64.b64decode(p["entry"])),
                         [base64.b64decode(h) for h in p["proof"]], cp.root)
    assert v["status"] == "voided" and v["label"] == "VOID"
    # and the log's signed statement that these are all of the envelope's events in that tree
    from datetime import UTC, datetime, timedelta

    from verifier.head import verify_head

    head = verify_head(v["log"]["head"], key, now=datetime.now(UTC), max_age=timedelta(minutes=1), size=cp.size)
    last = v["proofs"][-1]
    assert (head.env, head.events, head.last_index) == (v["env"], len(v["proofs"]), last["index"])
    assert head.last_leaf == leaf_hash(base64.b64decode(last["entry"]))


async def test_titles_are_escaped(aiohttp_client: Client, tmp_path: Path, engine: str) -> None:
    led = new_ledger(tmp_path / "home", engine)
    try:
        sha = led.blobs.put(b"%PDF-1.4 x")[0]
        acks = led.append(TENANT, [
            {"type": "envelope.created", "envelope": "X", "title": "<script>alert(1)</script>"},
            {"type": "document.added", "envelope": "X", "document": "d", "sha256": sha, "size": 10,
             "name": "<img src=x onerror=alert(1)>.pdf"},
            {"type": "party.added", "envelope": "X", "party": "p", "role": "signer", "name": "<b>bold</b>"},
            {"type": "envelope.sent", "envelope": "X"},
            {"type": "copy.printed", "envelope": "X", "document": "d"}])
        client = await aiohttp_client(create_app(led))
        html = await (await client.get(f"/v/{acks[-1]['code']}")).text()
        assert "<script>alert" not in html and "&lt;script&gt;" in html
        assert "<img src=x" not in html and "<b>bold" not in html
    finally:
        led.close()


async def test_chinese_by_accept_language_and_switch(client: TestClient[Any, Any], demo: Any) -> None:
    code = demo[1]["completed"]
    r = await client.get(f"/v/{code}", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    html = await r.text()
    assert 'lang="zh-CN"' in html and "有效" in html and r.headers["Content-Language"] == "zh-CN"
    r = await client.get(f"/v/{code}?lang=en", headers={"Accept-Language": "zh-CN"})
    assert "VALID" in await r.text() and "lang=en" in r.headers.get("Set-Cookie", "")
    assert code[:5] in html and "127.0.0.1" in html, "the code and the domain are printed on the page"


def test_every_event_type_method_and_channel_has_words_in_every_language() -> None:
    values = {*AUTH_METHODS, *CHANNELS, *PARTY_KINDS, *SEAL_KINDS}
    for lang in LANGS:
        assert set(EVENTS[lang]) == set(EVENT_TYPES) and set(DETAILS[lang]) == values, lang


async def test_the_timeline_speaks_the_page_language(client: TestClient[Any, Any], demo: Any) -> None:
    code = demo[1]["completed"]
    for lang in LANGS:
        html = await (await client.get(f"/v/{code}?lang={lang}")).text()
        timeline = html.split('id="timeline"', 1)[1].split("</table>", 1)[0]
        cells = re.findall(r"<td>([^<]*)</td>", timeline)
        assert EVENTS[lang]["party.signed"] in cells and DETAILS[lang]["sms"] in cells, lang
        assert not set(cells) & set(EVENT_TYPES), "no event type of the log is left untranslated"


async def test_the_page_names_the_printed_address_not_the_one_it_was_asked_by(
        client: TestClient[Any, Any], demo: Any) -> None:
    """A look-alike domain that proxies the portal must not make the page tell its reader to look for
    the look-alike in the address bar."""
    r = await client.get(f"/v/{demo[1]['completed']}", headers={"Host": "evil.example"})
    html = await r.text()
    assert r.status == 200 and "evil.example" not in html
    assert f'<strong class="mono">{demo[0].config.public_host}</strong>' in html


async def test_a_refusal_on_a_page_is_a_page_for_a_browser_and_json_for_a_program(
        aiohttp_client: Client, demo: Any) -> None:
    client = await aiohttp_client(create_app(demo[0], lookup_rate=0.001, lookup_burst=1))
    code = demo[1]["completed"]
    browser = {"Accept": "text/html,*/*;q=0.8", "Accept-Language": "en"}
    assert (await client.get(f"/v/{code}", headers=browser)).status == 200
    r = await client.get(f"/v/{code}", headers=browser)
    assert r.status == 429 and r.content_type == "text/html" and int(r.headers["Retry-After"]) > 0
    assert TEXT["en"]["error_rate_limited"] in await r.text()
    r = await client.get(f"/v/{code}")
    assert r.status == 429 and (await r.json())["error"]["code"] == "rate_limited"
    assert "Accept" in r.headers["Vary"] and r.headers["Cache-Control"] == "no-store", "a cache keeps neither"
    r = await client.get(f"/v/{code}", headers={"Accept": "application/json, text/html;q=0"})
    assert r.status == 429 and r.content_type == "application/json", "q=0 refuses HTML"
    r = await client.get(f"/v/{code}.json", headers=browser)
    assert r.status == 429 and (await r.json())["error"]["code"] == "rate_limited", "a JSON view stays JSON"


async def test_the_language_switch_keeps_the_page(client: TestClient[Any, Any], demo: Any) -> None:
    code = demo[1]["completed"]
    html = await (await client.get(f"/v/{code}?lang=en&x=%22injected")).text()
    assert 'id="lang-switch" href="?lang=zh-CN"' in html, "a copy page's switch holds nothing but the language"
    html = await (await client.get("/lookup?code=CALL+%2B86+555+0100&lang=zh-CN")).text()
    assert 'id="lang-switch" href="?lang=en"' in html and "555" not in html, "typed text is not shown back"


async def test_security_headers_and_no_inline_script(client: TestClient[Any, Any], demo: Any) -> None:
    r = await client.get(f"/v/{demo[1]['completed']}")
    html = await r.text()
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in html.replace('<script src="', "")
    assert " on" + "load=" not in html and "javascript:" not in html


async def test_the_words_verify_js_checks_with_come_with_the_script(client: TestClient[Any, Any], demo: Any) -> None:
    """A server rewriting a fact in the page must not be able to rewrite the words it is compared with:
    they are a script (/texts/<lang>.js), never data attributes of the page."""
    from portal.pages import i18n

    html = await (await client.get(f"/v/{demo[1]['completed']}")).text()
    scripts = re.findall(r'<script src="([^"]+)" defer></script>', html)
    assert scripts == [ASSETS["/texts/en.js"], ASSETS["/static/verify.js"]], scripts
    assert "data-labels" not in html and "data-reasons" not in html and "data-match" not in html
    for lang in i18n.LANGS:
        r = await client.get(f"/texts/{lang}.js")
        assert r.status == 200 and r.content_type == "text/javascript"
        body = await r.text()
        assert body.startswith('"use strict";') and "const EL_TEXT = " in body
        texts = json.loads(body.split("const EL_TEXT = ", 1)[1].rstrip().rstrip(";"))
        assert texts["labels"]["completed"] == i18n.TEXT[lang]["status_VALID"]
        assert texts["reasons"] == i18n.REASONS[lang] and texts["pending"] == i18n.TEXT[lang]["pending"]
    assert (await client.get("/texts/fr.js")).status == 404


async def test_scripts_are_named_by_their_content(client: TestClient[Any, Any], demo: Any) -> None:
    """A page, its check and the check's words change together: a browser that kept an old script
    must not run it against a new page (a genuine page would fail its check after an upgrade)."""
    html = await (await client.get(f"/v/{demo[1]['completed']}")).text()
    named = re.findall(r'(?:src|href)="(/(?:static|texts)/[^"]+)"', html)
    assert len(named) == 6 and all("?v=" in n for n in named), named  # style, 2 icons, 3 scripts
    for url in named:
        r = await client.get(url)
        body = await r.read()
        assert r.status == 200 and url.endswith("?v=" + hashlib.sha256(body).hexdigest()[:16]), url
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        r = await client.get(url.split("?")[0])  # the same file by its bare name: asked again each time
        assert r.status == 200 and r.headers["Cache-Control"] == "no-cache"
    r = await client.get(named[0].split("?")[0] + "?v=0000000000000000")  # an old version's name
    assert r.headers["Cache-Control"] == "no-cache"


async def test_public_download_and_policies(client: TestClient[Any, Any], demo: Any) -> None:
    r = await client.get(f"/v/{demo[1]['completed']}/document")
    assert r.status == 200 and (await r.read()).startswith(b"%PDF-")
    name = (await (await client.get(f"/v/{demo[1]['completed']}.json")).json())["document"]["name"]
    assert name and quote(name) in r.headers["Content-Disposition"], "saved under its registered name"
    r = await client.get(f"/v/{demo[1]['declined']}/document")  # policy "none"
    assert r.status == 404


async def test_code_lookups_are_rate_limited(aiohttp_client: Client, demo: Any) -> None:
    led, codes = demo
    app = create_app(led, lookup_rate=1.0, lookup_burst=3)
    client = await aiohttp_client(app)
    statuses = [(await client.get(f"/v/{codes['completed']}.json")).status for _ in range(6)]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses
    r = await client.get(f"/v/{codes['completed']}.json")
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
    assert (await r.json())["error"]["code"] == "rate_limited"


async def test_file_hash_lookup(client: TestClient[Any, Any], demo: Any) -> None:
    led, _ = demo
    sha = led.log.conn.execute("SELECT sha256 FROM documents LIMIT 1").fetchone()[0]
    assert (await (await client.get(f"/d/{sha}")).json())["registered"] is True
    assert (await (await client.get("/d/" + "0" * 64)).json())["registered"] is False


async def test_download_with_an_access_code(aiohttp_client: Client, tmp_path: Path, engine: str) -> None:
    """Policy "code": the document.added acknowledgement carries an access code; only it opens the file."""
    led = new_ledger(tmp_path / "home", engine)
    try:
        codes = {d["status"]: d for d in create_demo(led)}
        item = codes["sent"]  # the in-progress demo's document has the "code" policy
        assert len(item["access_code"]) == 12
        client = await aiohttp_client(create_app(led))
        assert (await client.get(f"/v/{item['code']}/document")).status == 404
        r = await client.post(f"/v/{item['code']}/document", data={"access_code": "WRONG-CODE-1"})
        assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
        # the same refusal to a person's browser: a page in the reader's language, with the way back
        browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Accept-Language": "zh-CN"}
        r = await client.post(f"/v/{item['code']}/document", data={"access_code": "WRONG-CODE-1"}, headers=browser)
        html = await r.text()
        assert r.status == 403 and r.content_type == "text/html", html
        assert TEXT["zh-CN"]["error_forbidden"] in html and f'href="/v/{item["code"]}"' in html
        assert "WRONG-CODE-1" not in html, "what was sent is not shown back"
        assert f'id="lang-switch" href="/v/{item["code"]}?lang=en"' in html, "the switch leads back, not to a GET"
        assert "Accept" in r.headers["Vary"] and r.headers["Cache-Control"] == "no-store"
        r = await client.get(f"/v/{item['code']}/document", headers=browser)
        assert r.status == 404 and TEXT["zh-CN"]["error_not_found"] in await r.text()
        r = await client.post(f"/v/{item['code']}/document", data={"access_code": item["access_code"].lower()})
        assert r.status == 200 and (await r.read()).startswith(b"%PDF-")
        typed = "－".join(full_width(item["access_code"][i:i + 4]) for i in range(0, 12, 4))  # an input method's
        r = await client.post(f"/v/{item['code']}/document", data={"access_code": typed})
        assert r.status == 200, typed
        raw = b"".join(led.log.entry(i) for i in range(led.log.size))
        assert item["access_code"].encode() not in raw, "the access code never enters the log"
        from ledger.audit.run import audit

        assert audit(led.log).ok
    finally:
        led.close()


def test_every_reason_verify_js_gives_is_translated() -> None:
    """verify.js fails with reason codes; each one has its text in every language, and none is unused."""
    from portal.pages import i18n

    js = (Path(i18n.__file__).parent / "static" / "verify.js").read_text()
    used = set(re.findall(r'\bfail\("(\w+)"', js)) | {"unexpected"}
    used |= {"what_" + w for w in re.findall(r'verifyNote\([^)]*"(\w+)"\)', js)}
    used |= {"st_" + s for s in STATUS_LABEL}  # statuses named in a reason
    assert "new Error(" not in js, "a failure without a reason code would be shown untranslated"
    for lang in i18n.LANGS:
        assert set(i18n.REASONS[lang]) == used, lang
        for code, text in i18n.REASONS[lang].items():
            assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", i18n.REASONS["en"][code]))


def test_a_view_is_of_one_moment_even_when_the_database_is_ahead_of_its_tree(tmp_path: Path, engine: str) -> None:
    """A process whose tree is a moment behind the database shows the status of the events in its
    tree, not the database's latest row: its page is checked against those events."""
    from ledger.envelopes.public import copy_view

    writer = new_ledger(tmp_path / "home", engine)
    try:
        codes = {c["status"]: c["code"] for c in create_demo(writer)}
        reader = Ledger.open_reader(tmp_path / "home")
        try:
            before = copy_view(reader, codes["completed"])
            assert before is not None and before["status"] == "completed"
            writer.append(TENANT, [{"type": "void.requested", "envelope": "DEMO-COMPLETED", "party": "lessor"},
                                   {"type": "void.consented", "envelope": "DEMO-COMPLETED", "party": "lessee"},
                                   {"type": "envelope.voided", "envelope": "DEMO-COMPLETED"}])
            same = copy_view(reader, codes["completed"])  # the reader has not moved to the new tree yet
            assert same is not None and same["log"]["size"] == before["log"]["size"]
            assert (same["status"], len(same["timeline"])) == ("completed", len(before["timeline"]))
            reader.log.refresh()
            after = copy_view(reader, codes["completed"])
            assert after is not None and after["status"] == "voided"
            assert len(after["timeline"]) == len(before["timeline"]) + 3 and after["times"]["voided"]
        finally:
            reader.close()
    finally:
        writer.close()


async def test_an_envelope_recorded_under_earlier_rules_still_has_its_page(aiohttp_client: Client, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          engine: str) -> None:
    """A rule made stricter later (a scanned paper copy must have been printed) must not take the page
    of a contract the log accepted before: the page shows what was recorded."""
    from verifier import lifecycle

    led = new_ledger(tmp_path / "home", engine)
    try:
        codes = {c["status"]: c["code"] for c in create_demo(led)}
        scan = {"type": "paper.scanned", "envelope": "DEMO-IN-PROGRESS", "document": "main", "sha256": "0" * 64,
                "copy": 5}
        with pytest.raises(RefusedError, match="never printed"):
            led.append(TENANT, [scan])
        with monkeypatch.context() as m:  # the looser rule of before
            m.setitem(lifecycle._STEP, "paper.scanned", lambda s, d, t: s)
            led.append(TENANT, [scan])
        client = await aiohttp_client(create_app(led, anchor=False))
        code = codes["sent"]
        r = await client.get(f"/v/{code}")
        assert r.status == 200 and f"<td>{EVENTS['en']['paper.scanned']}</td>" in await r.text()
        r = await client.get(f"/v/{code}.json")
        assert r.status == 200 and (await r.json())["status"] == "sent"
    finally:
        led.close()


async def test_a_copy_printed_by_another_process_has_its_page_at_once(aiohttp_client: Client, tmp_path: Path,
                                                                      engine: str) -> None:
    """`ledger append` beside the server prints a copy: its page does not wait for the server's next
    look at the log (it would say UNKNOWN CODE meanwhile)."""
    led = new_ledger(tmp_path / "home", engine)
    try:
        create_demo(led)
        client = await aiohttp_client(create_app(led, anchor=False))
        other = Ledger.open(tmp_path / "home")  # another process's writer, as far as the log knows
        try:
            (ack,) = other.append(TENANT, [{"type": "copy.printed", "envelope": "DEMO-COMPLETED", "document": "main"}])
        finally:
            other.close()
        assert led.log.size == ack["index"], "the server has not seen the new entry yet"
        r = await client.get(f"/v/{ack['code']}")
        assert r.status == 200, await r.text()
        r = await client.get(f"/v/{ack['code']}.json")
        v = await r.json()
        assert r.status == 200 and v["log"]["size"] == ack["index"] + 1 and v["copy"] == 2
    finally:
        led.close()


async def test_a_page_does_not_wait_long_for_another_process_s_write(aiohttp_client: Client, tmp_path: Path,
                                                                     engine: str) -> None:
    """Another process appended and still holds the write lock (a long `ledger import`; SQLite's write
    lock, or PostgreSQL's lock of the head row): the page waits for the server to take the new tree in
    only briefly, then shows the tree it has."""
    import sqlite3
    import threading
    import time

    from ledger.storage.engine import PgConnection
    from portal.pages import routes as pages

    led = new_ledger(tmp_path / "home", engine)
    try:
        codes = {c["status"]: c["code"] for c in create_demo(led)}
        client = await aiohttp_client(create_app(led, anchor=False))
        other = Ledger.open(tmp_path / "home")
        try:
            other.append(TENANT, [{"type": "party.viewed", "envelope": "DEMO-IN-PROGRESS", "party": "lessee"}])
        finally:
            other.close()
        lock: Any
        if led.config.database:  # another host's writer in the middle of its batch
            lock = PgConnection(led.config.database, role="other-writer")
            lock.execute("BEGIN")
            lock.execute("SELECT size FROM log_head WHERE id = 1 FOR UPDATE")
        else:
            lock = sqlite3.connect(tmp_path / "home" / "ledger.db", isolation_level=None, check_same_thread=False)
            lock.execute("BEGIN IMMEDIATE")
        release = threading.Timer(pages.CATCH_UP_WAIT_S + 3, lambda: lock.execute("COMMIT"))
        release.start()
        try:
            started = time.monotonic()
            r = await client.get(f"/v/{codes['sent']}")
            took = time.monotonic() - started
            assert r.status == 200 and took < pages.CATCH_UP_WAIT_S + 1.5, (r.status, took)
        finally:
            release.join()
            lock.close()
        r = await client.get(f"/v/{codes['sent']}.json")  # once the lock is gone: the newer tree
        assert r.status == 200 and json.loads(base64.b64decode((await r.json())["proofs"][-1]["entry"]))["type"] \
            == "party.viewed"
    finally:
        led.close()


# --- the page in its reader's terms: times, organisations, prints, the verdict, the way back, an icon --
# (the same page on a phone, in a browser: tests/portal/test_browser.py)

SIGNED_AT = datetime(2026, 12, 6, 19, 20, 44, 845000, tzinfo=UTC)  # 03:20:44 on the 7th in Beijing
ISO = "2026-12-06T19:20:44.845Z"


@pytest.fixture(scope="module")
def lease(tmp_path_factory: pytest.TempPathFactory, engine: str) -> Iterator[tuple[Ledger, list[str]]]:
    """A lease between a company and a person, two copies printed, then voided, on a clock that stands
    still: the ledger and the copies' codes."""
    led = new_ledger(tmp_path_factory.mktemp("lease") / "home", engine, clock=lambda: SIGNED_AT)
    sha = led.blobs.put(b"%PDF-1.4 lease")[0]
    signed = [{"type": t, "envelope": "L", "party": p, **extra} for p in ("zenith", "zhang") for t, extra in (
        ("party.authenticated", {"method": "sms"}),
        ("party.signed", {"channel": "web", "document": "d", "signed_sha256": "0" * 64}))]
    acks = led.append(TENANT, [
        {"type": "envelope.created", "envelope": "L", "title": "Office lease"},
        {"type": "document.added", "envelope": "L", "document": "d", "sha256": sha, "size": 14, "name": "l.pdf"},
        {"type": "party.added", "envelope": "L", "party": "zenith", "role": "signer", "order": 1,
         "name": "Zenith Trading Co., Ltd.", "kind": "organization"},
        {"type": "party.added", "envelope": "L", "party": "zhang", "role": "signer", "order": 2,
         "name": "Zhang San"},
        {"type": "envelope.sent", "envelope": "L"}, *signed, {"type": "envelope.completed", "envelope": "L"},
        {"type": "copy.printed", "envelope": "L", "document": "d"},
        {"type": "copy.printed", "envelope": "L", "document": "d"},
        {"type": "void.requested", "envelope": "L", "party": "zenith"},
        {"type": "void.consented", "envelope": "L", "party": "zhang"},
        {"type": "envelope.voided", "envelope": "L"}])
    yield led, [a["code"] for a in acks if "code" in a]
    led.close()


@pytest.fixture
async def reader(aiohttp_client: Client, lease: tuple[Ledger, list[str]]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(lease[0], anchor=False))


async def page_of(client: TestClient[Any, Any], code: str, lang: str) -> str:
    r = await client.get(f"/v/{code}?lang={lang}")
    assert r.status == 200
    return await r.text()


def timeline_cells(html: str) -> list[list[str]]:
    """The timeline's cells, as HTML."""
    timeline = html.split('id="timeline"', 1)[1].split("</table>", 1)[0]
    return [re.findall(r"<td>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", timeline)]


@pytest.mark.parametrize("lang, shown", [("zh-CN", "北京时间 2026-12-07 03:20:44"), ("en", "2026-12-06 19:20:44 UTC")])
async def test_times_are_in_the_readers_terms_with_the_exact_instant(reader: TestClient[Any, Any], lease: Any,
                                                                     lang: str, shown: str) -> None:
    """Beijing time on a Chinese page; on an English one UTC until the page's script shows the reader's
    own zone. To the second, named, with the instant the log holds for the check and the reader."""
    html = await page_of(reader, lease[1][0], lang)
    time = f'<time datetime="{ISO}" title="2026-12-06 19:20:44.845 UTC">{shown}</time>'
    assert all(cells[0] == time for cells in timeline_cells(html)), timeline_cells(html)[0]
    assert f'<p id="void-detail">{TEXT[lang]["void_detail"].format(date=time)}</p>' in html
    assert re.sub(r'<time datetime="[^"]*" title="[^"]*">', "", html).count(ISO) == 0, "no raw RFC 3339 shown"


def test_a_time_is_shown_to_the_second_in_its_zone() -> None:
    assert i18n.shown_time("2026-12-31T16:00:00.999Z", "zh-CN") == "北京时间 2027-01-01 00:00:00"
    assert i18n.shown_time("2026-12-31T15:59:59.999Z", "zh-CN") == "北京时间 2026-12-31 23:59:59", "cut, not rounded"
    assert i18n.shown_time("2026-03-29T01:30:00Z", "en") == "2026-03-29 01:30:00 UTC"
    for no_time in ("Unix time 253402300800", "2026-02-30T00:00:00.000Z", "2026-12-06T19:20:60.000Z",
                    "9999-12-31T20:00:00.000Z", "<b>2026-12-06T19:20:44Z</b>"):
        assert i18n.shown_time(no_time, "zh-CN") == no_time
        assert i18n.time_html(no_time, "en") == escape(no_time), "no <time> for what is no time"


async def test_an_organisation_is_named_in_full_and_a_person_masked(reader: TestClient[Any, Any],
                                                                    lease: Any) -> None:
    html = await page_of(reader, lease[1][0], "en")
    parties = html.split('id="parties"', 1)[1].split("</table>", 1)[0]
    assert "<td>Zenith Trading Co., Ltd.</td>" in parties and "<td>Z***n</td>" in parties, parties
    assert "Z***." not in html and "Zhang San" not in html
    v = await (await reader.get(f"/v/{lease[1][0]}.json")).json()
    assert [(p["name"], p["kind"]) for p in v["parties"]] == [("Zenith Trading Co., Ltd.", "organization"),
                                                               ("Z***n", "person")]


@pytest.mark.parametrize("lang", LANGS)
async def test_a_print_says_which_copy_and_a_party_row_no_kind(reader: TestClient[Any, Any], lease: Any,
                                                               lang: str) -> None:
    t = TEXT[lang]
    for code, mine in zip(lease[1], (1, 2), strict=True):
        cells = timeline_cells(await page_of(reader, code, lang))
        printed = [c[3] for c in cells if c[1] == EVENTS[lang]["copy.printed"]]
        assert printed == [(t["copy_this"] if n == mine else t["copy_row"]).format(n=n, document=1) for n in (1, 2)]
        added = [c[3] for c in cells if c[1] == EVENTS[lang]["party.added"]]
        assert added == ["", ""], "a party's kind is no method or channel"
        assert DETAILS[lang]["sms"] in [c[3] for c in cells], "methods are still shown"


async def test_the_check_says_its_verdict_first_and_folds_the_details(reader: TestClient[Any, Any],
                                                                      lease: Any) -> None:
    html = await page_of(reader, lease[1][0], "en")
    box = html.split('<section id="verify"', 1)[1].split("</section>", 1)[0]
    assert re.search(r'<p id="verify-result" role="status">[^<]*</p>\s*<details id="verify-more" hidden>'
                     r'<summary>[^<]+</summary><p id="verify-detail"></p></details>', box), box
    for lang in LANGS:
        for verdict in ("verify_ok", "verify_unpinned"):
            said = TEXT[lang][verdict]
            assert len(said) <= 90 and len(re.findall(r"[.。]", said)) == 1, (lang, verdict, said)
        assert "{size}" in TEXT[lang]["verify_ok_more"] and "{size}" in TEXT[lang]["verify_unpinned_more"]


async def test_the_way_back_from_a_refusal_keeps_the_pins_in_the_browser_only(reader: TestClient[Any, Any],
                                                                              lease: Any) -> None:
    """The pins are a fragment, which never reaches the server: the page's script carries them (in the
    form's address, then the way back); the server marks where, and echoes nothing it was sent."""
    code = lease[1][0]
    browser = {"Accept": "text/html", "Accept-Language": "en"}
    r = await reader.post(f"/v/{code}/document?k=%3Cscript%3E", data={"access_code": "x#k=<b>"}, headers=browser)
    html = await r.text()
    assert r.status == 404 and f'<a href="/v/{code}" id="back" data-keep-pins>' in html, html
    assert "%3Cscript" not in html and "<script>" not in html and "<b>" not in html and "x#k" not in html
    common = (Path(i18n.__file__).parent / "static" / "common.js").read_text()
    assert "data-keep-pins" in common and "[0-9a-fA-F]{16,64}" in common, "only pins of a QR code's shape"


async def test_an_access_code_form_carries_the_pins(aiohttp_client: Client, tmp_path: Path, engine: str) -> None:
    led = new_ledger(tmp_path / "home", engine)
    try:
        code = next(d["code"] for d in create_demo(led) if d["access_code"])
        client = await aiohttp_client(create_app(led, anchor=False))
        html = await (await client.get(f"/v/{code}")).text()
        assert f'<form method="post" action="/v/{code}/document" data-keep-pins>' in html
        r = await client.post(f"/v/{code}/document", data={"access_code": "WRONG"}, headers={"Accept": "text/html"})
        assert r.status == 403 and f'<a href="/v/{code}" id="back" data-keep-pins>' in await r.text()
    finally:
        led.close()


async def test_an_icon_for_every_page_and_at_its_old_address(reader: TestClient[Any, Any], lease: Any) -> None:
    html = await page_of(reader, lease[1][0], "en")
    for name, kind in (("favicon.ico", "image/vnd.microsoft.icon"), ("favicon.svg", "image/svg+xml")):
        href = ASSETS[f"/static/{name}"]
        assert f'<link rel="icon" href="{href}"' in html
        r = await reader.get(href)
        assert r.status == 200 and r.content_type == kind
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable", "named by its content"
    for path in ("/", "/lookup?code=x"):
        assert ASSETS["/static/favicon.svg"] in await (await reader.get(path)).text(), path
    r = await reader.get("/favicon.ico")  # where a browser looks unasked (the JSON views, the log's files)
    body = await r.read()
    assert r.status == 200 and body[:4] == b"\x00\x00\x01\x00", "an ICO file"
    assert r.headers["Cache-Control"] == "public, max-age=86400" and "ETag" in r.headers
    assert r.headers["X-Content-Type-Options"] == "nosniff"
