"""Plots and model cards."""

from __future__ import annotations

from pathlib import Path


def new_figure(size: tuple[float, float]):
    """A figure on the file-only Agg backend (training runs headless); matplotlib loads only when a plot is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, dpi=110)


def save_figure(fig, ax, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def confusion_png(confusion: list[list[int]], labels: list[str], path: Path, title: str = "") -> Path:
    import numpy as np

    cm = np.asarray(confusion)
    fig, ax = new_figure((6.4, 5.6))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=9)
    return save_figure(fig, ax, path, title)


def confusion_markdown(confusion: list[list[int]], labels: list[str]) -> str:
    head = "| true \\ predicted | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels) + "\n"
    return head + "".join(f"| {labels[i]} | " + " | ".join(str(v) for v in row) + " |\n" for i, row in enumerate(confusion))


def classifier_card(
    name: str,
    entry: dict,
    cv: dict,
    command: str,
    wall: dict[str, str],
    latency_ms: float | None,
    png_name: str,
    method: str,
    limits: str,
    license_text: str,
) -> str:
    """Markdown model card from a `train classify` run (cv.json) and its registry entry."""
    folds = cv.get("folds", [])
    fold_rows = "".join(f"| {i + 1} | {f['n']} | {f['accuracy']:.3f} | {f['macro_f1']:.3f} |\n" for i, f in enumerate(folds))
    return f"""# Model card: `{name}` ({entry.get("architecture")}, v{entry.get("version")})

{entry.get("description", "")}

## Intended use
Classify a single photo of a car into view × condition (Front/Rear × Breakage/Crushed/Normal) for
triage in the DamageLens service, with a Grad-CAM overlay (`cam_target_layer: {entry.get("cam_target_layer")}`).
Not for insurance or safety decisions without a human in the loop.

## Data
`car-damage-6class` (the public sample of the seed's dataset; 169 photos after cleaning:
F_Breakage 37, F_Crushed 38, F_Normal 16, R_Breakage 37, R_Crushed 27, R_Normal 14). Scanned by
`damagelens.training.data.scan_image_folder` (undecodable, tiny, byte-duplicate and label-conflict
files dropped; EXIF orientation applied). No photo outside that folder was used.

## Method
{method}

## Cross-validated metrics ({len(folds)}-fold stratified, seed 0; out-of-fold predictions pooled)
| metric | value |
|---|---|
| accuracy | {cv["accuracy"]:.3f} (fold std {cv.get("fold_accuracy_std", 0):.3f}) |
| macro-F1 | {cv["macro_f1"]:.3f} |
| view (front/rear) accuracy | {cv.get("view_accuracy", 0):.3f} |
| condition (breakage/crushed/normal) accuracy | {cv.get("condition_accuracy", 0):.3f} |

| fold | n | accuracy | macro-F1 |
|---|---|---|---|
{fold_rows}
Confusion matrix (rows = true, columns = predicted; ![confusion]({png_name})):

{confusion_markdown(cv["confusion"], cv["labels"])}
## Reproduce
```
{command}
```
Wall time on the 2-core CPU build machine: {", ".join(f"{k} {v}" for k, v in wall.items())}.
CPU latency at batch 1 (median, `scripts/bench_models.py`): {f"{latency_ms:.1f} ms" if latency_ms else "see bench.md"}.

## Limits
{limits}

## License
{license_text}
"""


def cv_summary(cv: dict, calibration: dict | None, groups: dict | None) -> dict:
    """The compact, per-photo-free view of a CV run that the CLI prints and docs/models/runs keeps."""
    keys = (
        "n",
        "accuracy",
        "macro_f1",
        "view_accuracy",
        "condition_accuracy",
        "damaged_called_normal",
        "served_view_accuracy",
        "tta_accuracy",
        "fold_accuracy_std",
        "per_class_recall",
        "confusion",
    )
    out: dict = {k: cv[k] for k in keys if k in cv}
    out["folds"] = cv.get("folds", [])
    if "closeup" in cv:
        out["closeup"] = {k: v for k, v in cv["closeup"].items() if k != "logits"}
    if groups is not None:
        out["grouping"] = groups
    if calibration is not None:
        out["calibration"] = calibration  # bins included: the reliability diagram can be redrawn from the report
    check = cv.get("cross_check")
    if check is not None:
        out["cross_check"] = {
            k: check[k]
            for k in (
                "n",
                "train_n",
                "accuracy",
                "macro_f1",
                "view_accuracy",
                "condition_accuracy",
                "damaged_called_normal",
                "per_class_recall",
                "confusion",
            )
        }
        if "tta_accuracy" in check:
            out["cross_check"]["tta_accuracy"] = check["tta_accuracy"]
        if calibration is not None and "logits" in check:
            import numpy as np

            from damagelens.training.calibration import apply_threshold, expected_calibration_error, softmax

            logits, y = np.asarray(check["logits"]), np.asarray(check["labels_true"])
            t = calibration["temperature"]
            out["cross_check"]["served_view_accuracy"] = round(float((logits.argmax(1) == y).mean()), 4)
            out["cross_check"]["ece_before"] = round(expected_calibration_error(softmax(logits), y), 4)
            out["cross_check"]["ece_after"] = round(expected_calibration_error(softmax(logits, t), y), 4)
            out["cross_check"]["review_at_threshold"] = apply_threshold(softmax(logits, t), y, calibration["review"]["threshold"])
    out["seconds"] = cv.get("seconds")
    out["config"] = cv.get("config")
    return out


def oof_record(cv: dict) -> dict:
    """The per-photo part `cv_summary` leaves out, kept beside a report so that an ensemble of this run
    with a later one can be scored out of fold (`scripts/oof_ensemble.py` reads it like a run's cv.json)
    without re-training this run on a machine that no longer holds its run folder."""
    out: dict = {"files": cv["files"], "oof_logits": cv["oof_logits"], "folds": cv["folds"]}  # folds: installing counts them
    if "oof_mirror_logits" in cv:
        out["oof_mirror_logits"] = cv["oof_mirror_logits"]
    check = cv.get("cross_check")
    if check is not None and "logits" in check:
        out["cross_check"] = {k: check[k] for k in ("n", "train_n", "logits", "mirror_logits", "labels_true") if k in check}
    return out
