#!/usr/bin/env python3
"""Print the chaos suite's JSON lines (CHAOS_REPORT, default var/chaos/report.jsonl) as the
Markdown table of docs/reliability.md.

    python scripts/chaos_table.py var/chaos/report.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(d: dict) -> str:
    failed = ", ".join(f"{n} `{code}`" for code, n in d["failed"].items()) or "0"
    recovery = "—" if d["recovery_s_p50"] is None else f"{d['recovery_s_p50']} s / {d['recovery_s_max']} s"
    cells = [
        d["scenario"],
        d["submitted"],
        d["accepted"],
        d["succeeded"],
        failed,
        f"**{d['lost']}**",
        f"**{d['stuck']}**",
        f"**{d['duplicated_artifacts']}**",
        d["double_counted_stages"],
        d.get("orphan_objects", 0),
        d["rejected_503"],
        recovery,
        f"{d['submit_ms_p50']:.0f} / {d['submit_ms_p99']:.0f} ms",
    ]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "var/chaos/report.jsonl")
    print(
        "| scenario | submitted | accepted | succeeded | failed (codes) | lost | stuck | dup. artifacts | double-counted"
        " | orphan objects | 503s met | recovery p50 / max | submit p50 / p99 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for line in path.read_text().splitlines():
        if line.strip():
            print(row(json.loads(line)))


if __name__ == "__main__":
    main()
