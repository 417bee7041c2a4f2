"""The README's shell examples run as written, in order, on a ledger as `./scripts/run` makes it
(`ledger init`, `ledger demo`, `ledger serve`), with only the server's address and the ledger folder
put in for this test's own."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_util import free_port, start_serve, stop_serve
from tests.cli.test_cli import BIN, README

BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)
SETUP = "./scripts/run"  # the block that starts it all: this test does what it does itself
GIVEN = {"PATH", "PWD", "HOME"}  # variables every shell has
ASSIGNED = re.compile(r"(?:^|[\s;(])(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")
USED = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
TOOLS = ("bash", "curl", "openssl", "sed", "python3")


def _code(block: str) -> str:
    """A block without its comments and the bodies of its quoted here-documents (which expand nothing)."""
    out, end = [], None
    for line in block.splitlines():
        if end is not None:
            end = None if line.strip() == end else end
            continue
        if m := re.search(r"<<-?\s*'(\w+)'", line):
            end = m[1]
        out.append(re.sub(r"\s+#.*$", "", line))
    return "\n".join(out)


def test_every_variable_a_shell_example_uses_is_set_before() -> None:
    defined = set(GIVEN)
    assert len(BLOCKS) >= 5
    for n, block in enumerate(BLOCKS, 1):
        code = _code(block)
        for line in code.splitlines():
            used = set(USED.findall(line)) - defined
            assigned = set(ASSIGNED.findall(line))
            assert used <= assigned, f"shell example {n} uses ${sorted(used - assigned)[0]} before it is set:\n{line}"
            defined |= assigned
    assert 'cd "$(mktemp -d)"' in BLOCKS[1], "the examples write their files in a scratch folder"
    for block in BLOCKS:
        for line in _code(block).splitlines():
            if "curl " in line and ">" in line.split("curl ", 1)[1]:
                assert "curl -fsS " in line, f"a failed answer would be saved as if it were the file:\n{line}"


class Server:
    """`ledger serve` on a free port, as `./scripts/run` starts it; restartable."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home, self.log_path, self.port = home, log, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_serve(self.home, self.port, self.log_path)

    def stop(self) -> None:
        stop_serve(self.proc)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    assert not missing, f"the README's examples need {', '.join(missing)} (scripts/system-deps installs them)"
    home = tmp_path / "data"
    for args in (["init"], ["demo"]):  # what ./scripts/run does on a fresh checkout
        r = subprocess.run([str(BIN / "ledger"), "--home", str(home), *args], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
    s = Server(home, tmp_path / "serve.log")
    s.start()
    yield s
    s.stop()


def test_the_shell_examples_run_in_order(server: Server, tmp_path: Path) -> None:
    assert SETUP in BLOCKS[0]
    state = tmp_path / "state.sh"
    # a block that edits config.toml is followed by a restart of the server, as the README says
    segments: list[list[str]] = [[]]
    for block in BLOCKS[1:]:
        segments[-1].append(block)
        if "config.toml" in _code(block):
            segments.append([])
    names = sorted({n for b in BLOCKS for n in ASSIGNED.findall(_code(b))})
    out = ""
    for i, segment in enumerate(segments):
        if i:
            server.stop()
            server.start()
        script = "\n".join(segment)
        for old, new in (("http://127.0.0.1:8080", server.base), ('"$PWD/.venv/bin:$PATH"', f'"{BIN}:$PATH"'),
                         ('LEDGER_HOME="$PWD/data"', f'LEDGER_HOME="{server.home}"')):
            script = script.replace(old, new)
        script = (f"set -euo pipefail\n[ -f {state} ] && . {state}\n{script}\n"
                  f"{{ declare -p {' '.join(names)} 2>/dev/null || true; echo \"cd '$PWD'\"; }} > {state}\n")
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=180, cwd=tmp_path,
                           env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
                                "TMPDIR": str(tmp_path)})
        assert r.returncode == 0, f"README shell examples, part {i + 1}, exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        out += r.stdout
    assert "Verification: OK" in out and "VERIFIED entry 3 is in" in out and "VERIFIED entry 3 existed" in out, out
    grown = re.search(r"VERIFIED size (\d+) extends size (\d+)", out)
    assert grown and int(grown[1]) > int(grown[2]), f"the notary's example checks a log that grew:\n{out}"
    assert '"accepted": ["notary.example/w1"]' in out, out
    made = [p.name for p in tmp_path.glob("tmp*/*")]  # the scratch folder of `cd "$(mktemp -d)"`
    assert "e3.tlog-proof" in made and "cosigned.cp" in made, f"the examples wrote their files elsewhere: {made}"
