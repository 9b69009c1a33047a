"""Temperature scaling and the review threshold on constructed logits with a known answer."""

from __future__ import annotations

import numpy as np

from damagelens.training.calibration import (
    apply_threshold,
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    held_out_review,
    review_threshold,
    softmax,
)


def _calibrated_logits(n: int = 4000, seed: int = 0, scale: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is calibrated by construction: labels are drawn from softmax(logits)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, scale, (n, 6))
    probs = softmax(logits)
    labels = np.array([rng.choice(6, p=p) for p in probs])
    return logits, labels


def test_temperature_recovers_the_overconfidence_factor_and_lowers_ece():
    logits, labels = _calibrated_logits()
    over = logits * 3.0  # an overconfident model: same ranking, 3× sharper
    t = fit_temperature(over, labels)
    assert 2.6 < t < 3.4
    before = expected_calibration_error(softmax(over), labels)
    after = expected_calibration_error(softmax(over, t), labels)
    assert after < before / 3 and after < 0.03
    report = calibration_report(over, labels)
    assert report["ece_after"] < report["ece_before"] and report["nll_after"] < report["nll_before"]
    assert (softmax(over, t).argmax(1) == over.argmax(1)).all()  # accuracy is unchanged


def test_review_threshold_meets_the_target_with_the_largest_accepted_share():
    logits, labels = _calibrated_logits(seed=1)
    probs = softmax(logits * 2)
    rule = review_threshold(probs, labels, target=0.95)
    assert rule["auto_accuracy"] >= 0.95
    check = apply_threshold(probs, labels, rule["threshold"])
    assert check == {k: rule[k] for k in check}
    # one notch lower (the next less confident photo) would break the target
    conf = np.sort(probs.max(1))[::-1]
    k = round(rule["auto_share"] * len(conf))
    if k < len(conf):
        lower = apply_threshold(probs, labels, float(conf[k]))
        assert lower["auto_accuracy"] < 0.95


def test_review_threshold_when_nothing_can_be_accepted():
    probs = np.full((10, 6), 1 / 6)
    probs[:, 0] += 0.01
    rule = review_threshold(probs / probs.sum(1, keepdims=True), np.ones(10, dtype=int), target=0.95)
    assert rule["threshold"] == 1.0 and rule["auto_share"] == 0.0


def test_held_out_review_applies_each_folds_rule_to_photos_it_was_not_fit_on():
    """Calibrated by construction, so a rule fit on four folds holds near its target on the fifth, and
    every photo is judged once, by the rule of the folds it was not in."""
    logits, labels = _calibrated_logits(n=5000, seed=2, scale=4.0)  # confident enough that a real share clears 95 %
    folds = np.arange(len(labels)) % 5
    splits = [(np.nonzero(folds != k)[0], np.nonzero(folds == k)[0]) for k in range(5)]
    nested = held_out_review(logits, labels, splits, target=0.95)
    in_sample = review_threshold(softmax(logits, fit_temperature(logits, labels)), labels, 0.95)
    assert len(nested["fold_thresholds"]) == 5
    assert abs(nested["auto_share"] - in_sample["auto_share"]) < 0.05
    assert 0.93 <= nested["auto_accuracy"] <= 0.97
    # a fold rule fit on wrong labels accepts photos that are then mostly wrong
    shuffled = np.random.default_rng(0).permutation(labels)
    assert held_out_review(logits, shuffled, splits)["auto_share"] < 0.05
