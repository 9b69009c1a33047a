#!/usr/bin/env python3
"""Benchmark one inspection on a running DamageLens stack: submit, time to finish, report sizes
and render times (HTML and PDF).

Usage: make run (in another terminal), then
    .venv/bin/python scripts/bench_inspection.py --url http://127.0.0.1:8000 --n 12 --model fast
Prints numbers as JSON; asserts nothing (these machines are noisy).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))
from damagelens.client import DamageLensClient
from damagelens.settings import get_settings

FOLDERS = ("F_Breakage", "F_Crushed", "F_Normal", "R_Breakage", "R_Crushed", "R_Normal")


def photos(data_dir: Path, n: int) -> list[Path]:
    root = data_dir / "car-damage-6class"
    per_class = [sorted((root / f).glob("*.jpg")) for f in FOLDERS]
    if not any(per_class):
        raise SystemExit(f"no photos under {root} (set --data)")
    picked = [p for i in range(n) for p in [per_class[i % 6][i // 6]] if p]
    return picked[:n]


def pdf_pages(pdf: bytes) -> int | None:
    """Pages as poppler's pdfinfo reads them (None without poppler-utils)."""
    if shutil.which("pdfinfo") is None:
        return None
    out = subprocess.run(["pdfinfo", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    return int(next(line.split()[-1] for line in out.splitlines() if line.startswith("Pages:")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--data", type=Path, default=get_settings().data_dir)
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--model", default="fast")
    args = parser.parse_args()
    chosen = photos(args.data, args.n)
    with DamageLensClient(args.url, args.api_key, timeout=300) as client:
        t0 = time.perf_counter()
        accepted = client.submit_inspection(chosen, model=args.model)
        submitted = time.perf_counter() - t0
        done = client.wait(accepted.id, kind="inspection", timeout=1800)
        finished = time.perf_counter() - t0
        t1 = time.perf_counter()
        html = client.report(done.id)
        html_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        pdf = client.report(done.id, format="pdf")
        pdf_s = time.perf_counter() - t2
    print(
        json.dumps(
            {
                "photos": len(chosen),
                "model": args.model,
                "status": done.status.value,
                "submit_seconds": round(submitted, 2),
                "finished_seconds": round(finished, 1),
                "report_html_seconds": round(html_s, 2),
                "report_html_bytes": len(html),
                "report_pdf_seconds": round(pdf_s, 2),
                "report_pdf_bytes": len(pdf),
                "pdf_pages": pdf_pages(pdf),
                "summary": done.summary.model_dump(mode="json", exclude={"uncertain_photos"}),
                "uncertain_photos": len(done.summary.uncertain_photos),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
