"""The portal in a real browser: headless Chromium (Playwright) against a real `ledger serve`.

verify.js must turn the box green only when the checkpoint signature, every inclusion proof, the
pinned key (`#k=`) and the pinned document (`#d=`) all check out, and red for a lying server: a
proxy that flips a proof byte, re-signs the checkpoint with its own key, claims another status,
points "compare your copy" at a forged document, or leaves out an envelope's last events (caught by
the log's signed statement of the envelope's last event, verifier/head.py).
Every scenario leaves a screenshot in test-artifacts/browser/.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from ledger.envelopes.demo import demo_signed_pdf
from ledger.storage.signer import LogSigner
from portal.pages.i18n import DETAILS, EVENTS, REASONS, TEXT
from tests.browser_util import CHROMIUM, CHROMIUM_ARGS, DemoCopy, LedgerServer, LyingProxies, Tamper, ledger
from tests.conftest import ROOT
from verifier.checkpoint import verify_checkpoint
from verifier.note import Ed25519Verifier, parse_note, sign_note

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "test-artifacts" / "browser"
VERIFY_TIMEOUT_MS = 10_000
EN = TEXT["en"]
GREEN, RED, AMBER = "rgb(26, 127, 55)", "rgb(207, 34, 46)", "rgb(154, 103, 0)"  # .verify.ok / .fail / .unpinned
BLUE = "rgb(11, 79, 138)"  # .verify.ok.not-valid: verified, for a contract that is not in force


# --- fixtures: one ledger server, one lying proxy set and one Chromium for the module -------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerServer]:
    srv = LedgerServer(tmp_path_factory.mktemp("browser") / "home")
    try:
        srv.start()
        assert set(srv.copies) == {"completed", "sent", "withdrawn", "declined", "voided"}, srv.copies
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run scripts/system-deps (or set LEDGER_CHROMIUM)")
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()


def new_context(browser: Browser, locale: str = "en-US") -> BrowserContext:
    ctx = browser.new_context(locale=locale, viewport={"width": 1000, "height": 900})
    ctx.set_default_timeout(VERIFY_TIMEOUT_MS)
    return ctx


@pytest.fixture(scope="module")
def shared_page(browser: Browser) -> Iterator[Page]:
    """One English tab for the module: a new tab costs about half a second."""
    ctx = new_context(browser)
    yield watched(ctx.new_page())
    ctx.close()


@pytest.fixture
def page(shared_page: Page) -> Page:
    # about:blank first, so that a URL differing only in its fragment is a real load, not a hash change
    shared_page.goto("about:blank")
    shared_page.context.clear_cookies()
    shared_page._script_errors.clear()  # type: ignore[attr-defined]
    return shared_page


def watched(p: Page) -> Page:
    """Record uncaught script errors, so that a broken script shows up in the failure message."""
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    setattr(p, "_script_errors", errors)  # noqa: B010
    return p


def script_errors(p: Page) -> list[str]:
    return list(getattr(p, "_script_errors", []))


# --- helpers -------------------------------------------------------------------------------------

def forge(pdf: bytes) -> bytes:
    """The demo PDF with one letter of its title changed: what a forger would print."""
    out = pdf.replace(b"Office lease agreement", b"Office lease agreemenT", 1)
    assert out != pdf, "the demo PDF no longer carries its title in clear"
    return out


def document_sha(server: LedgerServer, copy: DemoCopy) -> str:
    found = list((server.home / "blobs" / copy.pins["d"][:2]).glob(copy.pins["d"] + "*"))
    assert len(found) == 1, found
    return found[0].name


def shot(p: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.unlink(missing_ok=True)
    p.screenshot(path=str(path), full_page=True)
    assert path.is_file() and path.stat().st_size > 1000, f"screenshot {path} missing or empty"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return path


def verify_outcome(p: Page) -> tuple[str, str]:
    """Wait for verify.js to finish; return (data-result, the message it shows)."""
    try:
        p.wait_for_selector("#verify[data-result]", state="attached", timeout=VERIFY_TIMEOUT_MS)
    except PlaywrightError:
        text = p.locator("#verify-result").text_content() if p.locator("#verify-result").count() else "(none)"
        raise AssertionError(f"the in-browser check did not finish within {VERIFY_TIMEOUT_MS} ms on {p.url}; "
                             f"#verify-result: {text!r}; script errors: {script_errors(p)}") from None
    box = p.locator("#verify")
    return box.get_attribute("data-result") or "", (p.locator("#verify-result").text_content() or "").strip()


def verify_details(p: Page) -> str:
    """What the check covered, folded below its verdict."""
    return (p.locator("#verify-detail").text_content() or "").strip()


def border_colour(p: Page, selector: str) -> str:
    return str(p.eval_on_selector(selector, "e => getComputedStyle(e).borderTopColor"))


def assert_verified(p: Page, status: str = "completed") -> str:
    """Checked against the pinned key: green for a contract in force, blue (never green) for any other
    status, so that a verified VOID is not read as a green light."""
    result, text = verify_outcome(p)
    assert result == "ok", f"expected a passed in-browser check on {p.url}, got {result!r}: {text!r}; " \
                           f"script errors: {script_errors(p)}"
    in_force = status == "completed"
    assert p.get_attribute("#verify", "class") == ("verify ok" if in_force else "verify ok not-valid")
    assert border_colour(p, "#verify") == (GREEN if in_force else BLUE), "the verified box's colour"
    return text


def assert_failed(p: Page, reason: str) -> str:
    result, text = verify_outcome(p)
    assert result == "fail", f"a lying server got a {result!r} result on {p.url}: {text!r}"
    assert p.get_attribute("#verify", "class") == "verify fail"
    assert border_colour(p, "#verify") == RED, "the failed box is not red"
    assert text.startswith("VERIFICATION FAILED") and reason in text, \
        f"the check failed for another reason than {reason!r}: {text!r}; script errors: {script_errors(p)}"
    assert p.locator("#verify-more").is_hidden(), "a failed check keeps no account of what was verified"
    heading = (p.locator("#verify h2").text_content() or "").strip()
    assert "verified" not in heading.lower(), f"a failed check is headed {heading!r}"
    assert banner(p) == ("failed", EN["status_failed"]), "a failed check leaves the banner's status on screen"
    assert p.is_visible("#status"), "the red banner is hidden"
    assert p.eval_on_selector("#status", "e => getComputedStyle(e).backgroundColor") == RED
    if p.locator("#compare-input").count():  # nothing to compare with: the registered hash is unknown
        assert p.is_disabled("#compare-input")
        assert (p.locator("#compare-result").text_content() or "").strip() == EN["compare_failed"]
    return text


def assert_unpinned(p: Page) -> str:
    """Checked, but against the key the server supplied: amber, never green."""
    result, text = verify_outcome(p)
    assert result == "unpinned", f"expected an amber check without a key pin on {p.url}, got {result!r}: {text!r}"
    assert p.get_attribute("#verify", "class") == "verify unpinned"
    assert border_colour(p, "#verify") == AMBER
    assert text == EN["verify_unpinned"] and "no key pin" in verify_details(p), (text, verify_details(p))
    return text


def banner(p: Page) -> tuple[str, str]:
    b = p.locator("#status")
    return b.get_attribute("data-status") or "", (b.locator("h1").text_content() or "").strip()


def open_copy(p: Page, url: str) -> None:
    resp = p.goto(url)
    assert resp is not None and resp.status == 200, f"{url}: HTTP {resp and resp.status}"
    leaked = re.findall(r"<built-in [^>]*>|\b(?:None|undefined)\b", p.locator("main").inner_text())
    assert not leaked, f"the page shows template internals: {leaked}"


# --- an honest server ----------------------------------------------------------------------------

def test_completed_copy_is_valid_and_verified_in_the_browser(server: LedgerServer, page: Page) -> None:
    copy = server.copies["completed"]
    open_copy(page, copy.url)
    assert banner(page) == ("completed", EN["status_VALID"])
    text = assert_verified(page)
    assert text == EN["verify_ok"] and re.search(r"checkpoint \d+", verify_details(page)), verify_details(page)
    sha = (page.locator("#doc-sha256").text_content() or "").strip()
    assert sha.startswith(copy.pins["d"]), (sha, copy.pins)
    facts = page.locator("dl.facts").inner_text()
    assert EN["copy"] in facts and EN["copy_of"].format(n=1) in facts, facts
    assert page.locator("ul.witnesses li").inner_text().startswith(f"{server.notary}: cosigned at ")
    assert script_errors(page) == []
    shot(page, "completed-valid")


def test_compare_your_copy_match_and_mismatch(server: LedgerServer, page: Page, tmp_path: Path) -> None:
    copy = server.copies["completed"]
    open_copy(page, copy.url)
    assert_verified(page)
    sha = (page.locator("#doc-sha256").text_content() or "").strip()
    original = server.blob(sha)
    pdf = original.read_bytes()
    assert hashlib.sha256(pdf).hexdigest() == sha and pdf.startswith(b"%PDF-")
    with urllib.request.urlopen(f"{server.base}/v/{copy.code}/document", timeout=10) as r:
        assert r.read() == pdf, "the public download is not the registered document"

    page.set_input_files("#compare-input", str(original))
    res = page.locator("#compare-result.ok")
    res.wait_for()
    assert (res.text_content() or "").startswith("MATCH - ") and sha in (res.text_content() or "")
    assert page.eval_on_selector("#compare-result", "e => getComputedStyle(e).color") == GREEN
    shot(page, "compare-match")

    forged = tmp_path / "forged.pdf"
    forged.write_bytes(forge(pdf))
    page.set_input_files("#compare-input", str(forged))
    res = page.locator("#compare-result.bad")
    res.wait_for()
    forged_sha = hashlib.sha256(forged.read_bytes()).hexdigest()
    assert (res.text_content() or "").startswith("MISMATCH - ") and forged_sha in (res.text_content() or "")
    assert page.eval_on_selector("#compare-result", "e => getComputedStyle(e).color") == RED
    shot(page, "compare-mismatch")


def test_compare_your_copy_recognises_a_partys_signed_version(server: LedgerServer, page: Page) -> None:
    """A party's signed PDF is a version of the document the log registers (`party.signed`'s
    `signed_sha256`): "compare your copy" says which, from the verified entries, not MISMATCH; and the
    home page's file check (`/d/<sha256>`) says the same."""
    copy = server.copies["completed"]
    open_copy(page, copy.url)
    assert_verified(page)
    sha = (page.locator("#doc-sha256").text_content() or "").strip()
    signed = demo_signed_pdf(sha, "lessee")
    path = server.blob(hashlib.sha256(signed).hexdigest())
    assert path.read_bytes() == signed, "the demo registers the signed PDF it stores"
    page.set_input_files("#compare-input", str(path))
    res = page.locator("#compare-result.ok")
    res.wait_for()
    words = res.text_content() or ""
    assert words.startswith("MATCH - your file is the version of this document signed by party 2"), words
    assert page.eval_on_selector("#compare-result", "e => getComputedStyle(e).color") == GREEN
    shot(page, "compare-signed-version")
    page.goto(f"{server.base}/")
    page.set_input_files("#file-input", str(path))
    out = page.locator("#file-result.info")
    out.wait_for()
    assert "signed by party 2" in (out.text_content() or ""), out.text_content()


def test_compare_your_copy_recognises_the_platforms_sealed_version(server: LedgerServer, page: Page,
                                                                   tmp_path: Path) -> None:
    """The document sealed by the platform (`ledger seal`, beside the running server) is a registered
    version: "compare your copy" says so, from the verified `document.sealed` entry."""
    sealed = tmp_path / "sealed.pdf"
    ledger(server.home, "seal", "DEMO-COMPLETED", "--tenant", "demo", "--document", "main", "-o", str(sealed))
    copy = server.copies["completed"]
    deadline = time.monotonic() + 10
    while True:  # the server takes the command's entry in within a second, or at its next write
        open_copy(page, copy.url)
        assert_verified(page)
        if page.locator("#timeline").get_by_text("Sealed by the platform").count() or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    page.set_input_files("#compare-input", str(sealed))
    res = page.locator("#compare-result.ok")
    res.wait_for()
    assert (res.text_content() or "").startswith("MATCH - your file is this document as sealed by the platform")
    shot(page, "compare-sealed-version")


@pytest.mark.parametrize("status, label", [
    ("voided", "VOID"), ("withdrawn", "WITHDRAWN"), ("declined", "DECLINED"), ("sent", "IN PROGRESS"),
])
def test_other_states_show_their_banner_and_verify(server: LedgerServer, page: Page, status: str,
                                                   label: str) -> None:
    open_copy(page, server.copies[status].url)
    shown_status, heading = banner(page)
    assert shown_status == status and heading == EN[f"status_{label}"], (shown_status, heading)
    if status == "voided":
        assert "every signing party consented" in (page.locator("#status").text_content() or "")
    assert_verified(page, status)
    shot(page, f"{status}-{label.lower().replace(' ', '-')}")


def test_without_its_texts_the_check_fails_red(server: LedgerServer, page: Page) -> None:
    """The words the check compares with come with its script: without them nothing is checked, and
    the page says so in red."""
    page.route("**/texts/*.js?*", lambda route: route.fulfill(status=404, body="", content_type="text/javascript"))
    try:
        open_copy(page, server.copies["completed"].url)
        page.wait_for_function("() => document.querySelector('#verify[data-result]') !== null")
        result, text = verify_outcome(page)
        assert result == "fail" and text.startswith("VERIFICATION FAILED") and "texts" in text, text
        assert border_colour(page, "#verify") == RED
        assert banner(page)[0] == "failed", "the banner no longer says VALID"
        assert page.eval_on_selector("#status", "e => getComputedStyle(e).backgroundColor") == RED
    finally:
        page.unroute("**/texts/*.js?*")


def test_unknown_code(server: LedgerServer, page: Page) -> None:
    resp = page.goto(f"{server.base}/v/0000000000000000000Z")
    assert resp is not None and resp.status == 404
    assert banner(page) == ("unknown", EN["status_UNKNOWN CODE"])
    assert page.locator("#verify").count() == 0, "an unknown code has nothing to verify"
    shot(page, "unknown-code")


def test_home_page_code_form_and_file_check(server: LedgerServer, page: Page, tmp_path: Path) -> None:
    copy = server.copies["completed"]
    typed = "-".join(copy.code[i:i + 5] for i in range(0, 20, 5)).lower()
    page.goto(f"{server.base}/")
    page.fill("#code", typed)
    page.click("form.code button[type=submit]")
    page.wait_for_url(f"{server.base}/v/{copy.code}")
    assert banner(page) == ("completed", EN["status_VALID"])
    assert_unpinned(page)  # no QR fragment here: checked, but with the key the server supplied
    shot(page, "home-code-lookup")
    original = server.blob((page.locator("#doc-sha256").text_content() or "").strip())

    page.goto(f"{server.base}/")
    page.set_input_files("#file-input", str(original))
    page.locator("#file-result.info").wait_for()  # neutral, not green: registered is no verdict
    assert (page.locator("#file-result").text_content() or "").startswith(EN["file_result_found"])
    other = tmp_path / "other.txt"
    other.write_bytes(b"not a registered document\n")
    page.set_input_files("#file-input", str(other))
    page.locator("#file-result.bad").wait_for()
    assert (page.locator("#file-result").text_content() or "").startswith(EN["file_result_none"])
    shot(page, "home-file-check")
    # a refused lookup (here: rate-limited) is no answer: never "not registered"
    page.route("**/d/*", lambda route: route.fulfill(status=429, body="{}", content_type="application/json"))
    try:
        page.set_input_files("#file-input", str(original))
        page.locator("#file-result.error").wait_for()
        said = page.locator("#file-result").text_content() or ""
        assert "429" in said and EN["file_result_none"] not in said and EN["file_result_found"] not in said, said
    finally:
        page.unroute("**/d/*")


def test_home_page_checks_the_signatures_of_a_pdf_when_asked(server: LedgerServer, page: Page,
                                                               tmp_path: Path) -> None:
    """A PDF sealed by the ledger's seal CA and time-stamped by its TSA: picked, it is only hashed; the
    reader asks, and the portal's check of its signatures shows in the page."""
    from ledger.anchoring.tsa import LocalTsa
    from ledger.documents.seal import LocalTsaTimeStamper, Sealer, seal_pdf
    from ledger.documents.sealca import load_seal
    from tests.documents.test_pdfsig import unsigned_pdf

    seal = load_seal(server.home / "seal")  # the platform's seal, made by `ledger init`
    sealed = tmp_path / "sealed.pdf"
    with ThreadPoolExecutor(1) as pool:  # pyHanko runs its own event loop: not in Playwright's thread
        sealed.write_bytes(pool.submit(
            seal_pdf, unsigned_pdf("Contract 21."), Sealer.from_local_seal(seal),
            timestamper=LocalTsaTimeStamper(LocalTsa.load(server.home / "tsa")), level="B-T").result())
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(f"{server.base}/")
    page.set_input_files("#file-input", str(sealed))
    page.locator("#file-result.bad").wait_for()  # hashed and looked up: not registered
    assert posts == [], "picking a file sends nothing but its hash"
    page.click("#sig-check")
    page.locator("#sig-box #sig-result").wait_for()
    assert page.url == f"{server.base}/", "the result shows in the page"
    assert posts == [f"{server.base}/check/signatures?lang=en"], posts
    assert page.locator("#sig-verdict").text_content() == EN["sig_all_ok"]
    assert page.locator("#sig-box .sig-signer").text_content() is not None
    assert "Evidence Ledger (demo)" in (page.locator("#sig-box .sig-signer").text_content() or "")
    assert page.locator("#sig-box .sig-trusted").text_content() == EN["sig_yes"]
    assert page.locator("#sig-box .sig-changed").text_content() == EN["sig_changed_no"]
    shot(page, "home-signature-check")
    # a file that is no PDF: the portal's refusal, in the page's words
    other = tmp_path / "notes.txt"
    other.write_bytes(b"not a PDF\n")
    page.set_input_files("#file-input", str(other))
    page.click("#sig-check")
    page.locator("#sig-box #error").wait_for()
    assert page.locator("#sig-box #error h1").text_content() == EN["error_not_pdf"]
    assert script_errors(page) == []


def test_chinese_page(server: LedgerServer, browser: Browser) -> None:
    ctx = new_context(browser, locale="zh-CN")
    try:
        p = watched(ctx.new_page())
        open_copy(p, server.copies["completed"].url)
        assert p.get_attribute("html", "lang") == "zh-CN"
        status, heading = banner(p)
        assert status == "completed" and heading.startswith("有效"), heading
        assert assert_verified(p).startswith("已在您的浏览器中验证")
        # Chinese text is drawn with real glyphs, not one blank or box for every character
        same = p.evaluate("""() => {
          const family = getComputedStyle(document.querySelector('h1, h2')).fontFamily;
          const draw = (ch) => {
            const c = document.createElement('canvas'); c.width = c.height = 40;
            const g = c.getContext('2d'); g.font = '32px ' + family; g.fillText(ch, 2, 34);
            return Array.from(g.getImageData(0, 0, 40, 40).data).join(',');
          };
          return draw('有') === draw('效');
        }""")
        assert not same, "the browser has no font for Chinese (Debian package fonts-wqy-microhei)"
        timeline = p.locator("#timeline").inner_text()
        assert "签署" in timeline and "party.signed" not in timeline, "the timeline is in Chinese"
        shot(p, "completed-zh-CN")
        # the switch to English keeps the QR code's pins: the check is still green, not amber
        p.click("#lang-switch")
        p.wait_for_url(re.compile(r"\?lang=en#k="))
        assert p.get_attribute("html", "lang") == "en"
        assert assert_verified(p) == EN["verify_ok"]
    finally:
        ctx.close()


# --- on a phone ----------------------------------------------------------------------------------

PHONE = {"width": 360, "height": 740}


def lines(p: Page, selector: str) -> int:
    """How many lines the element's text takes on screen."""
    return int(p.eval_on_selector(selector, """e => {
      const r = document.createRange(); r.selectNodeContents(e);
      return new Set(Array.from(r.getClientRects(), (box) => Math.round(box.bottom))).size;
    }"""))


@pytest.mark.parametrize("locale, zone, offset, shown", [
    ("zh-CN", "America/New_York", timedelta(hours=8), "北京时间 {}"),  # Beijing time, wherever the phone is
    ("en-US", "Asia/Kolkata", timedelta(hours=5, minutes=30), "{} GMT+5:30"),  # the phone's own time zone
])
def test_on_a_phone_the_page_speaks_in_the_readers_terms(server: LedgerServer, browser: Browser, locale: str,
                                                         zone: str, offset: timedelta, shown: str) -> None:
    """A QR code is scanned with a phone: the check's verdict fits in a sentence, the times are the
    reader's own, a print says which copy it made, and a wrong access code leads back to a page still
    checked against the QR code's pins."""
    lang = "zh-CN" if locale == "zh-CN" else "en"
    t = TEXT[lang]
    ctx = browser.new_context(locale=locale, timezone_id=zone, viewport=PHONE, is_mobile=True, has_touch=True)
    ctx.set_default_timeout(VERIFY_TIMEOUT_MS)
    try:
        p = watched(ctx.new_page())
        copy = server.copies["completed"]
        open_copy(p, copy.url)
        verdict = assert_verified(p)
        assert verdict == t["verify_ok"] and lines(p, "#verify-result") <= 2, (verdict, lines(p, "#verify-result"))
        assert not p.eval_on_selector("#verify-more", "e => e.open") and not p.is_visible("#verify-detail")
        p.tap("#verify-more summary")  # what the check covered, folded below the verdict
        covered = re.escape(t["verify_ok_more"]).replace(re.escape("{size}"), r"\d+")
        assert p.is_visible("#verify-detail") and re.fullmatch(covered, verify_details(p)), verify_details(p)
        assert p.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"], "wider than the phone"

        with urllib.request.urlopen(f"{server.base}/v/{copy.code}.json", timeout=10) as r:
            entries = [json.loads(base64.b64decode(item["entry"])) for item in json.load(r)["proofs"]]
        times = p.eval_on_selector_all("#timeline tr > td:first-child",
                                       "tds => tds.map(td => [td.querySelector('time').getAttribute('datetime'),"
                                       " td.textContent.trim(), td.querySelector('time').title])")
        assert len(times) == len(entries)
        for e, (exact, words, title) in zip(entries, times, strict=True):
            local = (datetime.fromisoformat(e["time"]) + offset).replace(microsecond=0)
            assert words == shown.format(f"{local:%Y-%m-%d %H:%M:%S}"), (e["time"], words)
            assert exact == e["time"] and title == e["time"][:-1].replace("T", " ") + " UTC", (exact, title)
        details = p.eval_on_selector_all("#timeline tr", "trs => trs.map(tr => tr.cells[3].textContent.trim())")
        kinds = [e["type"] for e in entries]
        assert [d for d, k in zip(details, kinds, strict=True) if k == "copy.printed"] == [
            t["copy_this"].format(n=1, document=1)], details
        assert [d for d, k in zip(details, kinds, strict=True) if k == "party.added"] == ["", ""], details
        shot(p, f"phone-completed-{lang}")

        # a wrong access code; the way back leads to the page with the QR code's pins: checked against them
        sent = server.copies["sent"]
        open_copy(p, sent.url)
        assert_verified(p, "sent")
        p.fill("#access", "WRONG-CODE-1")
        p.tap("section.download button[type=submit]")
        p.wait_for_selector("#error")
        assert (p.locator("#error h1").text_content() or "").strip() == t["error_forbidden"]
        fragment = "#" + sent.url.split("#", 1)[1]
        assert p.get_attribute("#back", "href") == f"/v/{sent.code}{fragment}"
        shot(p, f"phone-wrong-access-code-{lang}")
        p.tap("#back")
        p.wait_for_url(f"{server.base}/v/{sent.code}{fragment}")
        assert_verified(p, "sent")  # not amber: the pins came back with the reader
        assert script_errors(p) == []
    finally:
        ctx.close()


# --- a lying server ------------------------------------------------------------------------------

FORGER = LogSigner.generate("localhost/evidence-ledger")  # the ledger's default origin, another key


def _json_rule(code: str, change: Callable[[dict[str, Any]], None]) -> Tamper:
    def rule(path: str, ctype: str, body: bytes) -> bytes:
        if path != f"/v/{code}.json" or not ctype.startswith("application/json"):
            return body
        v = json.loads(body)
        change(v)
        return json.dumps(v).encode()
    return rule


def flip_proof_byte(v: dict[str, Any]) -> None:
    item = v["proofs"][-1]
    raw = bytearray(base64.b64decode(item["proof"][0]))
    raw[7] ^= 0x01
    item["proof"][0] = base64.b64encode(bytes(raw)).decode()


def resign_with_another_key(v: dict[str, Any]) -> None:
    note = parse_note(v["log"]["checkpoint"])
    assert note.text.split("\n")[0] == FORGER.name, "the forger must sign under the log's own name"
    v["log"]["checkpoint"] = sign_note(note.text, FORGER).to_text()
    v["log"]["head"] = sign_note(parse_note(v["log"]["head"]).text, FORGER).to_text()  # a whole forgery
    v["log"]["verifier_key"] = FORGER.verifier_key


def drop_the_head(v: dict[str, Any]) -> None:
    drop_the_void(v)
    del v["log"]["head"]


def forge_the_head(v: dict[str, Any]) -> None:
    """Leave out the void and sign, under the log's name but with the forger's key, a statement that
    the envelope ends where the served events end."""
    drop_the_void(v)
    lines = parse_note(v["log"]["head"]).text.split("\n")
    last = v["proofs"][-1]
    leaf = hashlib.sha256(b"\x00" + base64.b64decode(last["entry"])).digest()
    lines[4], lines[5], lines[6] = str(len(v["proofs"])), str(last["index"]), base64.b64encode(leaf).decode()
    v["log"]["head"] = sign_note("\n".join(lines), FORGER).to_text()


def claim_completed(v: dict[str, Any]) -> None:
    v["status"], v["label"] = "completed", "VALID"


def banner_says_completed(path: str, ctype: str, body: bytes) -> bytes:
    if not ctype.startswith("text/html"):
        return body
    html = body.decode()
    for old, new in (('data-status="withdrawn"', 'data-status="completed"'),
                     ("status-withdrawn", "status-completed"),
                     (EN["status_WITHDRAWN"], EN["status_VALID"])):
        html = html.replace(old, new)
    return html.encode()


def _html_rule(code: str, *swaps: tuple[str, str]) -> Tamper:
    def rule(path: str, ctype: str, body: bytes) -> bytes:
        if path != f"/v/{code}" or not ctype.startswith("text/html"):
            return body
        html = body.decode()
        for old, new in swaps:
            html = re.sub(old, new, html)
        return html.encode()
    return rule


def drop_the_void(v: dict[str, Any]) -> None:
    """Serve a voided envelope's proofs without its last three events (void requested, consented, voided)."""
    types = [json.loads(base64.b64decode(p["entry"]))["type"] for p in v["proofs"]]
    assert types[-3:] == ["void.requested", "void.consented", "envelope.voided"], types
    del v["proofs"][-3:]
    v["status"], v["label"] = "completed", "VALID"


@pytest.fixture(scope="module")
def liars(server: LedgerServer) -> Iterator[LyingProxies]:
    completed, withdrawn = server.copies["completed"].code, server.copies["withdrawn"].code
    voided = server.copies["voided"].code
    status_json = _json_rule(withdrawn, claim_completed)

    def status_lie(path: str, ctype: str, body: bytes) -> bytes:
        return banner_says_completed(path, ctype, status_json(path, ctype, body))

    real = document_sha(server, server.copies["completed"])
    fake = hashlib.sha256(forge(server.blob(real).read_bytes())).hexdigest()
    void_json = _json_rule(voided, drop_the_void)
    void_html = _html_rule(voided, ('data-status="voided"', 'data-status="completed"'),
                           ("status-voided", "status-completed"), (re.escape(EN["status_VOID"]), EN["status_VALID"]),
                           (r"<p>Voided on [^<]*</p>", ""),
                           (r"<tr><td>[^<]*</td><td>(void\.requested|void\.consented|envelope\.voided)</td>.*?</tr>\n?", ""))

    def substitute(path: str, ctype: str, body: bytes) -> bytes:
        """Another envelope's genuine, fresh facts (checkpoint, proofs, statement) for this copy's code."""
        if path != f"/v/{completed}.json":
            return body
        with urllib.request.urlopen(f"{server.base}/v/{voided}.json", timeout=10) as r:
            v = json.load(r)
        v["status"], v["label"] = "completed", "VALID"
        return json.dumps(v).encode()

    sent = server.copies["sent"].code
    served_outdated: list[str] = []

    def outdated_once(path: str, ctype: str, body: bytes) -> bytes:
        """The page as it was before the envelope's last event, the first time only (the page was made,
        then the envelope moved on): an honest race, not a lie."""
        if path != f"/v/{completed}" or not ctype.startswith("text/html") or served_outdated:
            return body
        served_outdated.append(path)
        html = body.decode()
        timeline = html.split('id="timeline"', 1)[1].split("</table>", 1)[0]
        rows = re.findall(r"<tr><td>.*?</tr>\n?", timeline)
        n = int(re.search(r'data-events="(\d+)"', html).group(1))  # type: ignore[union-attr]
        assert len(rows) == n, (len(rows), n)
        return html.replace(rows[-1], "").replace(f'data-events="{n}"', f'data-events="{n - 1}"').encode()

    proxies = LyingProxies(server.base, {
        "proof": _json_rule(completed, flip_proof_byte),
        "key": _json_rule(completed, resign_with_another_key),
        "status": status_lie,
        "banner": banner_says_completed,  # the HTML lies, the JSON tells the truth
        # "compare your copy" checks a picked file against the forger's hash, not the registered one
        "compare": _html_rule(completed, (f'data-sha256="{real}"', f'data-sha256="{fake}"')),
        "heading": _html_rule(withdrawn, ("status-withdrawn", "status-completed"),
                              (re.escape(EN["status_WITHDRAWN"]), EN["status_VALID"])),
        # a voided contract shown as valid by leaving out its last events
        "truncate": lambda path, ctype, body: void_html(path, ctype, void_json(path, ctype, body)),
        "nohead": lambda path, ctype, body: void_html(path, ctype, _json_rule(voided, drop_the_head)(
            path, ctype, body)),
        "forgedhead": lambda path, ctype, body: void_html(path, ctype, _json_rule(voided, forge_the_head)(
            path, ctype, body)),
        "substitute": substitute,
        # what the page shows besides the status: each fact must be what the signed events say
        "timeline": _html_rule(completed, (f"<td>{DETAILS['en']['sms']}</td>", f"<td>{DETAILS['en']['face']}</td>")),
        "parties": _html_rule(sent, (re.escape(EN["pending"]), EN["signed"])),
        # the event type in the page's words: a view shown as a signature
        "eventtype": _html_rule(completed, (f"<td>{re.escape(EVENTS['en']['party.viewed'])}</td>",
                                            f"<td>{EVENTS['en']['party.signed']}</td>")),
        # a withdrawn contract's unsigned party shown as still able to sign
        "notsigned": _html_rule(withdrawn, (re.escape(EN["not_signed"]), EN["pending"])),
        "copyno": _html_rule(completed, (r"printed copy no\. 1 ", "printed copy no. 2 ")),
        "docsize": _html_rule(completed, (r"\((\d+) B\)", r"(1\1 B)")),
        # a time: its exact instant (the words the page shows are made from it) or words beside it
        "voiddate": _html_rule(voided, (r'(Voided on <time datetime=")20', r"\g<1>19")),
        "time": _html_rule(completed, (r'(<tr><td><time datetime=")\d{4}', r"\g<1>2019")),
        "timewords": _html_rule(completed, (r"(<tr><td><time [^>]*>[^<]*</time>)</td>", r"\1 (2019)</td>")),
        "outdated": outdated_once,
        # a status that is no string: the reason's text must not throw the check out of its red state
        "objstatus": lambda path, ctype, body: banner_says_completed(path, ctype, _json_rule(
            withdrawn, lambda v: v.update(status={"toString": 0}))(path, ctype, body)),
        # the page claims it shows no events at all, every time: loaded again once, never in a loop
        "alwaysstale": _html_rule(completed, (r'data-events="\d+"', 'data-events="0"')),
        # the void hidden rather than removed: the check reads only what is on screen
        "hidden": _html_rule(voided, ('data-status="voided"', 'data-status="completed" hidden'),
                             (r'<p id="void-detail">', '<p id="void-detail" hidden>'),
                             (r"<tr><td>(<time [^>]*>[^<]*</time>)</td><td>"
                              + re.escape(EVENTS["en"]["envelope.voided"]) + "<",
                              r"<tr hidden><td>\1</td><td>" + EVENTS["en"]["envelope.voided"] + "<")),
    })
    proxies.start()
    try:
        yield proxies
    finally:
        proxies.stop()


LIES = {
    # rule: (copy, what the lie must change, the reason verify.js must give, screenshot)
    "proof": ("completed", {"json"}, "is not in the signed log", "lie-proof-byte-flipped"),
    "key": ("completed", {"json"}, "differs from the one pinned in your QR code", "lie-checkpoint-other-key"),
    "status": ("withdrawn", {"json", "html"}, 'the signed events say "WITHDRAWN", the page says "VALID"',
               "lie-status-withdrawn-as-valid"),
    "banner": ("withdrawn", {"html"}, "the banner differs from the signed events", "lie-banner-withdrawn-as-valid"),
    "compare": ("completed", {"html"}, "compares your file with another document", "lie-compare-forged-hash"),
    "truncate": ("voided", {"json", "html"}, "the log says this envelope has 16 events; the server showed 13",
                 "lie-void-events-dropped"),
    "nohead": ("voided", {"json", "html"}, "the server sent no signed statement of the envelope's events",
               "lie-void-events-dropped-no-statement"),
    "forgedhead": ("voided", {"json", "html"}, "the envelope statement is not signed by the log key",
                   "lie-void-events-dropped-forged-statement"),
    "substitute": ("completed", {"json"}, "none of the signed events printed the copy with this code",
                   "lie-another-envelope"),
    "timeline": ("completed", {"html"}, "of the timeline differs from the signed events", "lie-timeline-method"),
    "parties": ("sent", {"html"}, "the parties table differs from the signed events", "lie-party-signed"),
    "eventtype": ("completed", {"html"}, "of the timeline differs from the signed events", "lie-timeline-event-type"),
    "notsigned": ("withdrawn", {"html"}, "the parties table differs from the signed events", "lie-party-could-sign"),
    "copyno": ("completed", {"html"}, "another copy number than the signed events", "lie-copy-number"),
    "docsize": ("completed", {"html"}, "another document size than the signed events", "lie-document-size"),
    "voiddate": ("voided", {"html"}, "another void date than the signed events", "lie-void-date"),
    "time": ("completed", {"html"}, "row 1 of the timeline differs from the signed events", "lie-timeline-time"),
    "timewords": ("completed", {"html"}, "row 1 of the timeline differs from the signed events",
                  "lie-timeline-time-words"),
    "objstatus": ("withdrawn", {"json", "html"}, 'the signed events say "WITHDRAWN", the page says "?"',
                  "lie-status-not-a-string"),
    "hidden": ("voided", {"html"}, "the banner shows another status than the signed events", "lie-void-hidden"),
}


@pytest.mark.parametrize("rule", list(LIES))
def test_a_lying_server_never_gets_a_green_check(server: LedgerServer, liars: LyingProxies, page: Page,
                                                  rule: str) -> None:
    status, touched, reason, name = LIES[rule]
    copy: DemoCopy = server.copies[status]
    open_copy(page, copy.on(liars.base[rule]))
    assert_failed(page, reason)  # the box and the banner red, "compare your copy" closed
    shot(page, name)
    paths = set(liars.applied[rule])
    want = {f"/v/{copy.code}.json" if part == "json" else f"/v/{copy.code}" for part in touched}
    assert want <= paths, f"the proxy did not tell the lie it was meant to: changed {paths}, wanted {want}"


@pytest.mark.parametrize("rule, status, says", [
    ("proof", "completed", [REASONS["zh-CN"]["not_included"].split("{")[0]]),
    ("status", "withdrawn", ["“已撤回”", "“有效”"]),  # the statuses named in Chinese too
])
def test_a_lying_server_fails_in_the_page_language(server: LedgerServer, liars: LyingProxies, browser: Browser,
                                                  rule: str, status: str, says: list[str]) -> None:
    """On the Chinese page the red box says why in Chinese, as the English page does in English."""
    ctx = new_context(browser, locale="zh-CN")
    try:
        p = watched(ctx.new_page())
        open_copy(p, server.copies[status].on(liars.base[rule]))
        result, text = verify_outcome(p)
        assert result == "fail" and p.get_attribute("#verify", "class") == "verify fail", text
        assert border_colour(p, "#verify") == RED
        assert text.startswith(TEXT["zh-CN"]["verify_fail"].split("{")[0]), text
        assert all(s in text for s in says), text
        assert not re.search(r"[A-Za-z]{3,}", text), f"English words on the Chinese page: {text!r}"
        shot(p, f"lie-{rule}-zh-CN")
    finally:
        ctx.close()


def test_the_forged_checkpoint_is_well_signed(server: LedgerServer, liars: LyingProxies) -> None:
    """The re-signed checkpoint verifies under the forger's key: only the QR code's pin catches it."""
    code = server.copies["completed"].code
    with urllib.request.urlopen(f"{liars.base['key']}/v/{code}.json", timeout=10) as r:
        v = json.load(r)
    key = Ed25519Verifier.from_string(v["log"]["verifier_key"])
    assert v["log"]["verifier_key"] == FORGER.verifier_key
    verify_checkpoint(v["log"]["checkpoint"], key)  # raises if the signature does not verify
    fp = hashlib.sha256(FORGER.verifier.public_key).hexdigest()
    assert not fp.startswith(server.copies["completed"].pins["k"])


def test_a_qr_code_pinned_to_another_document_fails(server: LedgerServer, page: Page) -> None:
    copy, other = server.copies["completed"], server.copies["withdrawn"]
    assert other.pins["d"] != copy.pins["d"]
    open_copy(page, copy.on(server.base, fragment=f"k={copy.pins['k']}&d={other.pins['d']}"))
    assert_failed(page, "the document differs from the one pinned in your QR code")
    shot(page, "pin-other-document")


@pytest.mark.parametrize("rule, status, name", [
    ("heading", "withdrawn", "lie-heading-withdrawn-as-valid"),
])
def test_banner_and_omission_lies(server: LedgerServer, liars: LyingProxies, page: Page,
                                                   rule: str, status: str, name: str) -> None:
    copy = server.copies[status]
    open_copy(page, copy.on(liars.base[rule]))
    result, text = verify_outcome(page)
    assert banner(page) == ("failed", EN["status_failed"])
    shot(page, name)
    assert liars.applied[rule], "the proxy told no lie"
    assert result == "fail", f"a {status} contract is shown as VALID with a green check: {text!r}"


def test_without_a_key_pin_a_forged_key_is_never_green(server: LedgerServer, liars: LyingProxies, page: Page) -> None:
    """Opened without the QR code's fragment (a typed code, or a redirect that dropped it), a server
    signing with its own key passes every check but the pin: the box says so in amber, not green."""
    copy = server.copies["completed"]
    open_copy(page, copy.on(liars.base["key"], fragment=""))
    text = assert_unpinned(page)
    assert "scan the QR code on your paper" in text
    assert banner(page) == ("completed", EN["status_VALID"])
    shot(page, "unpinned-forged-key")
    page.goto("about:blank")  # else only the fragment changes, and the page is not loaded again
    open_copy(page, copy.on(liars.base["key"], fragment="k=12&d=34"))  # a pin too short to be one
    assert_failed(page, "the pins in this address are malformed")


def test_a_page_made_before_the_envelopes_last_event_loads_again_once(server: LedgerServer, liars: LyingProxies,
                                                                      page: Page) -> None:
    """Honest but out of date (the envelope moved on between the page and its check): the page is loaded
    again, once, and then verifies; it is not shown as a failure."""
    copy = server.copies["completed"]
    open_copy(page, copy.on(liars.base["outdated"]))
    page.wait_for_function("() => document.querySelector('#verify[data-result]') !== null")
    assert_verified(page)
    assert liars.applied["outdated"] == [f"/v/{copy.code}"], "the out-of-date page was served once"
    rows = page.locator("#timeline tr").count()
    assert rows == int(page.get_attribute("#verify", "data-events") or 0) and rows > 0


def test_a_page_that_always_claims_to_be_out_of_date_is_loaded_again_only_once(
        server: LedgerServer, liars: LyingProxies, page: Page) -> None:
    copy = server.copies["completed"]
    liars.applied["alwaysstale"].clear()
    open_copy(page, copy.on(liars.base["alwaysstale"]))
    page.wait_for_function("() => document.querySelector('#verify[data-result]') !== null")
    assert_verified(page)  # the rows are all there: only the hint lied
    assert liars.applied["alwaysstale"] == [f"/v/{copy.code}"] * 2, liars.applied["alwaysstale"]
    assert page.evaluate("() => sessionStorage.length") == 0, "the mark is cleared once a check completed"
