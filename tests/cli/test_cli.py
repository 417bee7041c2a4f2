"""The command lines, run for real as the console scripts, and the README that documents them."""

from __future__ import annotations

import argparse
import json
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.cli import COMMANDS
from ledger.config import Config
from tests.conftest import ROOT
from tests.envelopes.test_lifecycle import completed

BIN = Path(sys.executable).parent
README = (ROOT / "README.md").read_text()


def run(home: Path, *args: str, input: str | None = None, tool: str = "ledger") -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / tool)] + (["--home", str(home)] if tool == "ledger" else []) + list(args)
    return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("cli") / "home"
    r = run(h, "init", "--origin", "ledger.example.test/log")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"ledger\.example\.test/log\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+\n", r.stdout)
    return h


def test_init_makes_a_private_key_and_refuses_twice(home: Path) -> None:
    assert stat.S_IMODE((home / "log.key").stat().st_mode) == 0o600
    r = run(home, "init")
    assert r.returncode == 2 and "already exists" in r.stderr


def test_append_from_file_and_stdin(home: Path, tmp_path: Path) -> None:
    f = tmp_path / "events.json"
    f.write_text(json.dumps(completed("CLI-1")))
    r = run(home, "append", str(f))
    assert r.returncode == 0, r.stderr
    acks = [json.loads(line) for line in r.stdout.splitlines()]
    assert [a["seq"] for a in acks] == list(range(len(completed("CLI-1"))))
    r = run(home, "append", input=json.dumps({"type": "copy.printed", "envelope": "CLI-1", "document": "d"}))
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["code"]) == 20


def test_append_refusal_is_clear_and_writes_nothing(home: Path) -> None:
    before = json.loads(run(home, "status", "--json").stdout)["size"]
    r = run(home, "append", input='{"type": "envelope.created", "envelope": "X", "title": 1.5}')
    assert r.returncode == 2
    assert "not an integer" in r.stderr and "Traceback" not in r.stderr
    r = run(home, "append", input=b"\xff\xfe".decode("latin-1"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert json.loads(run(home, "status", "--json").stdout)["size"] == before


def test_import_json_lines_stops_at_the_first_refused_line(home: Path, tmp_path: Path) -> None:
    lines = [json.dumps(e) for e in completed("IMP-1")]
    good = len(lines)
    lines.append(json.dumps({"type": "envelope.sent", "envelope": "IMP-1"}))  # refused: already completed
    lines += [json.dumps(e) for e in completed("IMP-2")]
    f = tmp_path / "bulk.jsonl"
    f.write_text("\n".join(lines) + "\n")
    before = json.loads(run(home, "status", "--json").stdout)["size"]
    r = run(home, "import", str(f), "--batch", str(good))
    assert r.returncode == 2
    assert f"line {good + 1}:" in r.stderr and "wrong_state" in r.stderr
    assert json.loads(run(home, "status", "--json").stdout)["size"] == before + good
    r = run(home, "status", "--envelope", "IMP-1")
    assert json.loads(r.stdout)["status"] == "completed"


def test_prove_and_verify_offline(home: Path, tmp_path: Path) -> None:
    info = json.loads(run(home, "status", "--json").stdout)
    key = info["verifier_key"]
    r = run(home, "prove", "2", "--entry")
    assert r.returncode == 0, r.stderr
    *proof_lines, entry_line = r.stdout.rstrip("\n").split("\n")
    (tmp_path / "p.tlog-proof").write_text("\n".join(proof_lines) + "\n")
    (tmp_path / "e.b64").write_text(entry_line)
    v = run(home, "proof", str(tmp_path / "p.tlog-proof"), "--entry", str(tmp_path / "e.b64"), "--entry-base64",
            "--key", key, tool="verifier")
    assert v.returncode == 0 and v.stdout.startswith("VERIFIED entry 2"), v.stdout + v.stderr
    (tmp_path / "e.b64").write_text(entry_line[:-4] + "AAA=")
    v = run(home, "proof", str(tmp_path / "p.tlog-proof"), "--entry", str(tmp_path / "e.b64"), "--entry-base64",
            "--key", key, tool="verifier")
    assert v.returncode == 1 and "NOT VERIFIED" in v.stdout


def test_checkpoint_verifies_and_audit_passes(home: Path, tmp_path: Path) -> None:
    r = run(home, "checkpoint")
    (tmp_path / "cp").write_text(r.stdout)
    key = json.loads(run(home, "status", "--json").stdout)["verifier_key"]
    v = run(home, "checkpoint", str(tmp_path / "cp"), "--key", key, tool="verifier")
    assert v.returncode == 0 and "VERIFIED checkpoint" in v.stdout
    a = run(home, "audit")
    assert a.returncode == 0 and "audit passed" in a.stdout, a.stdout


def test_commands_without_a_ledger_fail_clearly(tmp_path: Path) -> None:
    r = run(tmp_path / "nothing", "status")  # the request names a folder that is not there (README: exit 2)
    assert r.returncode == 2 and "no ledger folder" in r.stderr and "ledger init" in r.stderr
    assert "Traceback" not in r.stderr
    (tmp_path / "empty").mkdir()
    r = run(tmp_path / "empty", "status")  # a folder with no ledger in it
    assert r.returncode == 1 and "ledger init" in r.stderr and "Traceback" not in r.stderr


def test_every_tenant_option_says_what_it_is() -> None:
    from ledger.cli import _parser

    def parsers(p: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    yield name, sub
                    yield from parsers(sub)

    tenants = [(name, a) for name, sub in parsers(_parser()) for a in sub._actions if "--tenant" in a.option_strings]
    assert sorted(name for name, _ in tenants) == ["add", "append", "create", "export", "import", "list",
                                                  "print", "retire", "seal", "status"]
    for name, a in tenants:
        assert a.help and "tenant" in a.help, f"`{name} --tenant` has no help"
    r = subprocess.run([str(BIN / "ledger"), "status", "--help"], capture_output=True, text=True, timeout=60)
    assert "default: default" in " ".join(r.stdout.split()) and "tenant demo" in " ".join(r.stdout.split())
    assert "in the tenant `demo`" in " ".join(README.split()) and "tenant `default`" in " ".join(README.split())


def test_the_readme_says_what_each_position_of_a_party_is() -> None:
    from dataclasses import fields

    from verifier.lifecycle import EnvelopeState, Party

    positions = "[" + ", ".join(f.name for f in fields(Party)) + "]"
    assert f"its positions `{positions}`" in " ".join(README.split()), positions
    state = EnvelopeState(parties=(Party("signer", 1, True, True, False, True),)).to_json()
    assert state["parties"] == [["signer", 1, True, True, False, True]]  # the form the README shows
    assert '`["signer",1,true,true,false,true]`' in README
    for key in state:
        assert f"`{key}`" in README, key


def test_every_command_and_config_key_is_in_the_readme() -> None:
    for cmd in COMMANDS:
        assert f"`ledger {cmd}" in README, f"ledger {cmd} is not documented in README.md"
    for cmd in ("checkpoint", "proof", "consistency", "timestamp"):
        assert f"`verifier {cmd}" in README, f"verifier {cmd} is not documented in README.md"
    for key in Config.keys():
        assert f"| `{key}` |" in README, f"config key {key} is not documented in README.md"
    assert "./scripts/run" in README and "./scripts/test" in README


def test_the_parser_knows_exactly_the_documented_commands() -> None:
    from ledger.cli import _parser

    sub = next(a for a in _parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)  # type: ignore[attr-defined]


def test_every_event_type_is_in_the_readme() -> None:
    from ledger.envelopes.events import SCHEMA

    for t in SCHEMA:
        assert f"| `{t}` |" in README, f"event type {t} is not documented in README.md"
