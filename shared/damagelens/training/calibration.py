"""Confidence calibration and the review threshold, both fit on out-of-fold logits.

Temperature scaling (one scalar T; probabilities = softmax(logits / T)) keeps the arg-max, so
accuracy is unchanged and only the confidence moves. The review threshold is the lowest
calibrated confidence at which the photos auto-accepted (confidence ≥ threshold) are still at
least `target` correct; photos below it go to a person.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def view_probs(logits: np.ndarray, mirror_logits: np.ndarray | None = None) -> np.ndarray:
    """Probabilities of one model: its eval view, or with mirror TTA the mean of both views' softmax
    (what `mean_ensemble`'s `mirror_tta` serves)."""
    probs = softmax(logits)
    return probs if mirror_logits is None else (probs + softmax(mirror_logits)) / 2


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    p = softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """T minimising the negative log-likelihood; a log-spaced grid then golden-section refinement
    (the NLL is unimodal in log T, and a 1-D search needs no optimiser state or learning rate)."""
    labels = np.asarray(labels, dtype=int)
    grid = np.exp(np.linspace(np.log(low), np.log(high), 80))
    best = int(np.argmin([nll(logits, labels, t) for t in grid]))
    a, b = np.log(grid[max(best - 1, 0)]), np.log(grid[min(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if nll(logits, labels, np.exp(c)) < nll(logits, labels, np.exp(d)):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> list[dict]:
    """Equal-width confidence bins: count, mean confidence and accuracy of the top-1 predictions."""
    conf = probs.max(1)
    correct = probs.argmax(1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        rows.append(
            {
                "low": round(float(lo), 4),
                "high": round(float(hi), 4),
                "count": int(m.sum()),
                "confidence": round(float(conf[m].mean()), 4) if m.any() else None,
                "accuracy": round(float(correct[m].mean()), 4) if m.any() else None,
            }
        )
    return rows


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE: bin-size-weighted |accuracy − confidence| over equal-width confidence bins."""
    n = len(labels)
    rows = reliability_bins(probs, labels, n_bins)
    return float(sum(r["count"] / n * abs(r["accuracy"] - r["confidence"]) for r in rows if r["count"])) if n else 0.0


def review_threshold(probs: np.ndarray, labels: np.ndarray, target: float = 0.95) -> dict:
    """Lowest confidence threshold whose auto-accepted set (confidence ≥ threshold) is ≥ `target` correct.

    Scans the photos from most to least confident and keeps the largest prefix meeting the target, so
    the auto-accepted share is as large as the out-of-fold evidence allows. With no such prefix the
    threshold is 1.0 (everything goes to review)."""
    conf = probs.max(1)
    correct = (probs.argmax(1) == np.asarray(labels)).astype(float)
    order = np.argsort(-conf, kind="stable")
    running = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero(running >= target)[0]
    if not len(ok):
        return {"threshold": 1.0, "target": target, "auto_share": 0.0, "auto_accuracy": None, "review_accuracy": float(correct.mean())}
    k = int(ok[-1]) + 1
    threshold = float(conf[order[k - 1]])
    return {"target": target, **apply_threshold(probs, labels, threshold)}


def apply_threshold(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Share auto-accepted at `threshold` and accuracy of the accepted and the reviewed photos."""
    conf = probs.max(1)
    correct = probs.argmax(1) == np.asarray(labels)
    auto = conf >= threshold
    return {
        "threshold": float(threshold),  # unrounded: rounding down would admit photos the rule excluded
        "auto_share": round(float(auto.mean()), 4) if len(conf) else 0.0,
        "auto_accuracy": round(float(correct[auto].mean()), 4) if auto.any() else None,
        "review_accuracy": round(float(correct[~auto].mean()), 4) if (~auto).any() else None,
    }


def held_out_review(logits: np.ndarray, labels: np.ndarray, splits, target: float = 0.95) -> dict:
    """The review rule judged on photos it was not fit on: for each fold, T and the threshold come from
    the other folds' out-of-fold logits and are applied to this fold. The served threshold is fit on all
    of them, so its own share and accuracy are in-sample; this says how far that flatters it."""
    labels = np.asarray(labels, dtype=int)
    auto = np.zeros(len(labels), dtype=bool)
    thresholds = []
    for train_idx, val_idx in splits:
        t = fit_temperature(logits[train_idx], labels[train_idx])
        rule = review_threshold(softmax(logits[train_idx], t), labels[train_idx], target)
        thresholds.append(round(rule["threshold"], 4))
        auto[val_idx] = softmax(logits[val_idx], t).max(1) >= rule["threshold"]
    correct = np.asarray(logits).argmax(1) == labels
    return {
        "target": target,
        "fold_thresholds": thresholds,
        "auto_share": round(float(auto.mean()), 4),
        "auto_accuracy": round(float(correct[auto].mean()), 4) if auto.any() else None,
        "review_accuracy": round(float(correct[~auto].mean()), 4) if (~auto).any() else None,
    }


def calibration_report(logits: np.ndarray, labels: np.ndarray, target: float = 0.95, n_bins: int = 15) -> dict:
    """Temperature, ECE and NLL before/after, reliability bins and the review threshold (calibrated)."""
    labels = np.asarray(labels, dtype=int)
    t = fit_temperature(logits, labels)
    raw, cal = softmax(logits), softmax(logits, t)
    return {
        "temperature": round(t, 4),
        "ece_before": round(expected_calibration_error(raw, labels, n_bins), 4),
        "ece_after": round(expected_calibration_error(cal, labels, n_bins), 4),
        "nll_before": round(nll(logits, labels), 4),
        "nll_after": round(nll(logits, labels, t), 4),
        "bins_before": reliability_bins(raw, labels, n_bins),
        "bins_after": reliability_bins(cal, labels, n_bins),
        "review": review_threshold(cal, labels, target),
    }


def reliability_png(report: dict, path: Path, title: str = "") -> Path:
    """Reliability diagram: accuracy vs confidence per bin, before and after temperature scaling."""
    from damagelens.training.report import new_figure, save_figure

    fig, ax = new_figure((5.2, 5.0))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
    for key, colour, name in (("bins_before", "tab:red", "before"), ("bins_after", "tab:blue", "after")):
        rows = [r for r in report[key] if r["count"]]
        label = (
            f"{name} (T={report['temperature']:.2f}, ECE {report['ece_' + name]:.3f})"
            if name == "after"
            else f"{name} (ECE {report['ece_before']:.3f})"
        )
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o", color=colour, label=label)
    thr = report["review"]["threshold"]
    ax.axvline(thr, color="tab:green", lw=1, label=f"review threshold {thr:.2f}")
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    return save_figure(fig, ax, path, title)
