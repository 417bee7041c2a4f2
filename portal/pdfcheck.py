"""Checking an uploaded PDF in a process of its own, with a time and a memory limit.

A PDF reader can be made to work for long by a hostile file (a cross-reference table of millions of
entries, deep nesting): in the portal's process that would hold its event loop for seconds. So each
portal process keeps one checker process (`python -m portal.pdfcheck`), started on the first upload,
which reads a path a line and answers a line of JSON. A check that takes longer than
`CHECK_TIMEOUT_S` is a refusal of the file, and the checker is killed and started again for the next
upload; so is one that runs out of its memory limit.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from pathlib import Path

from ledger.errors import RefusedError, StorageError

CHECK_TIMEOUT_S = 10.0
MEMORY_LIMIT = 2 << 30  # address space of the checker process


def check_pdf(path: Path | str) -> None:
    """Refuse what a PDF reader cannot open or that has no pages. A hostile file can make the reader fail
    in any way (recursion, assertions, ...): every failure of the reader is a refusal of the file."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        with open(path, "rb") as f:
            r = PdfFileReader(f, strict=False)
            pages = int(r.root["/Pages"]["/Count"])
    except (MemoryError, OSError):
        raise
    except Exception as e:  # noqa: BLE001  # the reader's failure on this file, whatever its kind
        raise RefusedError(f"the upload is not a readable PDF: {type(e).__name__}: {str(e)[:200]}", code="not_pdf",
                           status=422) from None
    if pages < 1:
        raise RefusedError("the PDF has no pages", code="not_pdf", status=422)


def _not_pdf(why: str) -> RefusedError:
    return RefusedError(why, code="not_pdf", status=422)


class PdfChecker:
    """One portal process's checker process; checks take turns (uploads are rate-limited anyway)."""

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def check(self, path: Path) -> None:
        timeout = CHECK_TIMEOUT_S if self.timeout_s is None else self.timeout_s
        async with self._lock:
            # A checker that died (killed while idle, or out of memory on this very file) is started
            # again once: a file that kills it twice is refused.
            for attempt in (1, 2):
                proc = await self._started()
                assert proc.stdin is not None and proc.stdout is not None
                try:
                    proc.stdin.write(str(path).encode() + b"\n")
                    await proc.stdin.drain()
                    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
                except TimeoutError:
                    await self._stop()
                    raise _not_pdf(f"the PDF could not be checked within {timeout:g} s") from None
                except (BrokenPipeError, ConnectionResetError):
                    line = b""
                if line:
                    break
                await self._stop()
                if attempt == 2:
                    raise _not_pdf("the PDF could not be checked: the reader ran out of its memory limit")
        answer = json.loads(line)
        if answer.get("failed"):
            raise StorageError(f"could not check the stored upload: {answer['failed']}")
        if answer.get("error"):
            raise _not_pdf(str(answer["error"]))

    async def _started(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "portal.pdfcheck", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE)
        return self._proc

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def close(self) -> None:
        async with self._lock:
            await self._stop()


def main() -> None:
    """The checker process: a path a line in, `{"ok": true}` or `{"error": ...}` a line out."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    for line in sys.stdin:
        try:
            check_pdf(line.rstrip("\n"))
            answer: dict[str, object] = {"ok": True}
        except RefusedError as e:
            answer = {"error": str(e)}
        except MemoryError:
            answer = {"error": "the PDF could not be checked: the reader ran out of its memory limit"}
        except OSError as e:  # our own temporary file: a fault of this server, not of the upload
            answer = {"failed": str(e.strerror or e)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
