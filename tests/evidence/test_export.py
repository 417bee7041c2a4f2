"""Export then verify, for envelopes in every state: the verdict, the status, interim, what a bundle holds,
the `ledger export` and `verifier verify` commands and what the verifier trusts."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import cli as ledger_cli
from ledger.documents.sealca import SEAL_CERT_FILE
from ledger.envelopes.core import SEAL_DIR, Ledger
from ledger.envelopes.queries import envelope_events
from tests.evidence.conftest import STATES, TENANT, World, verify
from verifier import cli as verifier_cli
from verifier.evidence.bundle import Trust
from verifier.evidence.manifest import parse_manifest
from verifier.note import CosignatureSigner, Ed25519Signer


@pytest.mark.parametrize("state", STATES)
def test_every_state_exports_and_verifies(world: World, state: str) -> None:
    data = world.export(state)
    rep = verify(data)
    assert rep.ok, "\n".join(c.line() for c in rep.failures())
    manifest = parse_manifest(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))
    assert manifest.envelope.status == state
    assert manifest.interim == (state in ("draft", "sent"))
    assert f"replay to status {state!r}" in rep.verdict()
    assert ("INTERIM" in rep.verdict()) == manifest.interim
    assert next(c for c in rep.checks if c.name == "lifecycle").ok
    # the export recorded itself, and the bundle holds that record
    events = envelope_events(world.led, TENANT, world.refs[state])["events"]
    assert events[-1]["type"] == "evidence.exported"
    assert manifest.entries[-1].index == events[-1]["index"]


def test_the_completed_bundle_holds_every_kind_of_evidence(world: World) -> None:
    data = world.export("completed")
    z = zipfile.ZipFile(io.BytesIO(data))
    names = z.namelist()
    assert names[:3] == ["manifest.json", "VERIFY.md", "report.pdf"]
    m = parse_manifest(z.read("manifest.json"))
    kinds = {(v.kind, v.file is not None) for d in m.documents for v in d.versions}
    assert kinds == {("original", True), ("signed", True), ("signed", False), ("scan", True), ("sealed", True)}
    assert any(n.endswith(".png") for n in names) and any("sealed" in n for n in names)
    assert m.log.consistency and m.log.head and m.log.anchors and m.seal_roots and m.log.tsa_roots
    assert len(m.openings) >= 8  # title, owner, names, references, the export's `by`
    assert {f.path for f in m.files} == set(names) - {"manifest.json"}
    rep = verify(data)
    lines = "\n".join(rep.lines())
    assert "cosigned by notary.test/w1" in lines and "sealed by" in lines
    assert "1 version(s) registered by hash only" in lines
    assert "the bundle holds every one of its" in lines  # the envelope head
    # the report embeds the evidence manifest: manifest.json without the report
    assert m.report is not None and m.evidence().report is None


def test_the_trust_options(world: World) -> None:
    data = world.export("completed")
    led = world.led
    assert "log key was taken from the bundle" in verify(data).verdict()
    mine = verify(data, Trust(log_key=led.verifier, tsa_roots=(led.local_tsa.root_der,),  # type: ignore[union-attr]
                              witnesses=(world.notary.verifier,)))
    assert mine.ok and "taken from the bundle itself (give --log-key" not in mine.verdict()
    assert "TSA roots were taken" not in mine.verdict() and "witness keys were taken" not in mine.verdict()
    stranger = Ed25519Signer(led.log.origin, Ed25519PrivateKey.generate()).verifier
    rep = verify(data, Trust(log_key=stranger))
    assert not rep.ok and rep.failures()[0].name == "log key"
    witness, _ = CosignatureSigner.generate("notary.other/w9")
    rep = verify(data, Trust(witnesses=(witness.verifier,)))
    assert not rep.ok and any("notary.other/w9 cosigned no checkpoint" in c.detail for c in rep.failures())
    from tests.pki import make_root

    rep = verify(data, Trust(tsa_roots=(make_root("Someone Else's Root").der,)))
    assert not rep.ok and {c.name for c in rep.failures()} >= {"anchor"}


def test_judged_after_the_seal_certificate_expired_the_seals_stand_on_their_time_stamps(world: World) -> None:
    """The local seal's certificate is valid for 3 years, the local TSA's for 10: judged 4 years on, every
    seal (the documents' and the report's) still holds, on its time-stamp's proof of existence."""
    from cryptography import x509

    seal_cert = x509.load_pem_x509_certificate((world.led.home / SEAL_DIR / SEAL_CERT_FILE).read_bytes())
    at = seal_cert.not_valid_after_utc + timedelta(days=365)
    rep = verify(world.export("completed"), at=at)
    assert rep.ok, [c.detail for c in rep.failures()]
    seals = [c for c in rep.checks if c.name in ("document seal", "report seal")]
    assert {c.name for c in seals} == {"document seal", "report seal"}
    assert all("valid at its time-stamp" in c.detail and "not valid now" in c.detail for c in seals), seals


def test_judged_long_after_the_tsa_certificate_expired(world: World) -> None:
    """The local TSA's certificate is valid for 10 years; at a moment after that, with no renewal by a
    TSA whose certificate outlives it, the anchors no longer stand."""
    rep = verify(world.export("withdrawn"), at=datetime(2100, 1, 1, tzinfo=UTC))
    assert not rep.ok
    assert any(c.name == "anchor" and "expired" in c.detail for c in rep.failures())


def test_the_commands(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    led = world.led
    out = tmp_path / "b.zip"
    code = ledger_cli.main(["--home", str(led.home), "export", world.refs["declined"], "--tenant", TENANT,
                            "--lang", "en", "-o", str(out)])
    said = json.loads(capsys.readouterr().out)
    assert code == 0 and said["status"] == "declined" and said["self_check"] == "passed"
    assert out.stat().st_mode & 0o777 == 0o600
    assert verifier_cli.main(["verify", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[-1].startswith("VERIFIED bundle") and "judged at the moment the bundle was made" in text
    vkey = tmp_path / "log.vkey"
    vkey.write_text(led.verifier_key)
    root = tmp_path / "tsa-root.pem"
    root.write_bytes((led.home / "tsa" / "tsa-root.pem").read_bytes())
    later = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")  # judged a month on
    assert verifier_cli.main(["verify", str(out), "--json", "--log-key", str(vkey), "--trust-tsa", str(root),
                              "--trust-seal", str(led.home / "seal" / "seal-root.pem"),
                              "--at", later]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["envelope"]["status"] == "declined" and report["at"].startswith(later[:10])
    assert not any("taken from the bundle itself" in c for c in report["caveats"] if "witness" not in c)
    assert verifier_cli.main(["verify", str(out), "--log-key", "not+a+key"]) == 2
    assert ledger_cli.main(["--home", str(led.home), "export", "NO-SUCH", "--tenant", TENANT, "-o",
                            str(tmp_path / "x.zip")]) == 2
    assert not (tmp_path / "x.zip").exists()
    capsys.readouterr()


def test_when_the_export_itself_cannot_be_anchored(ledger: Ledger) -> None:
    """A process that cannot anchor (a worker) bundles the events up to the latest anchored checkpoint that
    holds them all; with none, it is refused (503), and says when to try again."""
    from ledger.evidence import bundle as exporter

    ledger.append("t", [{"type": "envelope.created", "envelope": "E", "title": "Lease"}])
    env = str(ledger.envelope("t", "E")["env"])
    (ack,) = ledger.append("t", [exporter.export_event("E", "a worker")])
    assert exporter.proof_size(ledger, ack["index"]) is None
    with pytest.raises(exporter.NotAnchoredError) as e:
        exporter.fallback_size(ledger, env, ack["index"])
    assert e.value.status == 503 and "anchor" in str(e.value)
    exporter.anchor_now(ledger)  # the writer's loop anchors the latest checkpoint, which holds both
    (late,) = ledger.append("t", [exporter.export_event("E", "a worker")])
    size = exporter.fallback_size(ledger, env, late["index"])
    assert size == late["index"]  # the anchored tree ends just before the second export
    made = exporter.build(ledger, "t", "E", size=size, head=exporter.sign_head(ledger, env, size), lang="en")
    rep = verify(b"".join(made.chunks()))
    assert rep.ok, [c.line() for c in rep.failures()]
    assert made.manifest.log.head is None and made.manifest.envelope.events == 2  # created, the first export
