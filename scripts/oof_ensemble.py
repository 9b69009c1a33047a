#!/usr/bin/env python
"""Would averaging two classifiers help? Scores the mean of their out-of-fold probabilities.

    python scripts/oof_ensemble.py runs/v3/fast-288/fast/cv.json runs/v3/accurate-tail/accurate/cv.json \\
        --out docs/models/runs/v2/ensemble-v3-oof.json --plots docs/models --name accurate-v4
    # and serve it: the mean of the registered members, with the calibration and metrics printed here
    python scripts/oof_ensemble.py RUN_A/cv.json RUN_B/cv.json --install accurate --member fast-v4 \\
        --member lite-fusion-v4 --version 6.0.0 --description "Mean of …"

Both runs must come from `damagelens train classify` on the same photos with the same fold seed
(the script checks that the photo lists match). A run is its cv.json under `--out`, or the
`<report>-oof.json` that `--report` writes beside the committed report (the run folder is not kept).
Prints accuracy, macro-F1, damaged-called-normal,
and temperature/ECE/review rule of the mean, next to each member, as one JSON object; with
`--plots`, the mean's confusion matrix and reliability diagram as PNGs. Out-of-fold only: an
equal-weight mean needs no fitting, so no fold sees its own labels. The 169-photo cross-check of
the runs (train on `-more`, test on the 169) is averaged the same way. This is exactly what the
served `mean_ensemble` computes (`damagelens.vision.architectures.ensemble`).

`--mirror` asks what mirror test-time augmentation would give: a member whose file carries
`oof_mirror_logits` (CV runs write them; `scripts/oof_rescore.py` recovers them for older runs
from the fold checkpoints) counts as the mean of its eval and mirrored views; the others as served.
With `--install` every run must carry them: the entry gets `options: {mirror_tta: true}`, and the
served `mean_ensemble` then mirrors every member in the same forward pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from damagelens.settings import get_settings
from damagelens.training.calibration import calibration_report, held_out_review, reliability_png, view_probs
from damagelens.training.classify import classification_metrics, per_class_recall
from damagelens.training.data import LABELS, scan_image_folders
from damagelens.training.grouping import grouped_splits
from damagelens.training.install import install_ensemble
from damagelens.training.report import confusion_png


def _probs(cv: dict, mirror: bool = False) -> np.ndarray:
    if "oof_logits" in cv:
        return view_probs(cv["oof_logits"], cv.get("oof_mirror_logits") if mirror else None)
    return np.asarray(cv["oof_probs"], dtype=np.float64)


def _check_probs(check: dict, mirror: bool) -> np.ndarray:
    """A run's cross-check (the 169 after training on `-more` only), scored like its out-of-fold photos."""
    return view_probs(check["logits"], check.get("mirror_logits") if mirror else None)


def _metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    m = classification_metrics(labels, probs.argmax(1), LABELS)
    return {
        **{k: m[k] for k in ("accuracy", "macro_f1", "view_accuracy", "condition_accuracy", "damaged_called_normal")},
        "per_class_recall": per_class_recall(m["confusion"], LABELS),
        "confusion": m["confusion"],
    }


def _score(probs: np.ndarray, labels: np.ndarray) -> tuple[dict, dict]:
    cal = calibration_report(np.log(np.clip(probs, 1e-12, 1.0)), labels)  # the served module's output: log of the mean
    review = cal["review"]
    scored = {
        **_metrics(probs, labels),
        "temperature": cal["temperature"],
        "ece_before": cal["ece_before"],
        "ece_after": cal["ece_after"],
        "review_threshold": review["threshold"],  # unrounded: a rounded-up threshold moves photos into review
        "auto_share": review["auto_share"],
        "auto_accuracy": review["auto_accuracy"],
    }
    return scored, cal


def main(
    runs: Annotated[list[Path], typer.Argument(help="cv.json of each member (under <out>/<name>/) or its <report>-oof.json")],
    data: Annotated[list[Path] | None, typer.Option(help="the runs' --data folders; default both 6-class folders")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the JSON here")] = None,
    plots: Annotated[Path | None, typer.Option(help="folder for <name>-confusion.png and <name>-reliability.png")] = None,
    name: Annotated[str, typer.Option(help="file-name stem and title of the plots")] = "ensemble",
    install: Annotated[str | None, typer.Option(help="write the mean as this registry entry (a new major version keeps the old)")] = None,
    member: Annotated[list[str] | None, typer.Option(help="with --install: the registry name of each run, in the runs' order")] = None,
    version: Annotated[str | None, typer.Option(help="with --install: the entry's version")] = None,
    description: Annotated[str | None, typer.Option(help="with --install: the entry's description")] = None,
    held_out: Annotated[
        bool, typer.Option("--held-out-review", help="also judge the mean's review rule on photos it was not fit on (the CV's folds)")
    ] = False,
    hash_cache: Annotated[Path, typer.Option(help="folder of the pHash cache (phash.json) for the grouped folds")] = Path("var/cache"),
    mirror: Annotated[
        bool, typer.Option("--mirror", help="score each member whose file has oof_mirror_logits with mirror TTA (mean of both views)")
    ] = False,
) -> None:
    if install is not None and (len(member or []) != len(runs) or not version):
        raise typer.BadParameter("--install needs one --member (registry name) per run and a --version")
    base = Path(get_settings().data_dir)
    records, _ = scan_image_folders(list(data or [base / "car-damage-6class", base / "car-damage-6class-more"]))
    labels = np.array([r.label for r in records])
    names = [r.path.name for r in records]
    cvs = {str(path): json.loads(path.read_text()) for path in runs}
    for path, cv in cvs.items():
        if cv.get("files") != names:
            raise typer.BadParameter(f"{path}: its photo list differs from the scanned data (other --data or order)")
        if mirror and install is not None and "oof_mirror_logits" not in cv:
            raise typer.BadParameter(f"{path}: no oof_mirror_logits; a served --mirror ensemble mirrors every member")
    members = {path: _probs(cv, mirror) for path, cv in cvs.items()}
    mean, calibration = _score(np.mean(list(members.values()), axis=0), labels)
    result = {"members": {k: _score(p, labels)[0] for k, p in members.items()}, "mean": mean, "n": len(labels)}
    if mirror:
        result["mirror_tta"] = [k for k, cv in cvs.items() if "oof_mirror_logits" in cv]
    if held_out:  # the same grouped folds as `train classify` (pHash near-copy groups, fold seed 0, the runs' fold count)
        splits, _ = grouped_splits(records, hash_cache, folds=len(next(iter(cvs.values()))["folds"]))
        mean_logits = np.log(np.clip(np.mean(list(members.values()), axis=0), 1e-12, 1.0))
        result["mean_held_out_review"] = held_out_review(mean_logits, labels, splits)
    checks = [cv.get("cross_check") for cv in cvs.values()]
    if all(c and "logits" in c for c in checks) and len({tuple(c["labels_true"]) for c in checks}) == 1:
        check_labels = np.asarray(checks[0]["labels_true"])
        check_probs = np.mean([_check_probs(c, mirror) for c in checks], axis=0)
        result["mean_cross_check"] = {"n": len(check_labels), "train_n": checks[0]["train_n"], **_metrics(check_probs, check_labels)}
    if plots is not None:
        confusion_png(
            mean["confusion"],
            list(LABELS),
            plots / f"{name}-confusion.png",
            f"{name}: grouped CV (out of fold), acc {mean['accuracy']:.3f}",
        )
        reliability_png(calibration, plots / f"{name}-reliability.png", f"{name}: out-of-fold mean of the members")
    if install is not None:
        cross = result.get("mean_cross_check")
        folds = float(len(next(iter(cvs.values()))["folds"]))
        metrics = {"cv_accuracy": mean["accuracy"], "cv_macro_f1": mean["macro_f1"], "cv_folds": folds}
        metrics |= {"cross_check_accuracy": cross["accuracy"]} if cross else {}
        metrics |= {"ece": mean["ece_after"], "auto_share": mean["auto_share"]}
        updates = {"temperature": round(mean["temperature"], 4), "review_threshold": mean["review_threshold"], "metrics": metrics}
        if description:
            updates["description"] = description
        if mirror:
            updates["options"] = {"mirror_tta": True}
        result["installed"] = install_ensemble(Path(get_settings().registry_path), install, list(member or []), version or "", updates)
    text = json.dumps(result, indent=2)
    if out is not None:
        out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    typer.run(main)
