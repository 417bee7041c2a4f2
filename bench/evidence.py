"""`python -m bench evidence`: the court-ready evidence bundle, made and checked, beside its bare parts.

1. Export (`ledger.evidence.bundle.export`): an envelope of 3 parties and 20 events (the export's own
   the 20th) with a 20-page PDF: the event appended, the anchor made (local TSA), the evidence
   collected and checked by the verifier, the report rendered and sealed (PAdES), the zip written.
   Target: at most 2 s. Its parts are timed too (collect, self-check, render, seal, zip).
2. `verifier verify` of that bundle (`verifier.evidence.bundle.verify_bundle` on the zip): target at
   most 1 s.
3. The peers, in the same run: pyHanko's bare `sign_pdf` of the same unsealed report with the same key
   and TSA (what sealing costs at the least), and the bare `openssl ts -verify` of the bundle's anchors
   (processes, as an expert runs them). Printed as ratios: export / bare seal, verify / openssl.

Each envelope is exported once (so each bundle has exactly 20 events); the median of `--repeat` runs,
after one warm-up run (imports, fonts), is reported.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report
from bench.documents import contract

PARTIES = (("lessor", "signer", 1, "张三"), ("lessee", "signer", 2, "Example Trading Co., Ltd."),
           ("witness", "cc", 0, "李四"))
EXPORT_TARGET_S, VERIFY_TARGET_S = 2.0, 1.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench evidence", description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="timed runs of each measurement (default 5)")
    p.add_argument("--lang", choices=("zh-CN", "en"), default="zh-CN", help="the report's language")
    return p.parse_args(argv)


def envelope(ref: str, sha: str, size: int) -> list[dict[str, Any]]:
    """19 events; the export appends the 20th."""
    ev: list[dict[str, Any]] = [{"type": "envelope.created", "envelope": ref, "title": "办公室租赁合同 Office lease"},
                                {"type": "document.added", "envelope": ref, "document": "main", "sha256": sha,
                                 "size": size, "name": "lease.pdf"}]
    ev += [{"type": "party.added", "envelope": ref, "party": p, "role": role, "order": order, "name": name}
           for p, role, order, name in PARTIES]
    ev.append({"type": "envelope.sent", "envelope": ref})
    for party, method in (("lessor", "ukey"), ("lessee", "sms")):
        ev += [{"type": "party.viewed", "envelope": ref, "party": party},
               {"type": "party.authenticated", "envelope": ref, "party": party, "method": method},
               {"type": "party.signed", "envelope": ref, "party": party, "channel": "app", "document": "main",
                "signed_sha256": sha}]
    ev += [{"type": "party.viewed", "envelope": ref, "party": "witness"},
           {"type": "envelope.completed", "envelope": ref},
           {"type": "copy.printed", "envelope": ref, "document": "main"},
           {"type": "copy.printed", "envelope": ref, "document": "main"},
           {"type": "party.viewed", "envelope": ref, "party": "lessor"},
           {"type": "party.viewed", "envelope": ref, "party": "lessee"},
           {"type": "party.viewed", "envelope": ref, "party": "witness"}]
    assert len(ev) == 19, len(ev)
    return ev


def _median(fn: Callable[[int], object], repeat: int) -> tuple[float, list[Any]]:
    fn(0)  # warm-up
    samples, results = [], []
    for i in range(1, repeat + 1):
        t = time.perf_counter()
        results.append(fn(i))
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), results


class _Parts:
    """Time the steps of an export by wrapping the functions `ledger.evidence.bundle` calls."""

    def __init__(self) -> None:
        from ledger.evidence import bundle

        self.totals: dict[str, list[float]] = {}
        self.results: dict[str, Any] = {}
        self.bundle = bundle
        for name, label in (("collect", "collect the evidence"), ("check_evidence", "self-check (verifier)"),
                            ("_render", "render the report"), ("_seal", "seal the report")):
            setattr(bundle, name, self._wrap(getattr(bundle, name), label))

    def _wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                out = self.results[label] = fn(*args, **kwargs)
                return out
            finally:
                self.totals.setdefault(label, []).append(time.perf_counter() - t)
        return timed


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    print(report.machine_header(report.machine_info()))
    from ledger.envelopes.core import Ledger, uploaded
    from ledger.envelopes.events import parse_events
    from verifier.evidence.archive import Archive
    from verifier.evidence.bundle import verify_bundle

    parts = _Parts()
    bundle = parts.bundle
    pdf = contract(20)
    with tempfile.TemporaryDirectory(prefix="bench-evidence-") as tmp:
        led = Ledger.init(Path(tmp) / "home")
        try:
            sha, size = led.blobs.put(pdf)
            for i in range(args.repeat + 1):
                events = parse_events(envelope(f"BENCH-{i}", sha, size))
                led.append("bench", [uploaded(e) if e.type == "document.added" else e for e in events])
            zips: list[bytes] = []

            def export(i: int) -> bytes:
                out = io.BytesIO()
                bundle.export(led, "bench", f"BENCH-{i}", lang=args.lang).write(out)
                zips.append(out.getvalue())
                return out.getvalue()

            export_s, _ = _median(export, args.repeat)
            data = zips[-1]
            verify_s, reports = _median(lambda _: verify_bundle(Archive(io.BytesIO(data))), args.repeat)
            assert all(r.ok for r in reports), reports[-1].verdict()
            seal_s = _bare_seal(led, parts.results["render the report"], args.repeat)
            openssl_s, anchors = _openssl(data, args.repeat)
        finally:
            led.close()
    z = zipfile.ZipFile(io.BytesIO(data))
    print(f"\nbundle: {len(data)} bytes, {len(z.namelist())} files, 20 events, a {len(pdf)}-byte 20-page PDF, "
          f"{anchors} anchor(s)")
    print(f"  {'export (record, anchor, collect, check, report, seal, zip)':<58} {export_s * 1000:8.0f} ms  "
          f"target <= {EXPORT_TARGET_S * 1000:.0f} ms: {'met' if export_s <= EXPORT_TARGET_S else 'MISSED'}")
    for label, samples in parts.totals.items():
        print(f"    {label:<56} {statistics.median(samples[1:] or samples) * 1000:8.0f} ms")
    print(f"  {'verifier verify of the bundle':<58} {verify_s * 1000:8.0f} ms  "
          f"target <= {VERIFY_TARGET_S * 1000:.0f} ms: {'met' if verify_s <= VERIFY_TARGET_S else 'MISSED'}")
    print(f"  {'peer: bare pyHanko sign_pdf of the unsealed report':<58} {seal_s * 1000:8.0f} ms")
    if openssl_s is not None:
        print(f"  {'peer: bare openssl ts -verify of the anchors':<58} {openssl_s * 1000:8.0f} ms")
    print(f"\n  export / bare seal of its report: {export_s / seal_s:.2f}")
    if openssl_s is not None:
        print(f"  verify / bare openssl ts -verify of its anchors: {verify_s / openssl_s:.2f}")
    return 0 if export_s <= EXPORT_TARGET_S and verify_s <= VERIFY_TARGET_S else 1


def _bare_seal(led: Any, unsealed: bytes, repeat: int) -> float:
    """pyHanko's own `sign_pdf` of the report as rendered (before its seal), with the ledger's seal key and
    local TSA, at B-T without an appearance: what sealing it costs at the least."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    from ledger.documents.seal import LocalTsaTimeStamper, Sealer
    from ledger.documents.sealca import load_seal
    from ledger.envelopes.sealing import seal_dir

    sealer = Sealer.from_local_seal(load_seal(seal_dir(led)))
    timestamper = LocalTsaTimeStamper(led.local_tsa)

    def bare(_: int) -> bytes:
        meta = signers.PdfSignatureMetadata(field_name="Seal", md_algorithm="sha256",
                                            subfilter=fields.SigSeedSubFilter.PADES)
        writer = IncrementalPdfFileWriter(io.BytesIO(unsealed))
        return bytes(signers.sign_pdf(writer, meta, sealer.signer, timestamper=timestamper).getvalue())

    return _median(bare, repeat)[0]


def _openssl(data: bytes, repeat: int) -> tuple[float | None, int]:
    """`openssl ts -verify` of every anchor of the bundle, as VERIFY.md runs it (one process each)."""
    openssl = shutil.which("openssl")
    z = zipfile.ZipFile(io.BytesIO(data))
    from verifier.evidence.manifest import parse_manifest

    m = parse_manifest(z.read("manifest.json"))
    anchors = [a for a in m.log.anchors if a.renews is None]
    if openssl is None or not anchors:
        return None, len(anchors)
    with tempfile.TemporaryDirectory(prefix="bench-evidence-ts-") as d:
        for name in z.namelist():
            if name.startswith(("anchors/", "checkpoints/", "certs/")):
                (Path(d) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(d) / name).write_bytes(z.read(name))
        body = {c.size: c.body for c in m.log.checkpoints}

        def verify(_: int) -> None:
            for a in anchors:
                subprocess.run([openssl, "ts", "-verify", "-data", body[a.size], "-in", a.file, "-CAfile",
                                m.log.tsa_roots[a.tsa][0]], cwd=d, check=True, capture_output=True)

        return _median(verify, repeat)[0], len(anchors)
