"""`verifier page FILE.json --key VKEY`: the browser's checks of a copy page, offline, on its saved JSON."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.envelopes.public import copy_view
from tests.evidence.conftest import TENANT, World
from verifier import cli as verifier_cli
from verifier.evidence.page import verify_page


@pytest.fixture(scope="module")
def saved(world: World) -> dict[str, Any]:
    """The JSON `/v/<code>.json` answers for the completed envelope's printed copy, as a browser saves it."""
    led = world.led
    env = led.envelope(TENANT, world.refs["completed"])["env"]
    (code,) = led.log._reader().execute("SELECT code FROM copies WHERE env = ?", (env,)).fetchone()
    v = copy_view(led, code)
    assert v is not None
    v["log"]["head"] = led.envelope_head(env, v["log"]["size"])
    return json.loads(json.dumps(v))


def test_a_saved_page_verifies(world: World, saved: dict[str, Any]) -> None:
    rep = verify_page(saved, world.led.verifier)
    assert rep.ok, [c.line() for c in rep.failures()]
    assert {c.name for c in rep.checks} >= {"checkpoint", "envelope head", "events", "all events", "this copy",
                                            "status", "document", "parties", "timeline", "times"}
    assert "portal's statement" in rep.verdict() and "taken from the file" in rep.verdict()
    now = datetime.now(UTC)
    assert verify_page(saved, world.led.verifier, at=now, code=saved["code"],
                       document_pin=saved["document"]["sha256"][:32]).ok


def _changed(saved: dict[str, Any], change: Any) -> dict[str, Any]:
    v = copy.deepcopy(saved)
    change(v)
    return v


@pytest.mark.parametrize(("what", "change", "failed"), [
    ("status", lambda v: v.update(status="withdrawn"), "status"),
    ("document", lambda v: v["document"].update(size=v["document"]["size"] + 1), "document"),
    ("party", lambda v: v["parties"][1].update(signed=False), "parties"),
    ("timeline", lambda v: v["timeline"].pop(), "timeline"),
    ("times", lambda v: v["times"].update(completed="2020-01-01T00:00:00.000Z"), "times"),
    ("copy", lambda v: v.update(copy=v["copy"] + 1), "this copy"),
    ("an event left out", lambda v: v["proofs"].pop(), "all events"),
    ("a proof", lambda v: v["proofs"][0]["proof"].reverse(), "events"),
])
def test_what_the_page_states_is_what_the_events_say(world: World, saved: dict[str, Any], what: str, change: Any,
                                                      failed: str) -> None:
    rep = verify_page(_changed(saved, change), world.led.verifier)
    assert not rep.ok and failed in {c.name for c in rep.failures()}, (what, [c.line() for c in rep.failures()])


def test_keys_codes_pins_and_age(world: World, saved: dict[str, Any]) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from verifier.note import Ed25519Signer

    stranger = Ed25519Signer(world.led.log.origin, Ed25519PrivateKey.generate()).verifier
    assert not verify_page(saved, stranger).ok
    assert "this copy" in {c.name for c in verify_page(saved, world.led.verifier, code="0" * 20).failures()}
    assert not verify_page(saved, world.led.verifier, document_pin="ffff").ok
    late = datetime.now(UTC) + timedelta(hours=1)
    rep = verify_page(saved, world.led.verifier, at=late)
    assert not rep.ok and "signed at" in rep.verdict()


def test_the_command(world: World, saved: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "page.json"
    path.write_text(json.dumps(saved))
    key = world.led.verifier_key
    assert verifier_cli.main(["page", str(path), "--key", key, "--code", saved["code"]]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("VERIFIED copy page")
    path.write_text(json.dumps(_changed(saved, lambda v: v.update(status="voided"))))
    assert verifier_cli.main(["page", str(path), "--key", key, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False
    path.write_text("{not json")
    assert verifier_cli.main(["page", str(path), "--key", key]) == 1
    assert "not the JSON of a copy page" in capsys.readouterr().out
