"""`damagelens quantize cv`: every grouped fold is trained, exported, quantised on its own training photos
and scored FP32 vs INT8 on its held-out photos (generated photos; the real-photo check is in tests/vision)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.training.conftest import CLASS_DIRS, make_image


@pytest.fixture
def six_folders(tmp_path: Path) -> Path:
    root = tmp_path / "six"
    for c, cls in enumerate(CLASS_DIRS):
        for i in range(4):
            make_image(root / cls / f"{cls}_{i}.jpg", seed=300 + 10 * c + i, tint=c)
    return root


@pytest.mark.slow
def test_quantize_cv_scores_fp32_and_int8_on_the_grouped_folds(six_folders: Path, tmp_path: Path, monkeypatch) -> None:
    import typer

    from damagelens.cli import quantize
    from damagelens.training import int8_cv
    from damagelens.training.data import scan_image_folders

    calls: list[tuple[int, np.ndarray, np.ndarray]] = []
    real_hook_call = int8_cv.FoldQuantiser.__call__

    def spy(self, k, model, train_idx, val_idx):  # records which photos each fold trained and calibrated on
        calls.append((k, train_idx, val_idx))
        return real_hook_call(self, k, model, train_idx, val_idx)

    monkeypatch.setattr(int8_cv.FoldQuantiser, "__call__", spy)
    calibrated_on: list[set[str]] = []
    real_quantise = int8_cv.quantize.quantize_classifier

    def quantise_spy(fp32_path, out_path, entry, calibration_photos, **kw):
        calibrated_on.append({Path(p).name for p in calibration_photos})
        return real_quantise(fp32_path, out_path, entry, calibration_photos, **kw)

    monkeypatch.setattr(int8_cv.quantize, "quantize_classifier", quantise_spy)
    app = typer.Typer()
    quantize.register(app)
    args = ["quantize", "cv", "--model", "fast", "--data", str(six_folders), "--folds", "2", "--calib", "4"]
    args += ["--set", "epochs=1", "--set", "n_aug=0", "--set", "batch_size=8", "--out", str(tmp_path / "runs")]
    args += ["--report", str(tmp_path / "report.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "fast int8_minmax: accuracy" in result.output

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["n"] == 24 and report["photos_scored"] == 24
    assert report["fp32"]["n"] == report["int8_minmax"]["n"] == 24
    assert [f["n"] for f in report["folds"]] == [len(v) for _, _, v in calls]
    assert report["grouping"]["max_distance"] == 8 and report["quantisation"]["calibration_photos_per_fold"] == 4
    assert 0 <= report["int8_minmax"]["top1_agreement"] <= 1 and report["int8_minmax"]["median_ms"] > 0
    drop = 100 * (report["fp32"]["accuracy"] - report["int8_minmax"]["accuracy"])
    assert report["int8_minmax"]["accuracy_drop_points"] == pytest.approx(drop, abs=0.01)

    # the folds are the v2 CV's grouped folds; no held-out photo was trained or calibrated on
    records, _ = scan_image_folders([six_folders])
    expected, _ = int8_cv.grouped_splits(records, tmp_path / "runs" / "fast" / "cache", folds=2, seed=0)
    for (k, tr, va), (etr, eva), calib in zip(calls, expected, calibrated_on, strict=True):
        assert np.array_equal(tr, etr) and np.array_equal(va, eva) and not set(tr) & set(va)
        assert len(calib) == 4 and calib <= {records[i].path.name for i in tr}  # calibrated on training photos only
        assert (tmp_path / "runs" / "fast" / f"fold{k}" / "int8-minmax.onnx").stat().st_size > 0

    # --rescore: the saved fold graphs quantised again with another calibration method, no retraining
    calls.clear()
    rescore = CliRunner().invoke(app, [*args[:-2], "--rescore", "--method", "percentile", "--report", str(tmp_path / "rescore.json")])
    assert rescore.exit_code == 0, rescore.output
    again = json.loads((tmp_path / "rescore.json").read_text())
    assert again["rescored_saved_folds"] and "int8_percentile" in again and "int8_minmax" not in again
    assert again["fp32"]["confusion"] == report["fp32"]["confusion"]  # the very same FP32 fold graphs and held-out photos
    assert calls == [] and calibrated_on[2:] == calibrated_on[:2]  # nothing retrained; the same calibration photos per fold
