"""Envelope heads (verifier/head.py): the log's signed statement of an envelope's last event."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.envelopes.core import Ledger
from ledger.errors import NotFoundError, RefusedError
from ledger.storage.signer import LogSigner
from verifier.checkpoint import Checkpoint
from verifier.errors import FormatError, SignatureError, VerificationError
from verifier.head import EnvelopeHead, verify_head
from verifier.merkle import leaf_hash
from verifier.note import parse_note, sign_note

AGE = timedelta(minutes=10)
H = hashlib.sha256(b"doc").hexdigest()


@pytest.fixture
def led(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger.init(tmp_path / "home")
    for event in ({"type": "envelope.created", "envelope": "E", "title": "x"},  # one checkpoint each
                  {"type": "envelope.created", "envelope": "F", "title": "y"},
                  {"type": "document.added", "envelope": "E", "document": "d", "sha256": H, "size": 1,
                   "name": "d.pdf"}):
        ledger.append("t", [event])
    yield ledger
    ledger.close()


def _env(led: Ledger, ref: str) -> str:
    return str(led.envelope("t", ref)["env"])


def test_a_head_states_the_last_event_in_a_tree(led: Ledger) -> None:
    env = _env(led, "E")
    head = verify_head(led.envelope_head(env, led.log.size), led.verifier, now=datetime.now(UTC), max_age=AGE,
                       size=3)
    assert (head.env, head.size, head.events, head.last_index) == (env, 3, 2, 2)
    assert head.last_leaf == leaf_hash(led.log.entry(2))
    other = verify_head(led.envelope_head(_env(led, "F"), 3), led.verifier, now=datetime.now(UTC), max_age=AGE)
    assert (other.events, other.last_index) == (1, 1)
    early = verify_head(led.envelope_head(_env(led, "F"), 2), led.verifier, now=datetime.now(UTC), max_age=AGE)
    assert (early.size, early.events, early.last_index) == (2, 1, 1), "an older tree holding all of F's events"


def test_the_ledger_refuses_heads_it_cannot_state(led: Ledger) -> None:
    env = _env(led, "F")
    for size in (0, 4, -1):
        with pytest.raises(NotFoundError):
            led.envelope_head(env, size)
    with pytest.raises(RefusedError) as info:
        led.envelope_head(env, 1)  # F's first event is at index 1: made after that tree
    assert (info.value.code, info.value.status) == ("stale_size", 409)
    with pytest.raises(NotFoundError):
        led.envelope_head("0" * 32, 3)


def test_a_changed_forged_stale_or_misplaced_head_is_refused(led: Ledger) -> None:
    note = led.envelope_head(_env(led, "E"), 3)
    now = datetime.now(UTC)
    body = parse_note(note).text
    lines = body.split("\n")
    fewer = "\n".join([*lines[:4], "1", *lines[5:]])
    with pytest.raises(SignatureError):  # one event fewer, under the log's signature
        verify_head(fewer + note[len(body):], led.verifier, now=now, max_age=AGE)
    forger = LogSigner.generate(led.log.origin)
    with pytest.raises(SignatureError):
        verify_head(sign_note(fewer, forger).to_text(), led.verifier, now=now, max_age=AGE)
    judged = now + AGE + timedelta(seconds=5)
    with pytest.raises(VerificationError, match="more than") as e:
        verify_head(note, led.verifier, now=judged, max_age=AGE)
    assert judged.strftime("%Y-%m-%dT%H:%M:%SZ") in str(e.value), "names the time it was judged at, not 'now'"
    with pytest.raises(VerificationError, match="more than"):
        verify_head(note, led.verifier, now=now - AGE - timedelta(seconds=5), max_age=AGE)
    with pytest.raises(VerificationError, match="not 2"):
        verify_head(note, led.verifier, now=now, max_age=AGE, size=2)
    other_log = LogSigner.generate("other.example/log")
    with pytest.raises(FormatError, match="for log"):
        verify_head(note, other_log.verifier, now=now, max_age=AGE)


def test_heads_and_checkpoints_are_never_taken_for_each_other(led: Ledger) -> None:
    head = parse_note(led.envelope_head(_env(led, "E"), 3)).text
    with pytest.raises(FormatError):
        Checkpoint.from_body(head)
    with pytest.raises(FormatError, match="not an envelope head"):
        EnvelopeHead.from_body(parse_note(led.log.latest_checkpoint).text)


@pytest.mark.parametrize("change, word", [
    (lambda ls: ls[:7], "lines"),
    (lambda ls: [*ls, "extra"], "lines"),
    (lambda ls: [ls[0], "envelope-head v2", *ls[2:]], "not an envelope head"),
    (lambda ls: [ls[0], ls[1], ls[2].upper(), *ls[3:]], "hex"),
    (lambda ls: [*ls[:3], "03", *ls[4:]], "decimal"),
    (lambda ls: [*ls[:4], "-1", *ls[5:]], "decimal"),
    (lambda ls: [*ls[:5], "3", *ls[6:]], "names no event"),
    (lambda ls: [*ls[:6], "not base64!", ls[7]], "base64"),
    (lambda ls: [*ls[:6], "AAAA", ls[7]], "32 bytes"),
    (lambda ls: [*ls[:7], "2026-01-02 03:04:05"], "time"),
    (lambda ls: ["", *ls[1:]], "origin"),
])
def test_malformed_heads_are_refused_with_the_reason(led: Ledger, change: object, word: str) -> None:
    lines = parse_note(led.envelope_head(_env(led, "E"), 3)).text[:-1].split("\n")
    with pytest.raises(FormatError, match=word):
        EnvelopeHead.from_body("\n".join(change(lines)) + "\n")  # type: ignore[operator]
    with pytest.raises(FormatError, match="newline"):
        EnvelopeHead.from_body("\n".join(lines))


def test_the_verifier_command_checks_a_head_offline(led: Ledger, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = _env(led, "E")
    (tmp_path / "head").write_text(led.envelope_head(env, 3))
    (tmp_path / "old-head").write_text(led.envelope_head(_env(led, "F"), 2))  # an older tree, F's last in it
    (tmp_path / "cp").write_text(led.log.latest_checkpoint)
    key = led.verifier_key

    def verifier(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "verifier"), "head", *args], capture_output=True,
                              text=True, timeout=60)

    ok = verifier(str(tmp_path / "head"), "--key", key, "--checkpoint", str(tmp_path / "cp"), "--at",
                  datetime.now(UTC).isoformat())
    assert ok.returncode == 0 and f"VERIFIED envelope {env} has 2 event(s)" in ok.stdout, ok.stdout + ok.stderr
    wrong_tree = verifier(str(tmp_path / "old-head"), "--key", key, "--checkpoint", str(tmp_path / "cp"))
    assert wrong_tree.returncode == 1 and "not 3" in wrong_tree.stdout
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    stale = verifier(str(tmp_path / "head"), "--key", key, "--at", later)
    assert stale.returncode == 1 and "NOT VERIFIED" in stale.stdout
    archived = verifier(str(tmp_path / "head"), "--key", key)  # no --at: what the log said, and when
    assert archived.returncode == 0
    other = verifier(str(tmp_path / "head"), "--key", LogSigner.generate(led.log.origin).verifier_key)
    assert other.returncode == 1 and "NOT VERIFIED" in other.stdout


def test_a_head_for_an_older_tree_is_signed_only_if_the_envelope_has_no_later_event(led: Ledger) -> None:
    """A head says "at its signing time, this was the envelope's last event in the whole log": so the
    log refuses a fresh head about a tree older than the envelope's last event (a stale or lying portal
    could pair it with the checkpoint from before a void), and signs one when nothing came after."""
    env = _env(led, "E")  # events at 0 and 2
    for size in (1, 2):
        with pytest.raises(RefusedError, match=f"after tree size {size}") as info:
            led.envelope_head(env, size)
        assert (info.value.code, info.value.status) == ("stale_size", 409)
    now = datetime.now(UTC)
    f = verify_head(led.envelope_head(_env(led, "F"), 2), led.verifier, now=now, max_age=AGE, size=2)
    assert (f.events, f.last_index) == (1, 1), "F's last event is in the older tree: signed"
    led.append("t", [{"type": "party.added", "envelope": "F", "party": "p", "role": "cc", "name": "n"}])
    # F's new event is at index 3: the trees of 2 and 3 are old for F now
    for size in (2, 3):
        with pytest.raises(RefusedError) as info:
            led.envelope_head(_env(led, "F"), size)
        assert info.value.code == "stale_size"
    latest = verify_head(led.envelope_head(_env(led, "F"), 4), led.verifier, now=now, max_age=AGE, size=4)
    assert (latest.events, latest.last_index) == (2, 3)
    e = verify_head(led.envelope_head(env, 3), led.verifier, now=now, max_age=AGE, size=3)
    assert (e.events, e.last_index) == (2, 2), "E has nothing after 3: still signed about the tree of 3"


def test_a_stale_size_is_refused_across_the_writer_link(led: Ledger) -> None:
    """A worker that asks the writer for a head at an older size (lagging, or lying) is refused, with
    the code and status the portal retries on."""
    import asyncio

    from portal.serving.writerlink import LINK_NAME, WriterLink, serve_link

    async def main() -> None:
        server = await serve_link(led, led.home / LINK_NAME)
        link = WriterLink(led.home / LINK_NAME)
        try:
            with pytest.raises(RefusedError) as info:
                await link.head(_env(led, "E"), 2)
            assert (info.value.code, info.value.status) == ("stale_size", 409)
            verify_head(await link.head(_env(led, "E"), 3), led.verifier, now=datetime.now(UTC), max_age=AGE,
                        size=3)
        finally:
            await link.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def _void(led: Ledger, ref: str) -> None:
    from ledger.envelopes.demo import TENANT
    from ledger.envelopes.events import parse_events

    led.append(TENANT, parse_events([
        {"type": "void.requested", "envelope": ref, "party": "lessor", "reason": "Signed in error"},
        {"type": "void.consented", "envelope": ref, "party": "lessee"},
        {"type": "envelope.voided", "envelope": ref}]))


def _check_one_tree(v: dict[str, Any], size: int) -> None:
    """The JSON of a copy: checkpoint, every proof and the head about the tree of `size`, and all of
    the envelope's events in it, the void last."""
    import base64
    import json

    from verifier.checkpoint import verify_checkpoint
    from verifier.merkle import verify_inclusion
    from verifier.note import Ed25519Verifier

    key = Ed25519Verifier.from_string(v["log"]["verifier_key"])
    cp = verify_checkpoint(v["log"]["checkpoint"], key).checkpoint
    assert cp.size == v["log"]["size"] == size
    for p in v["proofs"]:
        verify_inclusion(p["index"], cp.size, leaf_hash(base64.b64decode(p["entry"])),
                         [base64.b64decode(h) for h in p["proof"]], cp.root)
    head = verify_head(v["log"]["head"], key, now=datetime.now(UTC), max_age=AGE, size=cp.size)
    last = v["proofs"][-1]
    assert (head.env, head.events, head.last_index) == (v["env"], len(v["proofs"]), last["index"])
    assert json.loads(base64.b64decode(last["entry"]))["type"] == "envelope.voided"
    assert v["status"] == "voided"


@pytest.mark.parametrize("warm", [False, True], ids=["head-from-the-writer", "head-from-the-cache"])
async def test_a_lagging_portal_serves_the_void_not_a_fresh_head_for_the_old_tree(
        aiohttp_client: Any, tmp_path: Path, warm: bool) -> None:
    """A portal process whose tree is older than the log (a worker that has not picked up the void yet)
    asks for a head at its old size: the writer refuses, and the portal catches up and answers about
    the tree that holds the void, checkpoint, proofs and head alike. A head it cached before the void
    is not served for the old tree either."""
    import asyncio

    from ledger.envelopes.demo import TENANT, create_demo
    from portal.app import create_app
    from portal.keys import HEAD

    led = Ledger.init(tmp_path / "home")
    reader = Ledger.open_reader(led.home)  # a worker: reads the database, asks the writer for heads
    try:
        code = next(d["code"] for d in create_demo(led) if d["status"] == "completed")
        reader.log.refresh()
        app = create_app(reader, anchor=False, head=lambda env, size: asyncio.to_thread(led.envelope_head, env, size))
        client = await aiohttp_client(app)
        before = reader.log.size
        if warm:
            r = await client.get(f"/v/{code}.json")
            assert r.status == 200 and (await r.json())["status"] == "completed"
        _void(led, "DEMO-COMPLETED")
        assert reader.log.size == before < led.log.size, "the portal's tree is behind the log"
        env = led.envelope(TENANT, "DEMO-COMPLETED")["env"]
        with pytest.raises(RefusedError) as info:  # a fresh head for the tree from before the void: refused
            await app[HEAD](env, before)
        assert info.value.code == "stale_size"
        r = await client.get(f"/v/{code}.json")
        assert r.status == 200, await r.text()
        _check_one_tree(await r.json(), led.log.size)
        assert reader.log.size == led.log.size, "the portal caught up"
    finally:
        reader.close()
        led.close()


def test_with_workers_the_json_stays_on_one_tree_right_after_a_void(tmp_path: Path) -> None:
    """`ledger serve --workers 2`: right after a void is acknowledged, and while other envelopes keep
    growing the log, every worker answers a copy's JSON with checkpoint, proofs and head about one
    tree, holding the void: never a 5xx, never a head about an older tree than the checkpoint."""
    import threading

    from ledger.access.apikeys import create_key
    from ledger.envelopes.demo import TENANT, create_demo
    from tests.portal.test_serve_workers import _port, _req, _start

    home = tmp_path / "home"
    led = Ledger.init(home)
    key = create_key(led.log, TENANT, ["append", "read"])
    code = next(d["code"] for d in create_demo(led) if d["status"] == "completed")
    led.close()
    cfg = home / "config.toml"  # this test reads more copies than one client may
    cfg.write_text(cfg.read_text().replace("lookup_rate = 10.0", "lookup_rate = 0"))
    port = _port()
    proc = _start(home, port)
    base = f"http://127.0.0.1:{port}"
    stop, errors = threading.Event(), []

    def grow() -> None:  # other envelopes' events, all along: the tree moves under the readers
        k = 0
        while not stop.is_set():
            status, body = _req(base + "/api/v1/envelopes", {"envelope": f"G{k}", "title": "t"}, key)
            if status != 201:
                errors.append((status, body))
            k += 1

    try:
        for _ in range(6):  # both workers cache a head for the tree before the void
            status, v = _req(f"{base}/v/{code}.json")
            assert status == 200 and v["status"] == "completed", v
        grower = threading.Thread(target=grow)
        grower.start()
        try:
            status, body = _req(base + "/api/v1/events", [
                {"type": "void.requested", "envelope": "DEMO-COMPLETED", "party": "lessor", "reason": "error"},
                {"type": "void.consented", "envelope": "DEMO-COMPLETED", "party": "lessee"},
                {"type": "envelope.voided", "envelope": "DEMO-COMPLETED"}], key)
            assert status == 201, body
            acks = body["acks"]
            for _ in range(30):
                status, v = _req(f"{base}/v/{code}.json")
                assert status == 200, v
                assert v["log"]["size"] >= acks[-1]["checkpoint_size"], "a read after the ack sees the void"
                _check_one_tree(v, v["log"]["size"])
        finally:
            stop.set()
            grower.join(timeout=30)
        assert not errors, errors[:3]
    finally:
        proc.terminate()
        proc.wait(timeout=15)


async def test_the_json_checkpoint_is_of_the_tree_its_proofs_are_for(aiohttp_client: Any, tmp_path: Path) -> None:
    """The tree may move on while a copy's view is built (the view reads the size first and the
    checkpoint last): the JSON still carries the checkpoint its proofs and head are about."""
    import asyncio

    from ledger.envelopes.demo import TENANT, create_demo
    from ledger.envelopes.events import parse_events
    from portal.app import create_app

    led = Ledger.init(tmp_path / "home")
    reader = Ledger.open_reader(led.home)
    try:
        code = next(d["code"] for d in create_demo(led) if d["status"] == "completed")
        reader.log.refresh()
        size = reader.log.size
        real_entry, moved = reader.log.entry, []

        def entry(index: int) -> bytes:  # read after the view took its size: the log grows meanwhile
            if not moved:
                moved.append(led.append(TENANT, parse_events([{"type": "envelope.created", "envelope": "LATER",
                                                                "title": "x"}])))
                reader.log.refresh()
            return real_entry(index)

        reader.log.entry = entry  # type: ignore[method-assign]
        app = create_app(reader, anchor=False, head=lambda env, n: asyncio.to_thread(led.envelope_head, env, n))
        r = await (await aiohttp_client(app)).get(f"/v/{code}.json")
        assert r.status == 200, await r.text()
        v = await r.json()
        assert moved and reader.log.size == size + 1, "the tree moved while the view was built"
        from verifier.checkpoint import verify_checkpoint
        from verifier.note import Ed25519Verifier

        cp = verify_checkpoint(v["log"]["checkpoint"], Ed25519Verifier.from_string(v["log"]["verifier_key"]))
        assert cp.checkpoint.size == v["log"]["size"] == size
        head = verify_head(v["log"]["head"], led.verifier, now=datetime.now(UTC), max_age=AGE, size=size)
        assert head.last_index == v["proofs"][-1]["index"]
    finally:
        reader.close()
        led.close()


def test_a_head_never_leaves_out_an_event_stamped_before_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An event is stamped when its batch stages it, before the batch commits: a statement signed
    while that batch commits must wait for it (and is then refused as stale), never be signed later
    than the event while leaving it out (evidence against an honest log)."""
    import threading
    import time

    led = Ledger.init(tmp_path / "home")
    try:
        led.append("t", [{"type": "envelope.created", "envelope": "W", "title": "x"}])
        size = led.log.size
        env = led.envelope("t", "W")["env"]
        commit = led.log.commit
        committing = threading.Event()

        def slow_commit() -> Any:
            committing.set()
            time.sleep(0.4)
            return commit()

        monkeypatch.setattr(led.log, "commit", slow_commit)
        pending = led.submit("t", [{"type": "envelope.withdrawn", "envelope": "W"}])
        assert committing.wait(5)
        try:
            note = led.envelope_head(env, size)  # while the withdrawal, already stamped, commits
        except RefusedError as e:
            assert e.code == "stale_size"
        else:
            raise AssertionError(f"a statement leaving out the withdrawal was signed: {note}")
        (ack,) = pending.result(timeout=10)
        assert ack["index"] == size
    finally:
        led.close()


def test_a_head_does_not_wait_for_another_process_s_write_lock(tmp_path: Path) -> None:
    """A batch waiting for SQLite's write lock (a long `ledger import` in another process) has stamped
    nothing yet: a head need not wait for it."""
    import sqlite3
    import threading
    import time

    led = Ledger.init(tmp_path / "home")
    try:
        led.append("t", [{"type": "envelope.created", "envelope": "W", "title": "x"}])
        size, env = led.log.size, led.envelope("t", "W")["env"]
        other = sqlite3.connect(tmp_path / "home" / "ledger.db", isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process writes, for a while
        release = threading.Timer(2.0, lambda: other.execute("COMMIT"))
        release.start()
        try:
            pending = led.submit("t", [{"type": "envelope.created", "envelope": "X", "title": "y"}])
            time.sleep(0.2)  # the sequencer now waits in BEGIN IMMEDIATE
            started = time.monotonic()
            note = led.envelope_head(env, size)
            assert time.monotonic() - started < 1.0, "the head waited for another process's transaction"
            assert f"\n{size}\n" in note
            pending.result(timeout=10)
        finally:
            release.join()
            other.close()
    finally:
        led.close()


def test_the_writer_signs_a_head_for_a_tree_another_process_published(tmp_path: Path) -> None:
    """With workers, a worker may see a checkpoint that `ledger append` (another process) published
    before the writer has taken it in: the writer states the head all the same, reading the entries
    of that published tree."""
    led = Ledger.init(tmp_path / "home")
    try:
        led.append("t", [{"type": "envelope.created", "envelope": "W", "title": "x"}])
        other = Ledger.open(tmp_path / "home")
        try:
            other.append("t", [{"type": "envelope.created", "envelope": "C", "title": "printed elsewhere"}])
            newer = other.log.size
        finally:
            other.close()
        assert led.log.size < newer, "the writer has not taken the other process's tree in"
        env = led.envelope("t", "C")["env"]
        head = EnvelopeHead.from_body(parse_note(led.envelope_head(env, newer)).text)
        assert (head.size, head.events, head.last_index) == (newer, 1, newer - 1)
    finally:
        led.close()
