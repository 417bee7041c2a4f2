"""A PostgreSQL ledger keeps the documents' bytes in its database, so that any host serves any document.

Two ledger folders against one database, as two hosts are (README, "Three hosts"): a document host A
stored is opened, printed and exported through host B, whose `blobs/` folder never had it, with the
same bytes. An upload whose database session is cut mid-transaction is a `StorageError` that leaves
no part of the document in the database, and the same upload sent again is stored. A database copy
changed behind the triggers (a superuser's session that skips them, as `tests.storage.test_tamper`)
is refused rather than served, and the audit names it; so is a damaged file in a host's cache. The
triggers refuse UPDATE and DELETE of both tables.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.scale.servers import free_port
from ledger.audit.run import audit
from ledger.documents._blobdb import CHUNK
from ledger.documents.blobs import BlobStore
from ledger.envelopes import printing
from ledger.envelopes.core import Ledger, uploaded
from ledger.envelopes.demo import demo_pdf
from ledger.envelopes.events import parse_events
from ledger.errors import IntegrityError, NotFoundError, StorageError
from ledger.evidence import bundle
from tests.envelopes.test_lifecycle import completed
from tests.storage.test_tamper import PgRaw

T = "tenant-a"


def _hosts(tmp_path: Path, url: str) -> tuple[Path, Path]:
    """Two ledger folders of one ledger on `url`: B a copy of A made before any document was stored."""
    a, b = tmp_path / "host-a", tmp_path / "host-b"
    Ledger.init(a, database=url).close()
    shutil.copytree(a, b)
    return a, b


def _contract(led: Ledger, env: str, pdf: bytes) -> str:
    """A completed contract whose document's bytes `led` stored itself (downloadable: the audit checks it)."""
    sha, size = led.blobs.put(pdf)
    added = uploaded(parse_events({"type": "document.added", "envelope": env, "document": "d", "sha256": sha,
                                   "size": size, "name": "c.pdf", "download": "public"})[0])
    events = [added if e["type"] == "document.added" else parse_events(e)[0] for e in completed(env)]
    led.append(T, events)
    return sha


def _rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as c:
        return list(c.execute(sql, params).fetchall())


def test_a_document_stored_through_one_host_is_served_by_the_other(tmp_path: Path, pg_database: str) -> None:
    a, b = _hosts(tmp_path, pg_database)
    pdf = demo_pdf("Lease", "A contract uploaded through host A.")
    led_a = Ledger.open(a)
    try:
        sha = _contract(led_a, "E1", pdf)
        (ack,) = led_a.append(T, [{"type": "copy.printed", "envelope": "E1", "document": "d"}])
        printed_a, _ = printing.printed_copy(led_a, T, ack)
    finally:
        led_a.close()
    assert _rows(pg_database, "SELECT size, chunks FROM blobs WHERE sha256 = %s", sha) == [(len(pdf), 1)]
    assert not (b / "blobs").exists()
    led_b = Ledger.open(b)
    try:
        assert led_b.blobs.has(sha) and not led_b.blobs.local(sha).exists()
        assert led_b.blobs.open(sha).read_bytes() == pdf  # fetched into B's folder, checked, linked
        assert led_b.blobs.local(sha).is_file()
        assert [p.name for p in (b / "blobs").iterdir()] == [sha[:2]], "no temporary file left behind"
        led_b.blobs.local(sha).unlink()  # printing and exporting fetch it again by themselves
        printed_b, name = printing.printed_copy(led_b, T, ack)
        # a copy is an incremental update of the stored bytes: B's begins with the very bytes A stored, as A's
        assert printed_b.startswith(pdf) and printed_a.startswith(pdf) and len(printed_b) == len(printed_a)
        assert name.endswith("-copy-1.pdf")
        led_b.blobs.local(sha).unlink()
        ex = bundle.export(led_b, T, "E1", lang="en")
        with zipfile.ZipFile(io.BytesIO(b"".join(ex.chunks()))) as z:
            docs = [n for n in z.namelist() if hashlib.sha256(z.read(n)).hexdigest() == sha]
            assert docs and all(z.read(n) == pdf for n in docs), z.namelist()
        assert list(led_b.blobs.stored()) == [sha]
        rep = audit(led_b.log, blobs=led_b.blobs)
        assert rep.ok and rep.documents == 1 and rep.unreferenced == 0, rep.problems
    finally:
        led_b.close()


def test_an_upload_cut_off_from_the_database_stores_nothing_and_its_retry_stores_it(
        tmp_path: Path, pg_database: str) -> None:
    """The session is cut (pg_terminate_backend) after the chunks are written, while the `blobs` row waits
    on a lock: nothing of the document stays in the database, and sending it again stores it."""
    a, b = _hosts(tmp_path, pg_database)
    pdf = demo_pdf("Big", "Three chunks.") + b"%" + b"0" * (2 * CHUNK + 17)  # 3 chunks
    sha = hashlib.sha256(pdf).hexdigest()
    led = Ledger.open(a)
    try:
        with psycopg.connect(pg_database) as admin:
            admin.execute("LOCK TABLE blobs IN EXCLUSIVE MODE")  # reads go on; the upload's INSERT waits
            failed: list[BaseException] = []
            upload = threading.Thread(target=lambda: _catch(failed, led.blobs.put, pdf))
            upload.start()
            deadline = time.monotonic() + 10
            while not _rows(pg_database, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                            "application_name = 'ledger-blobs' AND wait_event_type = 'Lock'"):
                assert time.monotonic() < deadline and upload.is_alive(), failed
                time.sleep(0.02)
            upload.join(10)
            admin.rollback()
        assert len(failed) == 1 and isinstance(failed[0], StorageError), failed
        assert failed[0].status == 503 and "nothing was acknowledged: send it again" in str(failed[0])
        assert _rows(pg_database, "SELECT count(*) FROM blobs WHERE sha256 = %s", sha) == [(0,)]
        assert _rows(pg_database, "SELECT count(*) FROM blob_chunks WHERE sha256 = %s", sha) == [(0,)]
        assert led.blobs.local(sha).is_file(), "the host's own file was finished before the database"
        assert led.blobs.put(pdf) == (sha, len(pdf))  # the retry: the file is there already, the database gets it
        assert _rows(pg_database, "SELECT size, chunks FROM blobs WHERE sha256 = %s", sha) == [(len(pdf), 3)]
    finally:
        led.close()
    other = BlobStore(b / "blobs", max_size=1 << 30, database=pg_database)
    assert other.open(sha).read_bytes() == pdf


def _catch(out: list[BaseException], f: Any, *args: Any) -> None:
    try:
        f(*args)
    except BaseException as e:
        out.append(e)


def test_a_database_that_cannot_be_reached_is_a_storage_error_that_names_no_password(tmp_path: Path) -> None:
    url = f"postgresql://ledger@127.0.0.1:{free_port()}/evidence"  # nothing listens there
    store = BlobStore(tmp_path / "blobs", max_size=1 << 20, database=url, password="s3cret-never-shown")
    with pytest.raises(StorageError, match="nothing was acknowledged") as info:
        store.put(b"%PDF- a document")
    assert "s3cret" not in str(info.value) and info.value.status == 503
    with pytest.raises(StorageError, match="could not read document"):
        store.open("ab" * 32)


# Each changes one document's copy in the database behind the triggers (`?`: its SHA-256).
TAMPER = {
    "a byte of a chunk": ("UPDATE blob_chunks SET data = overlay(data PLACING '\\x58'::bytea FROM 200) "
                          "WHERE sha256 = ?"),
    "a chunk deleted": "DELETE FROM blob_chunks WHERE sha256 = ?",
    "a chunk added": "INSERT INTO blob_chunks (sha256, seq, data) VALUES (?, 1, '\\x00'::bytea)",
    "the row deleted": "DELETE FROM blobs WHERE sha256 = ?",
    "another size": "UPDATE blobs SET size = size - 1 WHERE sha256 = ?",
}


def test_a_changed_database_copy_is_refused_and_the_audit_names_it(tmp_path: Path, pg_database: str) -> None:
    """Host A still has its own intact files; the audit names the database's copies all the same (they are the
    record), and host B, which has to fetch them, serves none that does not hash to its name."""
    a, b = _hosts(tmp_path, pg_database)
    led_a = Ledger.open(a)
    try:
        shas = {case: _contract(led_a, f"E{k}", demo_pdf("Lease", f"Contract {k}: {case}."))
                for k, case in enumerate(TAMPER)}
        (ack,) = led_a.append(T, [{"type": "copy.printed", "envelope": "E0", "document": "d"}])
        assert audit(led_a.log, blobs=led_a.blobs).ok
        raw = PgRaw(pg_database, triggers=False)  # a superuser's session that skips the triggers
        try:
            for case, sql in TAMPER.items():
                assert raw.execute(sql, (shas[case],)).rowcount == 1, case
        finally:
            raw.close()
        for led in (led_a, led_b := Ledger.open(b)):
            rep = audit(led.log, blobs=led.blobs)
            for case, sha in shas.items():
                assert [p for p in rep.problems if sha in p and "its copy in the ledger's database" in p
                        and "is damaged" in p], (case, rep.problems)
    finally:
        led_a.close()
    try:
        for case, sha in shas.items():
            if case == "a chunk added":  # the chunks the row names are whole: what is served hashes to its name
                assert hashlib.sha256(led_b.blobs.open(sha).read_bytes()).hexdigest() == sha
                led_b.blobs.local(sha).unlink()
                continue
            with pytest.raises(IntegrityError if case != "the row deleted" else NotFoundError) as info:
                led_b.blobs.open(sha)
            assert info.value.code == ("damaged_document" if case != "the row deleted" else "unknown_document"), case
        with pytest.raises(IntegrityError, match="is not served"):
            printing.printed_copy(led_b, T, ack)
        assert not [p for p in (b / "blobs").rglob("*") if p.is_file()], "nothing of the changed copies was kept"
    finally:
        led_b.close()


def test_a_cached_file_damaged_on_one_host_is_named_by_its_audit(tmp_path: Path, pg_database: str) -> None:
    a, _ = _hosts(tmp_path, pg_database)
    led = Ledger.open(a)
    try:
        sha = _contract(led, "E1", demo_pdf("Lease", "A contract."))
        cached = led.blobs.local(sha)
        cached.chmod(0o600)
        cached.write_bytes(cached.read_bytes()[:-1] + b"X")
        rep = audit(led.log, blobs=led.blobs)
        assert [p for p in rep.problems if sha in p] == [
            f"the original of document 1 of envelope {led.envelope(T, 'E1')['env']} (entry 1) cached on this host, "
            f"{cached}, no longer hashes to {sha}: this copy is damaged; delete it (it is fetched again from the "
            "database)"], rep.problems
        cached.unlink()  # the remedy the audit gives
        assert led.blobs.open(sha).read_bytes()[-1:] != b"X"
        assert audit(led.log, blobs=led.blobs).ok
    finally:
        led.close()


def test_the_triggers_refuse_to_change_stored_documents(tmp_path: Path, pg_database: str) -> None:
    Ledger.init(tmp_path / "home", database=pg_database).close()  # the schema
    store = BlobStore(tmp_path / "blobs", max_size=1 << 20, database=pg_database)
    sha, _ = store.put(b"%PDF- a document")
    for statement in ("UPDATE blob_chunks SET data = '\\x00'", "DELETE FROM blob_chunks", "TRUNCATE blob_chunks",
                      "UPDATE blobs SET size = 1", "DELETE FROM blobs", "TRUNCATE blobs"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            _rows(pg_database, statement)
    assert _rows(pg_database, "SELECT size, chunks FROM blobs WHERE sha256 = %s", sha) == [(16, 1)]
    assert store.digest(sha) == sha


def test_documents_stored_before_are_served_by_their_host_and_pushed_into_the_database(
        tmp_path: Path, pg_database: str) -> None:
    """Files the database holds no part of (a ledger migrated from SQLite) stay the record on their host until
    `push_local` stores them in the database; a damaged one is left out."""
    Ledger.init(tmp_path / "home", database=pg_database).close()  # the schema
    folder = BlobStore(tmp_path / "blobs", max_size=1 << 20)  # the folder alone, as on SQLite
    good, _ = folder.put(b"%PDF- stored before the move")
    bad, _ = folder.put(b"%PDF- damaged since")
    folder.local(bad).chmod(0o600)
    folder.local(bad).write_bytes(b"%PDF- something else")
    store = BlobStore(tmp_path / "blobs", max_size=1 << 20, database=pg_database)
    assert store.db is not None and store.db.digest(good) is None
    assert store.digest(good) == good and store.digest(bad) != bad and store.damaged_cache(bad) is None
    assert store.open(good).read_bytes() == b"%PDF- stored before the move"
    assert store.push_local() == 1
    assert store.db.digest(good) == good and not store.db.holds(bad)
    assert store.push_local() == 0
    assert list(store.stored()) == sorted([good, bad])
