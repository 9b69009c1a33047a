#!/usr/bin/env python
"""Markdown rows from the compact CV summaries that `damagelens train classify --report FILE` writes.

    python scripts/cv_table.py docs/models/runs/v2/*.json
    python scripts/cv_table.py --card docs/models/runs/v2/fast-v2-cv.json   # the model-card tables of one run

One row per file: grouped-CV accuracy / macro-F1 / fold std, damaged-called-normal share, the
cross-check on the original 169 photos, ECE before/after temperature scaling and the review rule.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def damaged_called_normal(confusion: list[list[int]]) -> float:
    cm = np.asarray(confusion)
    damaged = [i for i in range(6) if i % 3 != 2]
    return float(cm[damaged][:, [2, 5]].sum() / cm[damaged].sum())


def row(path: Path) -> str:
    s = json.loads(path.read_text())
    cal, check = s.get("calibration", {}), s.get("cross_check", {})
    review = cal.get("review", {})
    cells = [
        path.stem,
        f"{s['accuracy']:.3f}",
        f"{s['macro_f1']:.3f}",
        f"{s['fold_accuracy_std']:.3f}",
        f"{damaged_called_normal(s['confusion']):.3f}",
        f"{check['accuracy']:.3f}" if check else "–",
        f"{cal['ece_before']:.3f} → {cal['ece_after']:.3f} (T {cal['temperature']:.2f})" if cal else "–",
        f"{review['threshold']:.2f}: {review['auto_share']:.0%} at {review['auto_accuracy']:.3f}" if review.get("auto_accuracy") else "–",
        f"{s.get('cv_seconds', s.get('seconds', 0)) / 60:.0f} min",
    ]
    return "| " + " | ".join(cells) + " |"


def card(path: Path) -> str:
    """Per-class recall, confusion matrix, cross-check, calibration and review tables of one run."""
    from damagelens.training.report import confusion_markdown

    s = json.loads(path.read_text())
    labels = list(s["per_class_recall"])
    check, cal = s.get("cross_check"), s["calibration"]
    out = ["| class | grouped-CV recall | 169 cross-check recall |", "|---|---|---|"]
    for label in labels:
        other = f"{check['per_class_recall'][label]:.3f}" if check else "–"
        out.append(f"| {label} | {s['per_class_recall'][label]:.3f} | {other} |")
    out += ["", "| fold | n | accuracy | macro-F1 |", "|---|---|---|---|"]
    out += [f"| {i + 1} | {f['n']} | {f['accuracy']:.3f} | {f['macro_f1']:.3f} |" for i, f in enumerate(s["folds"])]
    out += ["", "Grouped CV, out-of-fold (rows = true, columns = predicted):", "", confusion_markdown(s["confusion"], labels)]
    if check:
        out += ["Cross-check, trained on `-more` only, tested on the 169:", "", confusion_markdown(check["confusion"], labels)]
    out += ["| calibration (out-of-fold, served view) | before | after |", "|---|---|---|"]
    out.append(f"| temperature | 1 | {cal['temperature']:.3f} |")
    out.append(f"| ECE (15 bins) | {cal['ece_before']:.4f} | {cal['ece_after']:.4f} |")
    out.append(f"| NLL | {cal['nll_before']:.4f} | {cal['nll_after']:.4f} |")
    if check and "ece_before" in check:
        out.append(f"| ECE on the 169 cross-check | {check['ece_before']:.4f} | {check['ece_after']:.4f} |")
    r = cal["review"]
    out += ["", "| review rule (target ≥ 0.95 correct) | threshold | auto-accepted | accuracy accepted | accuracy sent to review |"]
    out.append("|---|---|---|---|---|")
    cells = f"{r['threshold']:.4f} | {r['auto_share']:.1%} | {r['auto_accuracy']} | {r['review_accuracy']}"
    out.append(f"| grouped CV, out-of-fold | {cells} |")
    if check and "review_at_threshold" in check:
        c = check["review_at_threshold"]
        cells = f"{c['threshold']:.4f} | {c['auto_share']:.1%} | {c['auto_accuracy']} | {c['review_accuracy']}"
        out.append(f"| 169 cross-check, same threshold | {cells} |")
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1] == "--card":
        print(card(Path(sys.argv[2])))
        sys.exit(0)
    print(
        "| run | grouped-CV acc | macro-F1 | fold std | damaged → Normal | 169 cross-check acc | ECE before → after "
        "| review threshold: auto share at accuracy | CV wall |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        print(row(Path(arg)))
