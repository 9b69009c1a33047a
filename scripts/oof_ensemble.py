#!/usr/bin/env python
"""Would averaging two classifiers help? Scores the mean of their out-of-fold probabilities.

    python scripts/oof_ensemble.py runs/v3/fast-288/fast/cv.json runs/v3/accurate-tail/accurate/cv.json

Both runs must come from `damagelens train classify` on the same photos with the same fold seed
(the script checks that the photo lists match). Prints accuracy, macro-F1, damaged-called-normal,
and temperature/ECE/review rule of the mean, next to each member, as one JSON object. Out-of-fold
only: an equal-weight mean needs no fitting, so no fold sees its own labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from damagelens.settings import get_settings
from damagelens.training.calibration import calibration_report, softmax
from damagelens.training.classify import classification_metrics
from damagelens.training.data import LABELS, scan_image_folders


def _probs(cv: dict) -> np.ndarray:
    if "oof_logits" in cv:
        return softmax(np.asarray(cv["oof_logits"]))
    return np.asarray(cv["oof_probs"], dtype=np.float64)


def _score(probs: np.ndarray, labels: np.ndarray) -> dict:
    m = classification_metrics(labels, probs.argmax(1), LABELS)
    cal = calibration_report(np.log(np.clip(probs, 1e-8, 1.0)), labels)
    review = cal["review"]
    return {
        **{k: m[k] for k in ("accuracy", "macro_f1", "condition_accuracy", "damaged_called_normal")},
        "temperature": cal["temperature"],
        "ece_before": cal["ece_before"],
        "ece_after": cal["ece_after"],
        "review_threshold": round(review["threshold"], 4),
        "auto_share": review["auto_share"],
        "auto_accuracy": review["auto_accuracy"],
    }


def main(
    runs: Annotated[list[Path], typer.Argument(help="cv.json of each member (written under <out>/<name>/)")],
    data: Annotated[list[Path] | None, typer.Option(help="the runs' --data folders; default both 6-class folders")] = None,
) -> None:
    base = Path(get_settings().data_dir)
    records, _ = scan_image_folders(list(data or [base / "car-damage-6class", base / "car-damage-6class-more"]))
    labels = np.array([r.label for r in records])
    names = [r.path.name for r in records]
    members = {}
    for path in runs:
        cv = json.loads(path.read_text())
        if cv.get("files") != names:
            raise typer.BadParameter(f"{path}: its photo list differs from the scanned data (other --data or order)")
        members[str(path)] = _probs(cv)
    mean = np.mean(list(members.values()), axis=0)
    out = {"members": {k: _score(p, labels) for k, p in members.items()}, "mean": _score(mean, labels), "n": len(labels)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    typer.run(main)
