"""What `ledger serve` writes to its log holds no secret: no API key, no access code, no QR code
secret beyond what the log already publishes, no name or contact of a party, not even on refusals."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ledger.access.apikeys import create_key
from ledger.envelopes.core import Ledger
from ledger.envelopes.demo import demo_pdf
from tests.portal.test_serve_workers import _port, _start

NAME, CONTACT, FILE = "Zhao Secretname", "zhao.secret@example.com", "very-private-lease.pdf"


def _call(url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
          method: str | None = None) -> tuple[int, bytes]:
    r = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_server_log_holds_no_secrets(tmp_path: Path) -> None:
    home = tmp_path / "home"
    led = Ledger.init(home)
    key = create_key(led.log, "t", ["append", "read"])
    led.close()
    port = _port()
    proc = _start(home, port)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    wrong = key[:-6] + "AAAAAA"
    try:
        assert _call(f"{base}/api/v1/envelopes", body=json.dumps({"envelope": "E1", "title": "Lease"}).encode(),
                     headers=auth)[0] == 201
        pdf = demo_pdf("Lease", "The lease.")
        q = urllib.parse.urlencode({"document": "main", "name": FILE, "download": "code"})
        status, out = _call(f"{base}/api/v1/envelopes/E1/documents?{q}", body=pdf,
                            headers={**auth, "Content-Type": "application/pdf"})
        assert status == 201, out
        access = json.loads(out)["acks"][0]["access_code"]
        party = {"party": "p1", "role": "signer", "name": NAME, "contact": CONTACT}
        assert _call(f"{base}/api/v1/envelopes/E1/parties", body=json.dumps(party).encode(), headers=auth)[0] == 201
        assert _call(f"{base}/api/v1/envelopes/E1/events", body=b'{"type": "envelope.sent"}', headers=auth)[0] == 201
        status, out = _call(f"{base}/api/v1/envelopes/E1/copies", body=json.dumps({"document": "main"}).encode(),
                            headers=auth)
        assert status == 201, out
        code = json.loads(out)["acks"][0]["code"]
        # refusals of every kind, each carrying something secret
        assert _call(f"{base}/api/v1/envelopes/E1", headers={"Authorization": f"Bearer {wrong}"})[0] == 401
        assert _call(f"{base}/api/v1/envelopes/E1/parties", body=json.dumps(party).encode(), headers=auth)[0] == 409
        assert _call(f"{base}/api/v1/envelopes/E1/parties", body=b'{"name": "' + NAME.encode() + b'", ',
                     headers=auth)[0] == 400
        assert _call(f"{base}/api/v1/events", headers=auth, body=json.dumps(
            [{"type": "party.signed", "envelope": "E1", "party": "p1", "channel": "app", "document": "main",
              "signed_sha256": "0" * 64, "note": NAME}]).encode())[0] in (400, 409, 422)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert _call(f"{base}/v/{code}/document", body=b"access_code=" + access[::-1].encode(), headers=form)[0] == 403
        status, doc = _call(f"{base}/v/{code}/document", body=f"access_code={access}".encode(), headers=form)
        assert status == 200 and doc == pdf
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
    assert "serving" in output and "anchor" in output, f"the server's log was not captured: {output!r}"
    secret = key.rsplit("_", 1)[1]
    for name, value in {"API key": secret, "presented key": wrong.rsplit("_", 1)[1], "access code": access,
                        "party name": NAME, "contact": CONTACT, "document name": FILE}.items():
        assert value not in output, f"the {name} is in the server's log:\n{output}"
