"""The `verifier` command is as strict as the library: the public consistency vectors give the same
verdict through it, malformed evidence is NOT VERIFIED (malformed) naming the file, and arguments it
cannot use are refused by argparse (exit 2), never with a traceback."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.envelopes.core import Ledger
from verifier import cli
from verifier.note import CosignatureSigner, Ed25519Signer, sign_note

SIGNER = Ed25519Signer("vectors.example/log", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
KEY = SIGNER.verifier.to_string()
HASH = base64.b64encode(bytes(range(32))).decode()


def verifier(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(args))
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


@pytest.fixture
def led(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger.init(tmp_path / "home")
    for ref in ("E", "F", "G"):  # one checkpoint each
        ledger.append("t", [{"type": "envelope.created", "envelope": ref, "title": "x"}])
    yield ledger
    ledger.close()


# ---- the consistency vectors, through the command ----------------------------------------------

def _checkpoint(path: Path, size: int, root: str | None) -> None:
    path.write_text(sign_note(f"{SIGNER.name}\n{size}\n{root or ''}\n", SIGNER).to_text())


def test_every_consistency_vector_gets_the_library_verdict_through_the_command(
        capsys: pytest.CaptureFixture[str], vectors: Path, tmp_path: Path) -> None:
    files = sorted((vectors / "rfc6962-proofs" / "consistency").rglob("*.json"))
    assert len(files) > 50
    garbage = ok = refused = 0
    for f in files:
        v = json.loads(f.read_text())
        name = str(f.relative_to(vectors))
        _checkpoint(tmp_path / "old", v["size1"], v["root1"])
        _checkpoint(tmp_path / "new", v["size2"], v["root2"])
        # the served form (GET /proof/consistency): one base64 hash a line; an empty hash, a blank line
        (tmp_path / "proof").write_text("".join(h + "\n" for h in v["proof"] or []))
        code, out, err = verifier(capsys, "consistency", str(tmp_path / "old"), str(tmp_path / "new"),
                                  "--proof", str(tmp_path / "proof"), "--key", KEY)
        # a checkpoint root is a 32-byte hash: the few vectors with other roots cannot be a checkpoint pair
        # (the library takes them), so the command refuses their checkpoints as malformed, whatever wantErr says
        roots_fit = all(len(base64.b64decode(r or "")) == 32 for r in (v["root1"], v["root2"]))
        if v["wantErr"] or not roots_fit:
            assert code == 1 and out.startswith("NOT VERIFIED ("), (name, out, err)
            refused += 1
        else:
            assert code == 0 and out == f"VERIFIED size {v['size2']} extends size {v['size1']}\n", (name, out, err)
            ok += 1
        if "garbage" in f.name:
            assert out.startswith(f"NOT VERIFIED (malformed): {tmp_path / 'proof'}"), (name, out)
            garbage += 1
    assert garbage == 8 and ok >= 5 and refused >= 50


def test_the_served_proof_form_verifies_and_nothing_looser_does(capsys: pytest.CaptureFixture[str], led: Ledger,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "old").write_text(led.log.checkpoint_at(1))
    (tmp_path / "new").write_text(led.log.latest_checkpoint)
    lines = [base64.b64encode(h).decode() for h in led.log.consistency_proof(1, 3)]
    assert len(lines) == 2

    def run(proof: bytes, old: str = "old") -> tuple[int, str, str]:
        (tmp_path / "proof").write_bytes(proof)
        return verifier(capsys, "consistency", str(tmp_path / old), str(tmp_path / "new"),
                        "--proof", str(tmp_path / "proof"), "--key", led.verifier_key)

    served = "".join(ln + "\n" for ln in lines).encode()
    assert run(served) == (0, "VERIFIED size 3 extends size 1\n", "")
    assert run(b"", old="new") == (0, "VERIFIED size 3 extends size 3\n", "")  # equal sizes: an empty proof
    a, b = lines
    for bad, why in ((f"\n{a}\n{b}\n", "line 1 is empty"),
                     (f"{a}\n{b}\n\n", "line 3 is empty"),
                     (f"{a}\n\n{b}\n", "line 2 is empty"),
                     (f"{a}\n{b}", "does not end with a newline"),
                     (f"{a}\r\n{b}\r\n", "line 1 is not base64"),
                     (f" {a}\n{b}\n", "line 1 is not base64"),
                     (f"{a} {b}\n", "line 1 is not base64"),
                     (f"{a}\t\n{b}\n", "line 1 is not base64"),
                     (f"{a}\n@@@@\n", "line 2 is not base64"),
                     (f"{a}\n{b[:-1]}\n", "line 2 is not base64"),  # no padding
                     (f"{a}\n{base64.b64encode(bytes(31)).decode()}\n", "line 2 is a 31-byte hash, not 32"),
                     (f"{a}\n{base64.b64encode(bytes(64)).decode()}\n", "line 2 is a 64-byte hash, not 32"),
                     ("\n", "line 1 is empty")):
        code, out, err = run(bad.encode())
        assert (code, err) == (1, ""), (bad, out, err)
        assert out.startswith(f"NOT VERIFIED (malformed): {tmp_path / 'proof'}: "), (bad, out)
        assert why in out and out.count("\n") == 1, (bad, out)
    code, out, _ = run(b"\xff\xfe" + served)
    assert code == 1 and out.startswith(f"NOT VERIFIED (malformed): {tmp_path / 'proof'}: ") and "ASCII" in out, out


# ---- malformed evidence names the file ----------------------------------------------------------

def test_an_entry_that_is_not_base64_is_malformed(capsys: pytest.CaptureFixture[str], led: Ledger,
                                                  tmp_path: Path) -> None:
    (tmp_path / "p").write_text(led.prove(1).to_text())
    good = base64.b64encode(led.log.entry(1))
    (tmp_path / "e").write_bytes(good + b"\n")
    proof = ["proof", str(tmp_path / "p"), "--entry", str(tmp_path / "e"), "--entry-base64", "--key", led.verifier_key]
    code, out, _ = verifier(capsys, *proof)
    assert code == 0 and out.startswith("VERIFIED entry 1"), out
    (tmp_path / "bundle").write_text("{}")
    anchored = ["anchored", str(tmp_path / "bundle"), "--key", led.verifier_key, "--root",
                str(led.home / "tsa" / "tsa-root.pem"), "--at", "2026-01-01T00:00:00Z", "--entry", str(tmp_path / "e"),
                "--entry-base64"]
    for bad in (b"!!not base64!!", good[:-1], b"\xff\xfe", b"QUJD\nQUJD"):  # bad characters, padding, bytes, lines
        (tmp_path / "e").write_bytes(bad)
        for args in (proof, anchored):
            code, out, err = verifier(capsys, *args)
            assert (code, err) == (1, ""), (args[0], bad, out, err)
            assert out.startswith(f"NOT VERIFIED (malformed): {tmp_path / 'e'}: not base64"), (args[0], bad, out)


def test_a_base64_entry_given_as_raw_bytes_gets_a_hint(capsys: pytest.CaptureFixture[str], led: Ledger,
                                                        tmp_path: Path) -> None:
    entry = tmp_path / "e.b64"
    entry.write_bytes(base64.b64encode(led.log.entry(1)) + b"\n")  # as `ledger prove 1 --entry | tail -1` writes it
    (tmp_path / "p").write_text(led.prove(1).to_text())
    proof = ["proof", str(tmp_path / "p"), "--entry", str(entry), "--key", led.verifier_key]
    code, out, _ = verifier(capsys, *proof)
    assert code == 1 and out.startswith("NOT VERIFIED (root_mismatch): root mismatch: expected "), out
    assert out.endswith(f"; {entry} looks like base64 of a JSON entry: add --entry-base64\n") and out.count("\n") == 1
    code, out, _ = verifier(capsys, *proof, "--entry-base64")
    assert code == 0 and out.startswith("VERIFIED entry 1"), out
    from verifier.anchored import AnchoredBundle

    (tmp_path / "bundle").write_text(AnchoredBundle(1, led.log.entry(1), led.prove(1).to_text(), ()).to_text())
    anchored = ["anchored", str(tmp_path / "bundle"), "--key", led.verifier_key, "--root",
                str(led.home / "tsa" / "tsa-root.pem"), "--at", "2026-01-01T00:00:00Z", "--entry", str(entry)]
    code, out, _ = verifier(capsys, *anchored)
    assert code == 1 and out == ("NOT VERIFIED (entry_mismatch): the bundle proves a different entry than the one "
                                 f"given; {entry} looks like base64 of a JSON entry: add --entry-base64\n"), out
    for other in (b"not the entry", base64.b64encode(b"[1, 2]"), base64.b64encode(b"\xff{")):  # no hint for these
        entry.write_bytes(other)
        code, out, _ = verifier(capsys, *proof)
        assert code == 1 and "root mismatch" in out and "--entry-base64" not in out, (other, out)
        code, out, _ = verifier(capsys, *anchored)
        assert code == 1 and "entry_mismatch" in out and "--entry-base64" not in out, (other, out)


def test_a_head_that_is_not_utf8_is_malformed(capsys: pytest.CaptureFixture[str], led: Ledger,
                                              tmp_path: Path) -> None:
    env = str(led.envelope("t", "G")["env"])
    head = led.envelope_head(env, 3)
    (tmp_path / "head").write_text(head)
    code, out, _ = verifier(capsys, "head", str(tmp_path / "head"), "--key", led.verifier_key)
    assert code == 0 and out.startswith(f"VERIFIED envelope {env}"), out
    (tmp_path / "head").write_bytes(b"\xff" + head.encode())
    code, out, err = verifier(capsys, "head", str(tmp_path / "head"), "--key", led.verifier_key)
    assert (code, err) == (1, "") and out.startswith(f"NOT VERIFIED (malformed): {tmp_path / 'head'}: "), out + err
    assert "UTF-8" in out


# ---- arguments ---------------------------------------------------------------------------------

def test_max_age_is_a_positive_finite_number_of_minutes(capsys: pytest.CaptureFixture[str], led: Ledger,
                                                       tmp_path: Path) -> None:
    env = str(led.envelope("t", "G")["env"])
    (tmp_path / "head").write_text(led.envelope_head(env, 3))
    now = datetime.now(UTC).isoformat()
    args = ["head", str(tmp_path / "head"), "--key", led.verifier_key, "--at", now]
    for good in ("10", "0.5", "1440", "525600"):
        code, out, err = verifier(capsys, *args, f"--max-age={good}")
        assert code == 0 and out.startswith("VERIFIED envelope"), (good, out, err)
    for bad in ("inf", "-inf", "1e20", "nan", "-5", "0", "-0", "ten", "", "1e400"):
        code, out, err = verifier(capsys, *args, f"--max-age={bad}")
        assert code == 2 and out == "", (bad, out, err)
        assert f"argument --max-age: {bad!r} is not a number of minutes" in err, (bad, err)
    code, _, err = verifier(capsys, *args, "--max-age", "-5")  # as the review typed it
    assert code == 2 and "argument --max-age: '-5' is not a number of minutes" in err, err


def test_cosign_refuses_a_time_before_1970(capsys: pytest.CaptureFixture[str], led: Ledger, tmp_path: Path) -> None:
    witness, key_file = CosignatureSigner.generate("notary.example/w1")
    (tmp_path / "w.key").write_bytes(key_file)
    (tmp_path / "cp").write_text(led.log.latest_checkpoint)
    args = ["cosign", str(tmp_path / "cp"), "--key", led.verifier_key, "--witness-key", str(tmp_path / "w.key"), "--at"]
    code, out, _ = verifier(capsys, *args, "1970-01-01T00:00:00Z")
    assert code == 0 and out.startswith(led.log.latest_checkpoint) and witness.verifier.name in out, out
    for bad in ("1960-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00", "0001-01-01T00:00:00Z"):
        code, out, err = verifier(capsys, *args, bad)
        assert code == 2 and out == "", (bad, out, err)
        assert f"argument --at: {bad!r} is before 1970" in err, (bad, err)
