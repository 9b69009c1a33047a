"""Markdown tables of a `damagelens quantize cv` report (docs/models/int8.md): pooled FP32 vs INT8 and per fold."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def tables(report: dict) -> str:
    base = report["fp32"]
    variants = [k for k in report if k.startswith("int8_")]
    lines = [
        f"Photos scored: {report['photos_scored']} of {report.get('n', '?')} (out of fold).",
        "",
        "| graph | accuracy | macro-F1 | top-1 agreement with FP32 | max / mean-max prob. diff | median ms (batch 1, 1 thread) |",
        "|---|---|---|---|---|---|",
        f"| FP32 | {base['accuracy']:.4f} | {base['macro_f1']:.4f} | — | — | {base['median_ms']:.2f} |",
    ]
    for key in variants:
        r = report[key]
        lines.append(
            f"| INT8 {key.removeprefix('int8_')} | {r['accuracy']:.4f} ({-r['accuracy_drop_points']:+.2f} pt) | "
            f"{r['macro_f1']:.4f} ({-r['macro_f1_drop_points']:+.2f} pt) | {r['top1_agreement']:.4f} | "
            f"{r['max_abs_prob_diff']:.3f} / {r['mean_abs_prob_diff']:.3f} | {r['median_ms']:.2f} ({r['speedup']:.2f}×) |"
        )
    head = "| fold | n | FP32 acc | FP32 F1 | FP32 ms |" + "".join(f" {k} acc | {k} F1 | {k} ms | agreement |" for k in variants)
    lines += ["", head, "|" + "---|" * (5 + 4 * len(variants))]
    for f in report["folds"]:
        row = f"| {f['fold']} | {f['n']} | {f['fp32']['accuracy']:.4f} | {f['fp32']['macro_f1']:.4f} | {f['fp32']['median_ms']:.2f} |"
        for k in variants:
            m = f[k.removeprefix("int8_")]
            row += f" {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['median_ms']:.2f} | {m['top1_agreement']:.4f} |"
        lines.append(row)
    lines += ["", "| class | FP32 recall |" + "".join(f" {k} recall |" for k in variants), "|---|---|" + "---|" * len(variants)]
    for label, recall in base["per_class_recall"].items():
        lines.append(f"| {label} | {recall:.3f} |" + "".join(f" {report[k]['per_class_recall'][label]:.3f} |" for k in variants))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", type=Path, nargs="+", help="JSON written by `damagelens quantize cv --report`")
    for path in parser.parse_args().report:
        print(f"### {path}\n\n{tables(json.loads(path.read_text()))}\n")


if __name__ == "__main__":
    main()
