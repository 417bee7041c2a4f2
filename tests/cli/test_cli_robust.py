"""The command lines with a user's mistakes: one clear line and the documented exit code, never a
traceback. README: exit 0 is success, 2 means the request was refused (nothing was written), 1 means
the ledger could not do it. Most runs are in-process (`main(argv)`); a few run the console scripts."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import cli
from ledger.audit.run import audit_home
from ledger.config import load_config
from ledger.envelopes.core import KEY_NAME, Ledger
from ledger.errors import LedgerError
from ledger.storage.log import _bundle_py, iter_bundle
from ledger.storage.schema import DB_NAME
from tests.cli.test_cli import README, run
from tests.envelopes.test_lifecycle import T, completed, ev
from tests.storage.test_tamper import raw
from tests.verifier.test_verifier_cli_strict import verifier
from verifier.checkpoint import verify_checkpoint

HUGE = "9" * 5000  # more digits than int() takes from a string (4300 by default)


class FakeServe:
    """Stands in for the portal's `serve`: records that it was reached, serves nothing."""

    def __init__(self) -> None:
        self.calls: list[argparse.Namespace] = []

    def __call__(self, home: Path, args: argparse.Namespace) -> None:
        self.calls.append(args)


def ledger(capsys: pytest.CaptureFixture[str], home: Path, *args: str,
           serve: FakeServe | None = None) -> tuple[int, str, str]:
    """Run `ledger --home HOME ARGS` in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main(["--home", str(home), *args], serve=serve)
    except SystemExit as e:  # argparse refused the command line
        code = int(e.code or 0)
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def one_line(err: str) -> str:
    assert err.count("\n") == 1, f"expected one line, got {err!r}"
    return err


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("robust") / "home"
    led = Ledger.init(home)
    led.append(T, completed("E1"))
    led.close()
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "home")
    return tmp_path / "home"


@pytest.fixture
def led(home: Path) -> Iterator[Ledger]:
    led = Ledger.open(home)
    yield led
    led.close()


def size(home: Path) -> int:
    led = Ledger.open(home)
    try:
        return led.log.size
    finally:
        led.close()


# ---- 1. integers longer than int() parses --------------------------------------------------------

def test_append_and_import_refuse_a_huge_integer(capsys: pytest.CaptureFixture[str], home: Path,
                                                 tmp_path: Path) -> None:
    before = size(home)
    f = tmp_path / "hugeint.json"
    f.write_text(f'{{"type": "envelope.created", "envelope": "H1", "title": {HUGE}}}')
    code, _, err = ledger(capsys, home, "append", str(f))
    assert code == 2 and "invalid_json" in one_line(err) and "an integer with more than 4300 digits" in err, err
    lines = tmp_path / "hugeint.jsonl"
    lines.write_text(json.dumps(ev("envelope.created", "H2", title="t")) + "\n" + f'{{"size": -{HUGE}}}\n')
    code, _, err = ledger(capsys, home, "import", str(lines))
    assert code == 2 and "line 2: " in one_line(err) and "more than 4300 digits" in err, err
    assert size(home) == before  # both lines are one atomic batch: nothing written


def test_audit_reports_an_entry_with_a_huge_integer(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    c = raw(home)
    start, data = c.execute("SELECT start, data FROM entry_chunks ORDER BY start LIMIT 1").fetchone()
    entries = iter_bundle(bytes(data))
    entries[2] = f'{{"v":1,"seq":{HUGE}}}'.encode()
    c.execute("UPDATE entry_chunks SET data = ? WHERE start = ?", (_bundle_py(entries), start))
    c.close()
    problems = audit_home(home).problems  # read-only: a writer refuses to open over a changed newest tile
    assert any(p.startswith(f"entry {start + 2}: not a valid entry (") and "more than 4300 digits" in p
               for p in problems), problems
    code, out, _ = ledger(capsys, home, "audit")
    assert code == 1 and "more than 4300 digits" in out and "audit FAILED" in out


# ---- 2. files, folders and databases that cannot be used -------------------------------------

def test_input_files_that_cannot_be_read_are_refused(capsys: pytest.CaptureFixture[str], home: Path,
                                                     tmp_path: Path) -> None:
    for command in ("append", "import"):
        for name, reason in ((str(tmp_path / "missing.json"), "No such file or directory"),
                             (str(tmp_path), "Is a directory")):
            code, _, err = ledger(capsys, home, command, name)
            assert code == 2 and one_line(err) == f"ledger: refused (bad_input): cannot read {name}: {reason}\n"
    r = run(home, "append", str(tmp_path / "missing.json"))  # the console script too
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_damaged_database_is_one_line_naming_it(capsys: pytest.CaptureFixture[str], home: Path,
                                                  tmp_path: Path) -> None:
    db = home / DB_NAME
    for suffix in ("-wal", "-shm"):
        (home / (DB_NAME + suffix)).unlink(missing_ok=True)
    whole = db.read_bytes()
    db.write_bytes(whole[: len(whole) // 2])  # truncated
    for command in ("status", "audit", "checkpoint"):
        code, _, err = ledger(capsys, home, command)
        assert code == 1 and one_line(err).startswith(f"ledger: error (storage_error): {db}: "), err
    db.write_bytes(b"this is not an SQLite database\n" * 100)  # garbage
    code, _, err = ledger(capsys, home, "status")
    assert code == 1 and one_line(err) == f"ledger: error (storage_error): {db}: file is not a database\n"
    r = run(home, "status")
    assert r.returncode == 1 and "file is not a database" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_home_that_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "notafolder"
    f.write_text("x")
    for args in (["status"], ["init"], ["append"], ["keys", "list"]):
        code, _, err = ledger(capsys, f, *args)
        assert code == 2 and one_line(err) == f"ledger: refused (bad_home): the ledger folder {f} is a file " \
                                              "(--home, $LEDGER_HOME)\n"
    code, _, err = ledger(capsys, f / "below", "init")
    assert code == 1 and one_line(err) == f"ledger: error (io_error): {f / 'below'}: Not a directory\n"
    assert f.read_text() == "x"


def test_a_key_without_a_database_says_what_to_do(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
        (home / name).unlink(missing_ok=True)
    before = sorted(p.name for p in home.iterdir())
    config = (home / "config.toml").read_text()
    for command, code_want, kind in (("status", 1, "error (no_ledger)"), ("audit", 1, "error (no_ledger)"),
                                     ("init", 2, "refused (exists)")):
        code, _, err = ledger(capsys, home, command)
        assert code == code_want and one_line(err) == (
            f"ledger: {kind}: {home / KEY_NAME} exists but no ledger database does: this folder holds (part of) "
            f"another ledger; restore its {DB_NAME}, or init a new ledger in an empty folder\n"), err
        assert "run `ledger init` first" not in err
    assert sorted(p.name for p in home.iterdir()) == before and (home / "config.toml").read_text() == config


def test_init_checks_the_origin_before_writing_anything(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    for origin in ("a b", "x+y", "tab\there"):
        code, _, err = ledger(capsys, home, "init", "--origin", origin)
        assert code == 2 and one_line(err).startswith(f"ledger: refused (bad_origin): origin {origin!r} cannot name "
                                                      f"a log: key name {origin!r} is empty or contains"), err
        assert not home.exists() or not any(home.iterdir()), "nothing is written for a refused origin"
    code, out, err = ledger(capsys, home, "init", "--origin", "ledger.example.test/log")
    assert code == 0 and out.startswith("ledger.example.test/log+"), err
    # a config.toml with a bad origin (written by hand, or by an older `ledger init`) names the key
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.toml").write_text('origin = "a b"\n')
    for command in ("init", "status"):
        code, _, err = ledger(capsys, other, command)
        assert code == 1 and one_line(err).startswith(f"ledger: error (bad_config): {other / 'config.toml'}: "
                                                      "origin: key name 'a b'"), err


def test_anchor_renew_within_is_a_number_of_days(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    for bad in ("1e300", "nan", "inf", "-1", "36501", "soon"):
        code, _, err = ledger(capsys, home, "anchor", "--renew", "--within", bad)
        assert code == 2 and f"argument --within: {bad!r} is not a number of days from 0 to 36500" in err, err


# ---- serve: arguments, and where it cannot listen -----------------------------------------------

def test_serve_refuses_bad_arguments_before_serving(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    serve = FakeServe()
    for args, msg in ((["--workers", "0"], "argument --workers: '0' is not a number of worker processes (1 or more)"),
                      (["--workers", "-3"], "argument --workers: '-3' is not a number"),
                      (["--port", "-5"], "argument --port: '-5' is not a TCP port (1-65535)"),
                      (["--port", "99999"], "argument --port: '99999' is not a TCP port (1-65535)"),
                      (["--port", "0"], "argument --port: '0' is not a TCP port (1-65535)")):
        code, _, err = ledger(capsys, home, "serve", *args, serve=serve)
        assert code == 2 and msg in err, err
    assert serve.calls == []


def test_serve_says_it_cannot_listen(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    serve = FakeServe()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = ledger(capsys, home, "serve", "--host", "127.0.0.1", "--port", str(port), serve=serve)
        assert code == 1 and one_line(err).startswith(f"ledger: error (cannot_listen): cannot listen on 127.0.0.1:{port}: "
                                                      "Address already in use; "), err
        assert "--port" in err and "LEDGER_PORT" in err, err  # what to do about it
        try:  # the real server, in its own process, says the same
            r = run(home, "serve", "--port", str(port))
        except subprocess.TimeoutExpired:
            pytest.fail("`ledger serve` on a port in use kept running")
        assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    code, _, err = ledger(capsys, home, "serve", "--host", "host.invalid", "--port", "8080", serve=serve)
    assert code == 1 and one_line(err).startswith("ledger: error (cannot_listen): cannot listen on host.invalid:8080: ")
    assert serve.calls == []
    (home / "config.toml").write_text((home / "config.toml").read_text().replace("port = 8080", f"port = {port}"))
    code, _, err = ledger(capsys, home, "serve", "--host", "127.0.0.1", serve=serve)  # free again now
    assert code == 0 and [(a.host, a.port) for a in serve.calls] == [("127.0.0.1", port)], err


# ---- 3. configuration values out of range -----------------------------------------------------

@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("port", "99999", "a TCP port from 1 to 65535"),
    ("port", "0", "a TCP port from 1 to 65535"),
    ("max_request_bytes", "-1", "from 1 to"),
    ("max_events_per_request", "0", "from 1 to"),
    ("max_document_bytes", "0", "from 1 to"),
    ("batch_max", "0", "from 1 to"),
    ("batch_delay_ms", "-0.5", "from 0 to"),
    ("lookup_rate", "-1", "from 0 (no limit) to"),
    ("lookup_rate", "nan", "from 0 (no limit) to"),
    ("upload_rate", "inf", "from 0 (no limit) to"),
    ("lookup_burst", "0", "from 1 to"),
    ("upload_burst", "-2", "from 1 to"),
    ("anchor_interval_s", "0", "a positive number of seconds"),
    ("anchor_backoff_max_s", "-1", "a positive number of seconds"),
    ("anchor_interval_s", "1e300", "a positive number of seconds"),
    ("renew_within_days", "-1", "from 0 to 36500 days"),
    ("renew_within_days", "100000000", "from 0 to 36500 days"),
])
def test_config_values_out_of_range_are_refused(tmp_path: Path, key: str, value: str, allowed: str) -> None:
    (tmp_path / "config.toml").write_text(f"{key} = {value}\n")
    with pytest.raises(LedgerError) as info:
        load_config(tmp_path)
    msg = str(info.value)
    assert info.value.code == "bad_config" and f": {key} = " in msg and "is out of range; it must be" in msg, msg
    assert allowed in msg, msg


def test_config_values_at_the_edges_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("port = 1\nlookup_rate = 0\nupload_rate = 0.5\nlookup_burst = 1\n"
                                          "batch_max = 1\nbatch_delay_ms = 0\nrenew_within_days = 0\n"
                                          "max_events_per_request = 1\nanchor_interval_s = 0.1\n")
    c = load_config(tmp_path)
    assert (c.port, c.lookup_rate, c.batch_max, c.renew_within_days) == (1, 0.0, 1, 0)
    (tmp_path / "config.toml").write_text("port = 65535\n")
    assert load_config(tmp_path).port == 65535


def test_a_bad_config_value_stops_every_command_in_one_line(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    cfg = home / "config.toml"
    cfg.write_text(cfg.read_text().replace("port = 8080", "port = 99999"))
    serve = FakeServe()
    for args in (["status"], ["serve"]):
        code, _, err = ledger(capsys, home, *args, serve=serve)
        assert code == 1 and one_line(err) == (f"ledger: error (bad_config): {cfg}: port = 99999 is out of range; "
                                               "it must be a TCP port from 1 to 65535\n"), err
    assert serve.calls == []


# ---- 5. tenants and key labels ----------------------------------------------------------------

def test_tenants_are_checked_as_keys_create_checks_them(capsys: pytest.CaptureFixture[str], home: Path,
                                                        tmp_path: Path) -> None:
    f = tmp_path / "e.json"
    f.write_text(json.dumps(ev("envelope.created", "TEN-1", title="t")))
    before = size(home)
    for tenant in ("", "a b", "tab\t", "esc\x1b[31m", "x" * 100_000, "-leading", "t\u202e"):
        for args in (["append", str(f)], ["import", str(f)], ["status", "--envelope", "E1"],
                     ["keys", "create", "--scopes", "read"]):
            code, _, err = ledger(capsys, home, *args, f"--tenant={tenant}")
            assert code == 2 and "argument --tenant: a tenant is 1-64 letters, digits, '.', '_' or '-'" in err, err
            assert len(err) < 1000
    assert size(home) == before
    code, _, err = ledger(capsys, home, "append", str(f), "--tenant", "acme.cn-1")
    assert code == 0 and size(home) == before + 1, err


def test_key_labels_refuse_control_characters(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    for label, char in (("red\x1b[31m", "U+001B"), ("two\nlines", "U+000A"), ("tab\there", "U+0009"),
                        ("cr\rhere", "U+000D"), ("del\x7f", "U+007F"), ("c1\x85", "U+0085"),
                        ("rlo\u202eexe", "U+202E"), ("ls\u2028", "U+2028")):
        code, _, err = ledger(capsys, home, "keys", "create", "--tenant", "t", "--scopes", "read", "--label", label)
        assert code == 2 and "argument --label: a label is one line of text without control characters" in err
        assert char in err, err
    code, out, _ = ledger(capsys, home, "keys", "list")
    assert code == 0 and out == "", "no key was made"
    code, out, err = ledger(capsys, home, "keys", "create", "--tenant", "t", "--scopes", "read",
                            "--label", "张三的密钥 – ERP ✓")
    assert code == 0 and out.startswith("el_"), err
    code, out, _ = ledger(capsys, home, "keys", "list")
    assert code == 0 and out.count("\n") == 1 and out.rstrip("\n").endswith("张三的密钥 – ERP ✓")


# ---- 7. exit codes: README's statement --------------------------------------------------------

def test_exit_codes_are_those_of_the_readme(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    assert ("Exit code 0 is success, 2 means the request was refused or names what is not there (nothing was "
            "written), 1 means the ledger could not do it") in " ".join(README.split())
    n = size(home)
    for args, line in ((["prove", "99999"], f"ledger: not found (bad_index): entry 99999 is not in a tree of size {n}\n"),
                       (["prove", "0", "--size", str(n + 1)], f"no checkpoint was published at size {n + 1}\n"),
                       (["status", "--envelope", "NOPE"], "ledger: not found (unknown_envelope): no envelope 'NOPE' "
                                                          "in tenant 'default'; no other tenant has one either; "
                                                          "check the reference\n"),
                       (["prove", "0", "--anchored", "--tsa", "qualified"], "ledger: not found (unknown_tsa): "),
                       (["keys", "revoke", "0000000000000000"], "ledger: refused (unknown_key): no active API key")):
        code, _, err = ledger(capsys, home, *args)
        assert code == 2 and line in one_line(err), (args, err)
    missing = home.parent / "nothing"
    for args in (["status"], ["audit"], ["keys", "list"], ["serve"]):  # names a ledger folder that is not there
        code, _, err = ledger(capsys, missing, *args, serve=FakeServe())
        assert code == 2 and one_line(err) == (f"ledger: not found (no_ledger): no ledger folder {missing}; name an "
                                               "existing one with --home or $LEDGER_HOME, or create it with "
                                               "`ledger init`\n"), (args, err)
    assert not missing.exists()


def test_status_of_an_envelope_names_the_tenant_it_looked_in(capsys: pytest.CaptureFixture[str], led: Ledger,
                                                               home: Path) -> None:
    code, out, _ = ledger(capsys, home, "status", "--envelope", "E1", "--tenant", T)
    assert code == 0 and json.loads(out)["status"] == "completed"
    code, _, err = ledger(capsys, home, "status", "--envelope", "E1")
    assert code == 2 and one_line(err) == ("ledger: not found (unknown_envelope): no envelope 'E1' in tenant "
                                           f"'default'; tenant '{T}' has one: add --tenant {T}\n"), err
    led.append("other", [ev("envelope.created", "E1", title="t")])
    code, _, err = ledger(capsys, home, "status", "--envelope", "E1", "--tenant", "third")
    assert code == 2 and one_line(err) == ("ledger: not found (unknown_envelope): no envelope 'E1' in tenant "
                                           f"'third'; tenants 'other', '{T}' have one: add --tenant with one of them\n")


def test_revoke_says_a_running_server_may_accept_the_key_a_few_seconds_more(capsys: pytest.CaptureFixture[str],
                                                                              home: Path) -> None:
    from portal.api.routes import KEY_CACHE_S

    assert cli.KEY_CACHE_S == KEY_CACHE_S
    code, out, _ = ledger(capsys, home, "keys", "create", "--tenant", "t", "--scopes", "read")
    assert code == 0
    kid = next(line.split()[0] for line in ledger(capsys, home, "keys", "list")[1].splitlines())
    code, _, err = ledger(capsys, home, "keys", "revoke", kid)
    assert code == 0 and one_line(err) == (f"revoked {kid}; a running `ledger serve` may still accept it for up to "
                                           f"{KEY_CACHE_S:g} s (it caches keys it has checked)\n"), err
    assert f"may still accept a revoked key for up to {KEY_CACHE_S:g} s" in " ".join(README.split())


def test_prove_anchored_by_a_tsa_that_is_not_configured(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, _, err = ledger(capsys, home, "prove", "3", "--anchored", "--tsa", "qualified")
    assert code == 2 and one_line(err) == ("ledger: not found (unknown_tsa): TSA 'qualified' is not configured "
                                           "(configured: local); name one of them with --tsa, or add a [[tsa]] "
                                           "table for it to config.toml\n"), err
    code, _, err = ledger(capsys, home, "prove", "3", "--anchored", "--tsa", "local")  # configured: not yet
    assert code == 2 and "(not_anchored): entry 3 is not anchored by TSA 'local' yet" in one_line(err), err
    code, _, err = ledger(capsys, home, "anchor")
    assert code == 0, err
    cfg = home / "config.toml"
    cfg.write_text(cfg.read_text().replace("local_tsa = true", "local_tsa = false"))
    code, out, err = ledger(capsys, home, "prove", "3", "--anchored", "--tsa", "local")  # its anchors stay
    assert code == 0 and json.loads(out)["anchors"][0]["tsa"] == "local", err
    code, _, err = ledger(capsys, home, "prove", "3", "--anchored", "--tsa", "qualified")
    assert code == 2 and "TSA 'qualified' is not configured (configured: none (local_tsa = false and no [[tsa]]))" \
        in one_line(err), err


# ---- 6. the verifier ----------------------------------------------------------------------------

def test_verifier_refuses_a_negative_quorum(capsys: pytest.CaptureFixture[str], led: Ledger, tmp_path: Path) -> None:
    (tmp_path / "p").write_text(led.prove(1).to_text())
    (tmp_path / "e").write_bytes(led.log.entry(1))
    args = ["proof", str(tmp_path / "p"), "--entry", str(tmp_path / "e"), "--key", led.verifier_key]
    code, out, _ = verifier(capsys, *args, "--quorum", "0")
    assert code == 0 and out.startswith("VERIFIED entry 1"), out
    for bad in ("-1", "-100", "two"):
        code, out, err = verifier(capsys, *args, "--quorum", bad)
        assert code == 2 and f"argument --quorum: {bad!r} is not a number of witnesses (0 or more)" in err, out + err
        assert "VERIFIED" not in out
    with pytest.raises(ValueError, match="a witness quorum is 0 or more"):  # the library too
        verify_checkpoint(led.log.latest_checkpoint, led.verifier, witness_quorum=-1)


def test_verifier_anchored_on_deeply_nested_json(capsys: pytest.CaptureFixture[str], led: Ledger,
                                                 tmp_path: Path) -> None:
    root = led.home / "tsa" / "tsa-root.pem"
    for name, text in (("arrays", "[" * 200_000 + "]" * 200_000), ("objects", '{"a":' * 100_000 + "1" + "}" * 100_000),
                       ("open", "[" * 200_000)):
        (tmp_path / name).write_text(text)
        code, out, err = verifier(capsys, "anchored", str(tmp_path / name), "--key", led.verifier_key,
                                  "--root", str(root), "--at", "2026-01-01T00:00:00Z")
        assert code == 1 and out.startswith("NOT VERIFIED (malformed): anchored proof"), out + err
        assert out.count("\n") == 1
