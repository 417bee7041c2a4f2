"""Real processes for the notaries' tests: `verifier witness serve` on a free port, and plain HTTP posts."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.browser_util import BIN, free_port

START_TIMEOUT_S = 15.0


def post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, str, str]:
    """(status, content type, body) of a POST, errors included."""
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


class WitnessProcess:
    """`verifier witness serve` in its own process, for the log keys given; restartable on its port."""

    def __init__(self, folder: Path, log_keys: list[str], name: str = "notary.example/w1",
                 port: int | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.key_file, self.state, self.log_path = folder / "witness.key", folder / "state", folder / "witness.log"
        if not self.key_file.exists():
            r = subprocess.run([str(BIN / "verifier"), "witness-key", name, str(self.key_file)], capture_output=True,
                               text=True, timeout=30, check=True)
            (folder / "witness.vkey").write_text(r.stdout)
        self.vkey = (folder / "witness.vkey").read_text().strip()
        self.log_keys, self.port = log_keys, port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WitnessProcess:
        args = [a for k in self.log_keys for a in ("--log-key", k)]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([str(BIN / "verifier"), "witness", "serve", "--key", str(self.key_file),
                                          "--state", str(self.state), "--port", str(self.port), *args],
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the witness exited {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the witness did not come up:\n{self.output()}"
            time.sleep(0.02)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=15)

    def add_checkpoint(self, old: int, proof: list[bytes], checkpoint: str) -> tuple[int, str, str]:
        import base64

        body = f"old {old}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof) + "\n" + checkpoint
        return post(self.url + "/add-checkpoint", body.encode())
