"""`damagelens train classify` over two data folders: grouped CV, the cross-folder check, calibration,
the review threshold and installation as a new registry version (the old one kept by name)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from damagelens.training.data import LABELS
from tests.training.conftest import CLASS_DIRS, make_image


@pytest.fixture
def two_folders(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "orig", tmp_path / "more"
    for c, cls in enumerate(CLASS_DIRS):
        for i in range(2):
            make_image(a / cls / f"a{i}.jpg", seed=1000 + 10 * c + i, tint=c)
        for i in range(4):
            make_image(b / cls / f"b{i}.jpg", seed=2000 + 10 * c + i, tint=c)
    return a, b


@pytest.fixture
def v1_registry(tmp_path: Path, monkeypatch):
    from damagelens.registry.entries import load_registry
    from damagelens.settings import get_settings

    reg = tmp_path / "registry" / "registry.yaml"
    reg.parent.mkdir()
    v1 = {"name": "fast", "aliases": ["resnet"], "task": "classify", "architecture": "lite_single", "version": "1.0.0"}
    v1.update({"labels": list(LABELS), "trained": False, "options": {"variant": 0, "split": 6, "structured": True}})
    reg.write_text(yaml.safe_dump({"models": [v1]}))
    monkeypatch.setenv("DAMAGELENS_REGISTRY_PATH", str(reg))
    get_settings.cache_clear()
    load_registry.cache_clear()
    yield reg
    get_settings.cache_clear()
    load_registry.cache_clear()


@pytest.mark.slow
def test_train_two_folders_grouped_cv_calibrated_and_installed_as_v2(two_folders, v1_registry: Path, tmp_path: Path):
    import typer

    from damagelens.cli import models
    from damagelens.registry.entries import load_registry

    app = typer.Typer()
    models.register(app)
    a, b = two_folders
    args = ["train", "classify", "fast", "--data", str(a), "--data", str(b), "--folds", "2", "--epochs", "1"]
    args += ["--set", "n_aug=1", "--set", "lr_backbone=0", "--set", "batch_size=8", "--out", str(tmp_path / "runs")]
    args += ["--report", str(tmp_path / "report" / "fast.json"), "--install"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["n"] == 36 and out["version"] == "2.0.0"
    assert out["grouping"]["photos"] == 36 and out["grouping"]["max_distance"] == 8
    assert out["cross_check"]["n"] == 12 and out["cross_check"]["train_n"] == 24  # trained on `more`, tested on `orig`
    assert set(out["per_class_recall"]) == set(LABELS)
    cal = out["calibration"]
    assert cal["temperature"] > 0 and 0 <= cal["ece_after"] <= 1 and 0 <= cal["review"]["threshold"] <= 1
    assert json.loads((tmp_path / "report" / "fast.json").read_text())["accuracy"] == out["accuracy"]
    # the out-of-fold logits beside the report score an ensemble like the run's own cv.json does
    oof = json.loads((tmp_path / "report" / "fast-oof.json").read_text())
    run_cv = json.loads((tmp_path / "runs" / "fast" / "cv.json").read_text())
    assert oof["files"] == run_cv["files"] and oof["oof_logits"] == run_cv["oof_logits"] and len(oof["oof_logits"]) == 36
    assert oof["folds"] == run_cv["folds"]  # scripts/oof_ensemble.py --install records the fold count
    assert oof["cross_check"]["logits"] == run_cv["cross_check"]["logits"] and oof["cross_check"]["train_n"] == 24
    assert (tmp_path / "runs" / "fast" / "reliability.png").stat().st_size > 0
    # scripts/oof_ensemble.py scores the mean and judges its review rule on the folds it was not fit on
    spec = importlib.util.spec_from_file_location("oof_ensemble", Path(__file__).parents[2] / "scripts" / "oof_ensemble.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    oof_file = tmp_path / "report" / "fast-oof.json"
    args = [str(oof_file), str(oof_file), "--data", str(a), "--data", str(b), "--held-out-review", "--hash-cache", str(tmp_path / "h")]
    ensemble_app = typer.Typer()
    ensemble_app.command()(script.main)
    scored = CliRunner().invoke(ensemble_app, args)
    assert scored.exit_code == 0, scored.output
    ensemble = json.loads(scored.stdout)
    assert ensemble["mean"]["accuracy"] == pytest.approx(run_cv["accuracy"], abs=1e-3)  # the mean of one run twice is that run
    held = ensemble["mean_held_out_review"]
    assert len(held["fold_thresholds"]) == 2 and 0 <= held["auto_share"] <= 1
    assert (tmp_path / "h" / "phash.json").exists()
    # mirror TTA, out of fold: the run writes its mirror view's logits, and --mirror scores each member as eval + mirror
    assert oof["oof_mirror_logits"] == run_cv["oof_mirror_logits"] and len(oof["oof_mirror_logits"]) == 36
    mirrored = CliRunner().invoke(ensemble_app, [*args, "--mirror"])
    assert mirrored.exit_code == 0, mirrored.output
    assert json.loads(mirrored.stdout)["mean"]["accuracy"] == pytest.approx(run_cv["tta_accuracy"], abs=1e-3)
    # serving it: --mirror --install writes the mirror option the served mean_ensemble computes, only if every run has the view
    plain = tmp_path / "plain-oof.json"
    plain.write_text(json.dumps({k: v for k, v in oof.items() if k != "oof_mirror_logits"}))
    install_args = ["--mirror", "--install", "ens", "--member", "fast", "--member", "fast", "--version", "9.0.0"]
    refused = CliRunner().invoke(ensemble_app, [str(oof_file), str(plain), *args[2:], *install_args])
    assert refused.exit_code != 0 and "no oof_mirror_logits" in refused.output
    assert "ens" not in load_registry(v1_registry).names()
    served = CliRunner().invoke(ensemble_app, [*args, *install_args])
    assert served.exit_code == 0, served.output
    ens = load_registry(v1_registry).get("ens")
    assert ens.options == {"mirror_tta": True} and [m.name for m in ens.member_entries] == ["fast", "fast"]  # the one run twice
    assert ens.metrics["cv_accuracy"] == pytest.approx(run_cv["tta_accuracy"], abs=1e-3)
    assert (
        run_cv["cross_check"]["tta_accuracy"] == pytest.approx(json.loads(served.stdout)["mean_cross_check"]["accuracy"], abs=1e-3)
        and len(oof["cross_check"]["mirror_logits"]) == 12
    )  # the cross-check keeps its mirror view too
    # scripts/oof_rescore.py recovers the same mirror logits from the fold checkpoints (runs made before they were written)
    spec = importlib.util.spec_from_file_location("oof_rescore", Path(__file__).parents[2] / "scripts" / "oof_rescore.py")
    recover = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recover)
    recover_app = typer.Typer()
    recover_app.command()(recover.main)
    recovered_path = tmp_path / "recovered-oof.json"
    rargs = ["fast", str(tmp_path / "runs" / "fast"), "--cache", str(tmp_path / "runs" / "fast" / "cache"), "--out", str(recovered_path)]
    rargs += ["--data", str(a), "--data", str(b), "--folds", "2", "--set", "n_aug=1", "--set", "lr_backbone=0", "--check", str(oof_file)]
    recovered = CliRunner().invoke(recover_app, rargs)
    assert recovered.exit_code == 0, recovered.output
    got = json.loads(recovered_path.read_text())
    assert got["files"] == run_cv["files"] and got["oof_logits"] == run_cv["oof_logits"]
    assert got["oof_mirror_logits"] == run_cv["oof_mirror_logits"]
    # ... and the cross-check model's logits on the first folder's photos, both views, as the run recorded them
    assert got["cross_check"]["logits"] == run_cv["cross_check"]["logits"] and got["cross_check"]["train_n"] == 24
    assert got["cross_check"]["mirror_logits"] == run_cv["cross_check"]["mirror_logits"]
    assert got["cross_check"]["labels_true"] == run_cv["cross_check"]["labels_true"]
    # --size re-scores the same fold models at another test size (FixRes): same photos and folds, other logits,
    # and a file oof_ensemble.py scores like any run (--check would refuse it: its logits are not the run's)
    resized_path = tmp_path / "resized-oof.json"
    resized_args = [a if a != str(recovered_path) else str(resized_path) for a in rargs[:-2]]  # the same run, no --check
    resized = CliRunner().invoke(recover_app, [*resized_args, "--size", "96"])
    assert resized.exit_code == 0, resized.output
    other = json.loads(resized_path.read_text())
    assert other["files"] == run_cv["files"] and len(other["oof_logits"]) == 36 and other["oof_logits"] != run_cv["oof_logits"]
    assert len(other["cross_check"]["logits"]) == 12 and other["cross_check"]["logits"] != run_cv["cross_check"]["logits"]
    assert json.loads(resized.stdout.strip().splitlines()[-1])["size"] == 96
    refused = CliRunner().invoke(recover_app, [*rargs, "--size", "96"])
    assert refused.exit_code != 0 and "differ" in refused.output
    scored = CliRunner().invoke(ensemble_app, [str(resized_path), *args[2:]])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["mean_cross_check"]["n"] == 12

    registry = load_registry(v1_registry)
    v2, v1 = registry.get("fast"), registry.get("fast-v1")
    assert v2.version == "2.0.0" and v1.version == "1.0.0"
    assert registry.get("resnet").name == "fast"
    assert v2.temperature == cal["temperature"] and v2.review_threshold == cal["review"]["threshold"]
    assert v2.sha256 and (v1_registry.parent / v2.weights).exists()
    assert v2.aliases == ("resnet",) and v1.aliases == () and v1.temperature == 1.0 and v1.review_threshold is None


@pytest.mark.slow
def test_install_as_adds_a_new_entry_and_leaves_the_presets_own_alone(two_folders, v1_registry: Path, tmp_path: Path):
    """An ensemble member (e.g. lite-fusion-v4) is installed under its own name: a complete new entry
    with its own weight file, while the preset's entry (`fast` here) is not touched."""
    import typer

    from damagelens.cli import models
    from damagelens.registry.entries import load_registry

    app = typer.Typer()
    models.register(app)
    a, b = two_folders
    args = ["train", "classify", "fast", "--data", str(a), "--data", str(b), "--folds", "0", "--epochs", "1"]
    args += ["--set", "n_aug=1", "--set", "lr_backbone=0", "--set", "batch_size=8", "--out", str(tmp_path / "runs")]
    args += ["--version", "4.0.0", "--install-as", "lite-single-v4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    registry = load_registry(v1_registry)
    member, fast = registry.get("lite-single-v4"), registry.get("fast")
    assert (member.name, member.version, member.task, member.architecture) == ("lite-single-v4", "4.0.0", "classify", "lite_single")
    assert member.labels == tuple(LABELS) and member.mean == (0.5, 0.5, 0.5) and member.input_size == 288
    assert member.weights == "weights/lite-single-v4.safetensors" and (v1_registry.parent / member.weights).exists()
    assert (fast.version, fast.trained, fast.weights) == ("1.0.0", False, None)  # the preset's entry is untouched
    # what the command line changed is named after the preset's words (a Lite1 must not read as the preset's Lite0)
    assert member.description.endswith("(here: head only); trained with n_aug=1, lr_backbone=0, batch_size=8")
