"""Checking an uploaded PDF in a process of its own, with a time and a memory limit.

A PDF reader can be made to work for long by a hostile file (a cross-reference table of millions of
entries, deep nesting): in the portal's process that would hold its event loop for seconds. So each
portal process keeps one checker process (`python -m portal.pdfcheck`), started on the first upload,
which reads a request a line and answers a line of JSON: a path (`PdfChecker.check`: can a reader open the
upload?) or a JSON object asking for a PDF's signatures (`PdfChecker.signatures`: `verifier.documents.pdfsig` on a
file the portal holds, with the trust roots and moment it sends). A check that takes longer than
`CHECK_TIMEOUT_S` is a refusal of the file, and the checker is killed and started again for the next
upload; so is one that runs out of its memory limit.

Whose fault, and so which answer: whatever the reader raises on the bytes is about the file, 422
`not_pdf` (a seek before the start of the file, to `startxref -5` say, is one: the reader's file
refuses it as bytes in memory would, not with an OSError, which is left to the disk); so is a file
that gets the reader killed by a signal twice. A checker that cannot be started, cannot read the
stored upload (an OSError: the disk's), exits by itself or answers what is not its protocol is a
failure of this server: `StorageError`, 503, and nothing is stored.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import io
import json
import os
import resource
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.errors import RefusedError, StorageError
from verifier.documents.pdfsig import PdfReport
from verifier.errors import FormatError

CHECK_TIMEOUT_S = 10.0
MEMORY_LIMIT = 2 << 30  # address space of the checker process


class _Upload(io.BufferedReader):
    """The stored upload as the reader sees it. A seek to a position the system refuses (before the
    start of the file, or beyond the largest file it can hold: EINVAL) is an error of the file, which
    gave the reader that offset: a ValueError, as with bytes in memory. So an OSError while reading is
    only ever the disk's."""

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        try:
            return super().seek(offset, whence)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            raise ValueError(f"the file sends the reader to offset {offset} (whence {whence}), which is not "
                             "in any file") from None


def check_pdf(path: Path | str) -> None:
    """Refuse what a PDF reader cannot open or that has no pages. A hostile file can make the reader fail
    in any way (recursion, assertions, ...): every failure of the reader is a refusal of the file; an
    OSError (reading our own temporary file) is raised as it is."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    with _Upload(io.FileIO(path, "rb")) as f:
        try:
            r = PdfFileReader(f, strict=False)
            pages = int(r.root["/Pages"]["/Count"])
        except (MemoryError, OSError):
            raise
        except Exception as e:  # noqa: BLE001  # the reader's failure on this file, whatever its kind
            raise RefusedError(f"the upload is not a readable PDF: {type(e).__name__}: {str(e)[:200]}",
                               code="not_pdf", status=422) from None
    if pages < 1:
        raise RefusedError("the PDF has no pages", code="not_pdf", status=422)


def _not_pdf(why: str) -> RefusedError:
    return RefusedError(why, code="not_pdf", status=422)


def _checker_failed(why: str) -> StorageError:
    return StorageError(f"the PDF checker failed: {why}; nothing was stored; send the document again later")


class PdfChecker:
    """One portal process's checker process; checks take turns (uploads are rate-limited anyway)."""

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def check(self, path: Path) -> None:
        """Refuse (RefusedError, 422) an upload a PDF reader cannot open or that has no pages."""
        # An absolute path begins with "/", never with the "{" of a JSON request.
        answer = await self._ask(str(Path(path).absolute()).encode())
        if answer.get("error"):
            raise _not_pdf(str(answer["error"]))

    async def signatures(self, path: Path, roots: Sequence[bytes], at: datetime,
                         tsa_roots: Sequence[bytes] = ()) -> PdfReport:
        """The signatures of the PDF at `path` (not stored), checked by `verifier.documents.pdfsig.check_pdf` with the
        given roots (DER or PEM) at the aware moment `at`, in the checker process, within its limits.

        Raises:
            RefusedError: 422 `not_pdf`: the file is refused (not a PDF, encrypted, too large, damaged,
                or it kept the checker past its time or memory limit).
            StorageError: 503: the checker failed.
        """
        request = {"signatures": str(Path(path).absolute()), "at": at.isoformat(),
                   "roots": [base64.b64encode(r).decode() for r in roots],
                   "tsa_roots": [base64.b64encode(r).decode() for r in tsa_roots]}
        answer = await self._ask(json.dumps(request).encode())
        if answer.get("error"):
            raise _not_pdf(str(answer["error"]))
        try:
            return PdfReport.from_json(answer["report"])
        except (KeyError, TypeError, FormatError):
            raise _checker_failed(f"it answered {str(answer)[:100]!r}") from None

    async def _ask(self, request: bytes) -> dict[str, Any]:
        """Send one request line and read the answer line, restarting a checker that died once."""
        timeout = CHECK_TIMEOUT_S if self.timeout_s is None else self.timeout_s
        async with self._lock:
            # A checker that died (killed while idle, or by this very file) is started again once: a file
            # that gets it killed twice is refused; a checker that exits by itself twice is broken.
            for attempt in (1, 2):
                proc = await self._started()
                assert proc.stdin is not None and proc.stdout is not None
                try:
                    proc.stdin.write(request + b"\n")
                    await proc.stdin.drain()
                    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
                except TimeoutError:
                    await self._stop()
                    raise _not_pdf(f"the PDF could not be checked within {timeout:g} s") from None
                except (BrokenPipeError, ConnectionResetError):
                    line = b""
                if line:
                    break
                status = await self._ended()
                if attempt == 2:
                    if status is not None and status < 0:  # killed by a signal while reading this file, twice
                        raise _not_pdf(f"the PDF could not be checked: the reader was killed (signal {-status}) "
                                       "while reading it, twice")
                    raise _checker_failed(f"its process exited by itself (status {status})")
            try:
                answer = json.loads(line)
                if not isinstance(answer, dict):
                    raise ValueError(answer)
            except ValueError:
                await self._stop()
                raise _checker_failed(f"it answered {line[:100]!r}") from None
        if answer.get("failed"):
            raise _checker_failed(f"it could not read the stored upload ({answer['failed']})")
        return answer

    async def _started(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "portal.pdfcheck", stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE)
            except OSError as e:
                raise _checker_failed(f"its process could not be started ({e.strerror or e})") from e
        return self._proc

    async def _ended(self) -> int | None:
        """The exit status of a checker that closed its output (negative: the signal that killed it)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            return await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:  # it closed its output but lives on: not a checker any more
            proc.kill()
            await proc.wait()
            return None

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def close(self) -> None:
        async with self._lock:
            await self._stop()


def _signatures(request: dict[str, Any]) -> dict[str, Any]:
    """Answer a signatures request: `check_pdf` on the named file, with the roots and moment it gives."""
    from verifier.documents.pdfsig import MAX_PDF_BYTES
    from verifier.documents.pdfsig import check_pdf as check_signatures

    path = Path(request["signatures"])
    with _Upload(io.FileIO(path, "rb")) as f:
        pdf = f.read(MAX_PDF_BYTES + 1)  # a larger file is refused by its size, not read in full
    at = datetime.fromisoformat(request["at"])
    roots = [base64.b64decode(r, validate=True) for r in request["roots"]]
    tsa_roots = [base64.b64decode(r, validate=True) for r in request.get("tsa_roots", [])]
    try:
        report = check_signatures(pdf, roots=roots, at=at, tsa_roots=tsa_roots)
    except FormatError as e:
        return {"error": str(e), "code": e.code}
    return {"report": report.to_json()}


def _answer(line: str) -> dict[str, Any]:
    if line.startswith("{"):
        return _signatures(json.loads(line))
    check_pdf(line)
    return {"ok": True}


def main() -> None:
    """The checker process, a request a line in and a line of JSON out. A request is either a path (check
    an upload: `{"ok": true}` or `{"error": ...}`) or a JSON object `{"signatures": PATH, "roots": [BASE64],
    "tsa_roots": [BASE64], "at": RFC3339}` (check its signatures: `{"report": ...}` or `{"error": ...}`).
    `{"failed": ...}` is a fault of this server: the file could not be read."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    answers, sys.stdout = sys.stdout, sys.stderr  # whatever else writes to stdout must not break the protocol
    for line in sys.stdin:
        try:
            answer = _answer(line.rstrip("\n"))
        except RefusedError as e:
            answer = {"error": str(e)}
        except MemoryError:
            answer = {"error": "the PDF could not be checked: the reader ran out of its memory limit"}
        except OSError as e:  # our own temporary file: a fault of this server, not of the upload
            answer = {"failed": str(e.strerror or e)}
        except (KeyError, TypeError, ValueError) as e:  # a request the portal should not have sent
            answer = {"failed": f"a request the checker does not understand ({type(e).__name__}: {e})"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
