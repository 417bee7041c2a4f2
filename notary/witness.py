"""A C2SP tlog-witness (c2sp.org/tlog-witness): `POST /add-checkpoint`, answered with cosignature/v1 lines.

The request body is `old <size>\\n`, up to 63 consistency proof lines (base64 hashes), a blank line and
a checkpoint note. The witness, for the checkpoint's origin (§add-checkpoint, in the spec's order):

 (1) knows the origin, else 404; a signature by one of the origin's log keys verifies, else 403
 (2) `old` is at most the checkpoint's size, else 400
 (3) `old` is the size of the latest checkpoint it cosigned for that origin (0 if none), else 409 with
     that size as `text/x.tlog.size`
 (4) the proof is a consistency proof from that checkpoint (empty from size 0), else 422; at the same
     size the root must be the same, else 409 (a fork: the log signed two trees of one size)
 (5) it stores the checkpoint durably, then answers its cosignature (c2sp.org/tlog-cosignature)

Steps (3) to (5) run under one lock per origin, so that a slower request can never roll the stored
size back (the race the spec describes). The state is one file per origin, `<origin, %-escaped>.checkpoint`,
replaced atomically (`notary._files`): a crash leaves the old checkpoint or the new, never a mix. A
checkpoint refused as a fork is kept in `forks/`: two signed trees of one size are proof of misbehaviour.

What it does not do: fetch anything, verify its log's entries, or serve the checkpoints it holds.
"""

from __future__ import annotations

import base64
import binascii
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from urllib.parse import quote

from notary._files import make_folder, read_state, remove_temporaries, write_atomic
from notary.errors import StateError
from verifier.checkpoint import SignedCheckpoint, parse_checkpoint
from verifier.errors import SignatureError, VerificationError
from verifier.merkle import verify_consistency
from verifier.note import CosignatureSigner, Ed25519Verifier, verify_note

log = logging.getLogger("notary.witness")

MAX_BODY_BYTES = 1 << 20
MAX_PROOF_LINES = 63
SIZE_TYPE = "text/x.tlog.size"
TEXT_TYPE = "text/plain; charset=utf-8"
REQUEST_TIMEOUT_S = 30.0  # a client that sends nothing for this long loses its connection
STOP_GRACE_S = 10.0  # on SIGTERM, how long requests being answered may take to finish
# after answering a request whose body it will not read, the server reads and drops what the client is still
# sending for this long, or this much, before it closes: else the kernel answers the unread bytes with a reset,
# and the client, still writing, never reads the answer (as nginx's lingering close)
LINGER_S = 2.0
LINGER_BYTES = 64 << 20


class Refusal(Exception):
    """An answer other than 200: its status, and a body that says why (or, for 409, the size held)."""

    def __init__(self, status: int, message: str, *, content_type: str = TEXT_TYPE) -> None:
        super().__init__(message)
        self.status, self.content_type = status, content_type


@dataclass(frozen=True)
class AddCheckpoint:
    old: int
    proof: tuple[bytes, ...]
    checkpoint: SignedCheckpoint


def parse_request(body: bytes) -> AddCheckpoint:
    """The body of an add-checkpoint request; anything else is a 400 that says what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Refusal(400, f"the body is not UTF-8 (byte {e.start})") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise Refusal(400, "the body needs an `old <size>` line, the proof lines, a blank line, then the checkpoint")
    lines = head.split("\n")
    old_s = lines[0].removeprefix("old ")
    if lines[0] == old_s or not (old_s.isascii() and old_s.isdigit()) or (old_s != "0" and old_s[0] == "0"):
        raise Refusal(400, "the first line must be `old <size>`, a decimal size without leading zeros")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise Refusal(400, f"the consistency proof has {len(lines) - 1} lines, more than {MAX_PROOF_LINES}")
    proof = []
    for n, line in enumerate(lines[1:], 2):
        try:
            h = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise Refusal(400, f"line {n} is not a base64 hash") from None
        if len(h) != 32:
            raise Refusal(400, f"line {n} is a {len(h)}-byte hash, not 32")
        proof.append(h)
    try:
        checkpoint = parse_checkpoint(note)
    except VerificationError as e:
        raise Refusal(400, f"the checkpoint is malformed: {e}") from None
    return AddCheckpoint(int(old_s), tuple(proof), checkpoint)


class Witness:
    """The witness's state and its one operation, without HTTP (`serve` puts it behind a server)."""

    def __init__(self, signer: CosignatureSigner, log_keys: Sequence[Ed25519Verifier], state: Path,
                 clock: Callable[[], float] = time.time) -> None:
        self.signer, self.state, self.clock = signer, state, clock
        self.keys: dict[str, list[Ed25519Verifier]] = {}
        for k in log_keys:
            self.keys.setdefault(k.name, []).append(k)  # the origin names its log's key (tlog-checkpoint)
        self._locks = {origin: threading.Lock() for origin in self.keys}
        make_folder(state)
        remove_temporaries(state)
        self.latest: dict[str, SignedCheckpoint] = {}
        for origin in self.keys:
            held = self._load(origin)
            if held is not None:
                self.latest[origin] = held

    def _path(self, origin: str) -> Path:
        return self.state / (quote(origin, safe="") + ".checkpoint")

    def _load(self, origin: str) -> SignedCheckpoint | None:
        path = self._path(origin)
        data = read_state(path)
        if data is None:
            return None
        try:
            held = parse_checkpoint(data)
        except VerificationError as e:
            raise StateError(f"{path} is not a checkpoint ({e}); it was written atomically, so something else "
                             "changed it: restore it from a backup") from None
        if held.checkpoint.origin != origin:
            raise StateError(f"{path} holds a checkpoint of {held.checkpoint.origin!r}, not {origin!r}")
        return held

    def size_of(self, origin: str) -> int:
        held = self.latest.get(origin)
        return held.checkpoint.size if held else 0

    def add_checkpoint(self, body: bytes) -> str:
        """Check, store and cosign; return the cosignature line(s). Raises `Refusal` with the spec's status."""
        req = parse_request(body)
        cp = req.checkpoint.checkpoint
        # (1) a known origin, signed by one of its keys (signatures of unknown keys are ignored)
        keys = self.keys.get(cp.origin)
        if keys is None:
            raise Refusal(404, f"this witness does not witness the log {cp.origin!r}")
        try:
            verify_note(req.checkpoint.note, list(keys))
        except SignatureError as e:
            raise Refusal(403, f"the checkpoint is not signed by the log's key: {e}") from None
        # (2) old is at most the new size
        if req.old > cp.size:
            raise Refusal(400, f"old size {req.old} is larger than the checkpoint's size {cp.size}")
        with self._locks[cp.origin]:
            # (3) old is the size this witness holds
            held = self.latest.get(cp.origin)
            size = held.checkpoint.size if held else 0
            if req.old != size:
                raise Refusal(409, f"{size}\n", content_type=SIZE_TYPE)
            # (4) consistency with what it holds
            if held is not None and cp.size == size and cp.root != held.checkpoint.root:
                self._keep_fork(req.checkpoint)
                raise Refusal(409, f"the log signed another tree of size {size} before (root "
                                   f"{held.checkpoint.root.hex()}, now {cp.root.hex()}): a fork; not cosigned")
            if req.old == 0:
                if req.proof:
                    raise Refusal(422, "the consistency proof must be empty from size 0")
            else:
                assert held is not None
                try:
                    verify_consistency(size, cp.size, held.checkpoint.root, cp.root, req.proof)
                except VerificationError as e:
                    log.warning("refused a checkpoint of %s at size %d: no consistency with size %d (%s)",
                                cp.origin, cp.size, size, e)
                    raise Refusal(422, f"the consistency proof from size {size} does not verify: {e}") from None
            # (5) stored durably, then cosigned
            if held is None or held.to_text() != req.checkpoint.to_text():
                try:
                    write_atomic(self._path(cp.origin), req.checkpoint.to_text().encode())
                except OSError as e:
                    log.error("cannot store the checkpoint of %s: %s", cp.origin, e)
                    raise Refusal(503, "the witness cannot store checkpoints now; try again later") from None
                self.latest[cp.origin] = req.checkpoint
            sig = self.signer.sign(req.checkpoint.note.text, int(self.clock()))
        log.info("cosigned %s at size %d (held %d)", cp.origin, cp.size, size)
        return sig.line()

    def _keep_fork(self, refused: SignedCheckpoint) -> None:
        cp = refused.checkpoint
        folder = self.state / "forks"
        try:
            make_folder(folder)
            write_atomic(folder / f"{quote(cp.origin, safe='')}-{cp.size}-{cp.root.hex()[:16]}.checkpoint",
                         refused.to_text().encode())
        except OSError as e:
            log.error("cannot keep the evidence of a fork of %s: %s", cp.origin, e)
        log.error("FORK: %s signed two trees of size %d; the second is kept in %s", cp.origin, cp.size, folder)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an idle keep-alive connection never holds up a stop (`serve` waits for answers)

    def __init__(self, address: tuple[str, int], witness: Witness) -> None:
        super().__init__(address, _Handler)
        self.witness = witness
        self.busy = 0
        self.idle = threading.Condition()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "evidence-ledger-witness"
    sys_version = ""
    protocol_version = "HTTP/1.1"  # keep-alive, as the spec recommends
    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # the base class's name
        log.debug("%s " + format, self.address_string(), *args)

    def _answer(self, status: int, body: str, content_type: str = TEXT_TYPE) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/":
            w = self.server.witness
            self._answer(200, f"C2SP tlog-witness {w.signer.verifier.name}: POST /add-checkpoint\n"
                              f"{w.signer.verifier.to_string()}\n")
        elif self.path == "/add-checkpoint":
            self._answer(405, "POST a checkpoint to /add-checkpoint (c2sp.org/tlog-witness)\n")
        else:
            self._answer(404, "not found; this witness serves POST /add-checkpoint\n")

    def _refuse_unread(self, status: int, text: str) -> None:
        """Answer without reading the body, then close: the connection cannot carry another request. What the
        client still sends is read and dropped for a while first (`LINGER_S`), so that it reads the answer."""
        self.close_connection = True
        self._answer(status, text)
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_S)
            deadline, left = time.monotonic() + LINGER_S, LINGER_BYTES
            while left > 0 and time.monotonic() < deadline and (chunk := self.rfile.read1(min(left, 65536))):
                left -= len(chunk)
        except OSError:
            pass  # the client is gone: nothing more to say

    def do_POST(self) -> None:
        if self.path != "/add-checkpoint":
            self._refuse_unread(404, "not found; this witness serves POST /add-checkpoint\n")
            return
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None or not length.isdigit():
            self._refuse_unread(411, "send the body with a Content-Length\n")
            return
        if int(length) > MAX_BODY_BYTES:
            self._refuse_unread(413, f"the body is {length} bytes; an add-checkpoint request is at most "
                                     f"{MAX_BODY_BYTES}\n")
            return
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            self.close_connection = True
            return  # the client went away mid-body: nobody to answer
        with self.server.idle:
            self.server.busy += 1
        try:
            lines = self.server.witness.add_checkpoint(body)
        except Refusal as e:
            self._answer(e.status, str(e) if str(e).endswith("\n") else f"{e}\n", e.content_type)
        except Exception:  # a bug must answer 500, and never take the server down
            log.exception("failed to answer an add-checkpoint request")
            self._answer(500, "the witness failed; the request may be retried\n")
        else:
            self._answer(200, lines)
        finally:
            with self.server.idle:
                self.server.busy -= 1
                self.server.idle.notify_all()


def serve(witness: Witness, host: str, port: int, *, ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; then stop taking requests, let those being answered finish, return."""
    try:
        server = _Server((host, port), witness)
    except OSError as e:
        raise OSError(f"cannot listen on {host}:{port} ({e.strerror or e}); choose another --port or --host") from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=server.serve_forever, name="witness-http", daemon=True)
    thread.start()
    try:
        if ready is not None:
            bound_host, bound_port = server.server_address[:2]
            ready(f"http://{bound_host!s}:{bound_port}")
        while not stop.wait(0.1):
            pass
    finally:
        server.shutdown()
        deadline = time.monotonic() + STOP_GRACE_S
        with server.idle:
            while server.busy and time.monotonic() < deadline:
                server.idle.wait(0.1)
        server.server_close()
        for s, handler in previous.items():
            signal.signal(s, handler)
