"""Where `ledger serve` listens and the address its QR codes name, chosen before the first run: an option
(`--host`, `--port`, `--public-url`) is over its environment variable (LEDGER_HOST, LEDGER_PORT,
LEDGER_PUBLIC_URL), which is over config.toml, which is over the default. `ledger demo` prints the demo's
current QR URLs again, and `./scripts/run` passes its arguments on and prints them afresh at each start.
The commands run as the console scripts, in processes of their own, with none of the ledger's variables
but those a test gives."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ledger.config import Config, load_config
from ledger.errors import LedgerError
from tests.browser_util import free_port
from tests.cli.test_cli import BIN
from tests.conftest import ROOT

DEMO_LINE = re.compile(r"(\w+)\s+(DEMO-[A-Z-]+)\s+(\S+)/v/([0-9A-Z]{20})#\S+\s+\([0-9A-Z-]+\)(?:\s+access code (\w+))?")


def environment(**given: str) -> dict[str, str]:
    """This process's environment without the ledger's variables, with `given` (LEDGER_PORT="8081", ...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return {**env, **given}


def ledger(home: Path, *args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ledger"), "--home", str(home), *args], input=input, capture_output=True,
                          text=True, timeout=60, env=environment(**env))


def demo_lines(stdout: str) -> dict[str, tuple[str, str, str, str | None]]:
    """`ledger demo`'s copies: reference -> (status, the QR URL's base, code, access code)."""
    out = {}
    for line in stdout.splitlines():
        if m := DEMO_LINE.fullmatch(line.strip()):
            out[m[2]] = (m[1], m[3], m[4], m[5])
    return out


def page(port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return str(r.read().decode())


def wait_healthy(proc: subprocess.Popen[str], port: int, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"{what} exited {proc.returncode}:\n{out}\n{err}")
        try:
            page(port, "/healthz")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"{what} does not answer on port {port}"
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A ledger with the demo, and what `ledger demo` printed when it made it."""
    home = tmp_path_factory.mktemp("settings") / "data"
    out = ""
    for args in (["init"], ["demo"]):
        r = ledger(home, *args)
        assert r.returncode == 0, r.stderr
        out = r.stdout
    return home, out


@pytest.fixture
def demo_home(made: tuple[Path, str]) -> Path:
    return made[0]


# ---- the precedence, as load_config gives it to every command and process ----------------------

def test_the_environment_is_over_config_toml_and_config_toml_over_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LEDGER_HOST", "LEDGER_PORT", "LEDGER_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    assert (load_config(tmp_path).host, load_config(tmp_path).port) == (Config.host, Config.port)
    (tmp_path / "config.toml").write_text('host = "127.0.0.2"\nport = 9001\npublic_url = "https://toml.example"\n')
    c = load_config(tmp_path)
    assert (c.host, c.port, c.public_url) == ("127.0.0.2", 9001, "https://toml.example")
    monkeypatch.setenv("LEDGER_HOST", "0.0.0.0")
    monkeypatch.setenv("LEDGER_PORT", "9002")
    monkeypatch.setenv("LEDGER_PUBLIC_URL", "https://env.example")
    c = load_config(tmp_path)
    assert (c.host, c.port, c.public_url) == ("0.0.0.0", 9002, "https://env.example")
    assert c.public_host == "env.example"
    monkeypatch.setenv("LEDGER_PORT", "")  # set empty: as if unset
    assert load_config(tmp_path).port == 9001


@pytest.mark.parametrize(("name", "value", "says"), [
    ("LEDGER_PORT", "80x", "LEDGER_PORT='80x' is not a port"),
    ("LEDGER_PORT", "65536", "from 1 to 65535"),
    ("LEDGER_PORT", "0", "from 1 to 65535"),
    ("LEDGER_PUBLIC_URL", "verify.example.com", "LEDGER_PUBLIC_URL: 'verify.example.com' must be an http"),
    ("LEDGER_PUBLIC_URL", "https://x.example/?a=1", "must not have a query"),
    ("LEDGER_HOST", "127.0.0.1 8080", "LEDGER_HOST='127.0.0.1 8080' must be an address"),
])
def test_a_bad_variable_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                           says: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(LedgerError, match=re.escape(says)) as e:
        load_config(tmp_path)
    assert e.value.code == "bad_config"


def test_init_writes_the_defaults_not_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "data"
    r = ledger(home, "init", LEDGER_PORT="9003", LEDGER_HOST="0.0.0.0", LEDGER_PUBLIC_URL="https://env.example")
    assert r.returncode == 0, r.stderr
    text = (home / "config.toml").read_text()
    assert 'host = "127.0.0.1"' in text and "port = 8080" in text and 'public_url = "http://127.0.0.1:8080"' in text
    r = ledger(home, "status", LEDGER_PORT="nope")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "LEDGER_PORT='nope' is not a port" in r.stderr


# ---- ledger serve ------------------------------------------------------------------------------

def test_serve_takes_the_environment_and_its_options_over_it(demo_home: Path, tmp_path: Path) -> None:
    env_port, option_port = free_port(), free_port()
    given = {"LEDGER_PORT": str(env_port), "LEDGER_PUBLIC_URL": "https://env.example.test"}
    for args, port, domain in (([], env_port, "env.example.test"),
                               (["--port", str(option_port), "--public-url", "https://option.example.test"],
                                option_port, "option.example.test")):
        with open(tmp_path / "serve.log", "w") as log:
            proc = subprocess.Popen([str(BIN / "ledger"), "--home", str(demo_home), "serve", *args], text=True,
                                    stdout=log, stderr=subprocess.STDOUT, env=environment(**given))
        try:
            wait_healthy(proc, port, f"ledger serve {' '.join(args)}")
            assert f'<span class="domain">{domain}</span>' in page(port), "pages name another public_url"
        finally:
            stop(proc)
        assert f"at http://127.0.0.1:{port}/" in (tmp_path / "serve.log").read_text()


def test_serve_refuses_a_bad_public_url_option(demo_home: Path) -> None:
    r = ledger(demo_home, "serve", "--public-url", "verify.example.com")
    assert r.returncode == 2 and "--public-url" in r.stderr and "http:// or https://" in r.stderr


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_busy_port_says_how_to_choose_another(demo_home: Path, how: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        if how == "option":
            r = ledger(demo_home, "serve", "--port", port)
        else:
            r = ledger(demo_home, "serve", LEDGER_PORT=port)
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "--port" in r.stderr and "LEDGER_PORT" in r.stderr, r.stderr


# ---- ledger demo, again ------------------------------------------------------------------------

def test_demo_again_prints_the_current_links_and_makes_none_again(made: tuple[Path, str]) -> None:
    demo_home, created = made
    copies = demo_lines(created)
    assert len(copies) == 5 and {base for _, base, _, _ in copies.values()} == {"http://127.0.0.1:8080"}
    assert copies["DEMO-IN-PROGRESS"][3], "the demo's access code is shown with its copy"
    again = ledger(demo_home, "demo")
    assert again.returncode == 0, again.stderr
    assert demo_lines(again.stdout) == copies and again.stdout == created
    size = ledger(demo_home, "status", "--json").stdout
    cfg = demo_home / "config.toml"
    text = cfg.read_text()
    cfg.write_text(re.sub(r'(?m)^public_url = .*$', 'public_url = "https://verify.example.test"', text))
    try:
        again = ledger(demo_home, "demo")
        assert again.returncode == 0, again.stderr
        now = demo_lines(again.stdout)
        assert {ref: (s, code, access) for ref, (s, _, code, access) in now.items()} == \
               {ref: (s, code, access) for ref, (s, _, code, access) in copies.items()}
        assert {base for _, base, _, _ in now.values()} == {"https://verify.example.test"}
        by_env = demo_lines(ledger(demo_home, "demo", LEDGER_PUBLIC_URL="https://env.example.test").stdout)
        assert {base for _, base, _, _ in by_env.values()} == {"https://env.example.test"}
    finally:
        cfg.write_text(text)
    before, after = json.loads(size), json.loads(ledger(demo_home, "status", "--json").stdout)
    assert after["size"] == before["size"] and after["envelopes"] == before["envelopes"], "the demo was made again"


def test_demo_again_shows_the_access_code_kept_in_demo_txt_by_ledgers_made_before(tmp_path: Path) -> None:
    home = tmp_path / "data"
    assert ledger(home, "init").returncode == 0
    made = ledger(home, "demo")
    assert made.returncode == 0, made.stderr
    (home / "demo-access-codes.json").unlink()
    (home / "demo.txt").write_text(made.stdout)  # where ./scripts/run kept the demo's first words
    again = ledger(home, "demo")
    assert again.returncode == 0, again.stderr
    code = demo_lines(made.stdout)["DEMO-IN-PROGRESS"][3]
    assert code and demo_lines(again.stdout)["DEMO-IN-PROGRESS"][3] == code


# ---- ./scripts/run -----------------------------------------------------------------------------

@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The scripts as they are, in a folder laid out as the repository (its .venv the one running these
    tests, already set up), so that `./scripts/run` installs nothing and makes its ./data here."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    for name in ("run", "_venv.sh"):
        shutil.copy2(ROOT / "scripts" / name, root / "scripts" / name)
    (root / ".venv").mkdir()
    (root / ".venv" / "bin").symlink_to(BIN)
    (root / ".venv" / ".installed-test").touch()  # and no pyproject.toml newer than it: nothing to install
    return root


def scripts_run(checkout: Path, *args: str, **env: str) -> tuple[dict[str, tuple[str, str, str, str | None]], str]:
    """Start `./scripts/run ARGS`; return the demo copies it printed and the address it serves, once it
    answers there; then stop it."""
    given = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(checkout), **env}
    errors = checkout / "run.err"
    with open(errors, "w") as err:
        proc = subprocess.Popen([str(checkout / "scripts" / "run"), *args], cwd=checkout, text=True,
                                stdout=subprocess.PIPE, stderr=err, env=environment(**given))
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("serving "):
                break
        out = "".join(lines)
        serving = re.search(r"at http://([^/]+):(\d+)/", out)
        assert serving, f"./scripts/run {' '.join(args)} did not start serving:\n{out}{errors.read_text()}"
        wait_healthy(proc, int(serving[2]), "./scripts/run")
        return demo_lines(out), f"{serving[1]}:{serving[2]}"
    finally:
        stop(proc)


def test_scripts_run_passes_its_arguments_and_prints_current_links(checkout: Path) -> None:
    port = free_port()
    first, where = scripts_run(checkout, "--port", str(port), "--public-url", f"http://127.0.0.1:{port}")
    assert where == f"127.0.0.1:{port}"
    assert len(first) == 5 and {base for _, base, _, _ in first.values()} == {f"http://127.0.0.1:{port}"}
    assert (checkout / "data" / "ledger.db").exists()

    port = free_port()
    again, where = scripts_run(checkout, LEDGER_PORT=str(port), LEDGER_PUBLIC_URL="https://verify.example.test")
    assert where == f"127.0.0.1:{port}"
    assert {ref: code for ref, (_, _, code, _) in again.items()} == {ref: code for ref, (_, _, code, _) in first.items()}
    assert {base for _, base, _, _ in again.values()} == {"https://verify.example.test"}, "stale QR URLs printed"
    assert again["DEMO-IN-PROGRESS"][3] == first["DEMO-IN-PROGRESS"][3], "the access code is shown at every start"

    port = free_port()
    option, _ = scripts_run(checkout, f"--port={port}", "--public-url=https://option.example.test",
                            LEDGER_PUBLIC_URL="https://env.example.test")
    assert {base for _, base, _, _ in option.values()} == {"https://option.example.test"}


def test_scripts_run_help_is_ledger_serve_help(checkout: Path) -> None:
    r = subprocess.run([str(checkout / "scripts" / "run"), "--help"], capture_output=True, text=True, timeout=60,
                       env=environment(PATH="/usr/local/bin:/usr/bin:/bin"))
    assert r.returncode == 0 and "--public-url" in r.stdout and "LEDGER_PORT" in " ".join(r.stdout.split())
    assert not (checkout / "data").exists(), "--help made a ledger"
