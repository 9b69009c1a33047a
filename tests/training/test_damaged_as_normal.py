"""Damaged cars of another origin called "Normal": the partial-label training loss that pushes them off
the Normal classes, and the evaluation that measures the share (issue 9's damaged-vs-normal target)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from damagelens.training.classify import TrainConfig, cross_validate, final_fit, not_normal_loss
from damagelens.training.data import LABELS, scan_image_folder
from tests.training.conftest import make_image
from tests.training.test_models import tiny_entry

DAMAGED = [i for i, name in enumerate(LABELS) if not name.endswith("Normal")]


def test_not_normal_loss_is_minus_log_of_the_damaged_mass() -> None:
    logits = torch.tensor([[0.2, 0.1, 3.0, -1.0, 0.0, 2.0], [2.0, 1.5, -2.0, 1.0, 0.5, -3.0]])
    probs = logits.softmax(1)
    expected = -probs[:, DAMAGED].sum(1).log().mean()
    assert torch.allclose(not_normal_loss(logits, LABELS), expected, atol=1e-6)
    on_normal = not_normal_loss(logits[:1], LABELS)  # this row puts most mass on the two Normal classes
    on_damage = not_normal_loss(logits[1:], LABELS)
    assert on_normal > 1.0 > on_damage


def make_damage_severity(root: Path, n: int = 6) -> Path:
    for i in range(n):
        make_image(root / "damage-severity" / "train" / ("minor", "moderate", "severe")[i % 3] / f"d{i}.jpg", seed=700 + i, size=(72, 56))
    return root


@pytest.mark.slow
def test_damaged_weight_trains_the_tail_away_from_normal(tiny_folder: Path, tmp_path: Path, monkeypatch) -> None:
    """With the loss on, the damaged photos' Normal mass falls relative to the same recipe without it."""
    from damagelens.settings import get_settings
    from damagelens.training.classify import build_damaged_cache
    from damagelens.vision.architectures import build_architecture

    data = make_damage_severity(tmp_path / "data")
    monkeypatch.setenv("DAMAGELENS_DATA_DIR", str(data))
    get_settings.cache_clear()
    try:
        records, _ = scan_image_folder(tiny_folder)
        base = TrainConfig(epochs=3, n_aug=2, batch_size=8, warmup_epochs=0.5, lr_head=1e-2)
        cfg = replace(base, damaged_weight=1.0)
        cv = cross_validate(tiny_entry(), records, cfg, folds=2, cache_dir=tmp_path / "cache", pretrained=False)
        assert cv["n"] == 24 and np.asarray(cv["confusion"]).sum() == 24
        assert any("-damaged-" in p.name for p in (tmp_path / "cache").iterdir())

        normal_mass = {}
        for weight in (0.0, 5.0):
            cfg = replace(base, damaged_weight=weight)
            model, _ = final_fit(tiny_entry(), records, cfg, cache_dir=tmp_path / "cache", pretrained=False)
            probe = build_architecture(tiny_entry(), pretrained_backbone=False).float().eval()
            cache = build_damaged_cache(probe, tiny_entry(), replace(cfg, damaged_weight=1.0), tmp_path / "cache")
            with torch.no_grad():
                probs = model.tail(tuple(c[:, 0].float() for c in cache)).softmax(1)  # eval view of each damaged photo
            normal_mass[weight] = float(1 - probs[:, DAMAGED].sum(1).mean())
    finally:
        get_settings.cache_clear()
    assert normal_mass[5.0] < normal_mass[0.0], normal_mass


def test_damaged_weight_without_the_folder_fails_clearly(tiny_folder: Path, tmp_path: Path, monkeypatch) -> None:
    from damagelens.settings import get_settings

    monkeypatch.setenv("DAMAGELENS_DATA_DIR", str(tmp_path / "nothing"))
    get_settings.cache_clear()
    try:
        records, _ = scan_image_folder(tiny_folder)
        with pytest.raises((FileNotFoundError, ValueError), match="damage-severity"):
            final_fit(tiny_entry(), records, TrainConfig(epochs=1, n_aug=2, damaged_weight=0.5), cache_dir=tmp_path / "c", pretrained=False)
    finally:
        get_settings.cache_clear()


def test_evaluate_damaged_as_normal_matches_the_service_on_real_photos(data_dir: Path, tmp_path: Path) -> None:
    """Real `fast` weights on real damaged photos of another origin: the counts are those of the service's
    own classify path (calibrated, with its review flag), per sub-folder too."""
    from damagelens.registry import load_registry
    from damagelens.settings import get_settings
    from damagelens.training.data import load_rgb
    from damagelens.training.evaluate import evaluate_damaged_as_normal, load_entry_model
    from damagelens.vision.classify import classify_image

    source = data_dir / "damage-severity" / "val"
    if not source.is_dir():
        pytest.skip(f"damage-severity photos not available: {source} is absent (set DAMAGELENS_DATA_DIR)")
    folder = tmp_path / "damaged"
    picked = []
    for cls in ("minor", "severe"):
        for photo in sorted((source / cls).glob("*.jpg"))[:5]:
            (folder / cls).mkdir(parents=True, exist_ok=True)
            (folder / cls / photo.name).symlink_to(photo)
            picked.append(folder / cls / photo.name)
    entry = load_registry(get_settings().registry_path).get("fast", task="classify")
    model = load_entry_model(entry)
    result = evaluate_damaged_as_normal(entry, folder, model=model)

    service = [classify_image(model, entry, load_rgb(p))[0] for p in picked]
    normal = [r.label.endswith("Normal") for r in service]
    assert result["n"] == 10 and sum(result["labels"].values()) == 10
    assert result["called_normal"] == round(sum(normal) / 10, 4)
    assert result["called_normal_not_flagged"] == round(sum(n and not r.review for n, r in zip(normal, service, strict=True)) / 10, 4)
    assert result["flagged_for_review"] == round(sum(r.review for r in service) / 10, 4)
    assert set(result["per_folder"]) == {"minor", "severe"} and all(v["n"] == 5 for v in result["per_folder"].values())


def test_damaged_lensor_adds_the_boxed_train_closeups_in_their_own_cache(tmp_path: Path, monkeypatch) -> None:
    """`damaged_lensor` appends lensor's train photos that carry a box (never val/test, never a box-less
    photo) to damage-severity's, cached in a second file so runs without it share the first."""
    from damagelens.settings import get_settings
    from damagelens.training.classify import build_damaged_cache
    from damagelens.vision.architectures import build_architecture
    from tests.training.test_auxiliary_data import make_lensor

    data = make_damage_severity(tmp_path / "data", n=6)
    make_lensor(data / "detection" / "lensor", n=5)  # 4 with a box, the last without
    make_image(data / "detection" / "lensor" / "images" / "val" / "v0.jpg", seed=990, size=(64, 64))
    monkeypatch.setenv("DAMAGELENS_DATA_DIR", str(data))
    get_settings.cache_clear()
    try:
        model = build_architecture(tiny_entry(), pretrained_backbone=False).float().eval()
        cfg = TrainConfig(n_aug=2, damaged_weight=0.5, damaged_views=3)
        alone = build_damaged_cache(model, tiny_entry(), cfg, tmp_path / "cache")
        both = build_damaged_cache(model, tiny_entry(), replace(cfg, damaged_lensor=True), tmp_path / "cache")
    finally:
        get_settings.cache_clear()
    assert alone is not None and both is not None
    assert [c.shape[:2] for c in alone] == [(6, 3)] * len(alone)
    assert [c.shape[:2] for c in both] == [(10, 3)] * len(both)
    assert all(torch.equal(a, b[:6]) for a, b in zip(alone, both, strict=True))
    names = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "cache").iterdir())
    assert names == ["stem-tiny-damaged", "stem-tiny-lensor-damaged"], names


def test_closeup_views_are_cached_apart_and_scored_out_of_fold(tiny_folder: Path, tmp_path: Path) -> None:
    """`closeup_views` caches tight crops of every photo (no eval/mirror view), row for row with the main
    cache; CV then reports how often a Normal photo's close-up is still called Normal."""
    from damagelens.training.classify import build_closeup_cache
    from damagelens.vision.architectures import build_architecture

    records, _ = scan_image_folder(tiny_folder)
    model = build_architecture(tiny_entry(), pretrained_backbone=False).float().eval()
    assert build_closeup_cache(model, tiny_entry(), records, TrainConfig(n_aug=2), tmp_path / "c") is None
    with pytest.raises(ValueError, match="closeup_views"):
        build_closeup_cache(model, tiny_entry(), records, TrainConfig(n_aug=2, normal_closeups=0.5), tmp_path / "c")
    crops = build_closeup_cache(model, tiny_entry(), records, TrainConfig(n_aug=2, closeup_views=3), tmp_path / "c")
    assert crops is not None and [c.shape[:2] for c in crops] == [(len(records), 3)] * len(crops)
    assert any(p.name.startswith("stem-tiny-closeup-aug-") for p in (tmp_path / "c").iterdir())

    cfg = TrainConfig(epochs=1, n_aug=2, batch_size=8, warmup_epochs=0.5, closeup_views=2, normal_closeups=1.0)
    cv = cross_validate(tiny_entry(), records, cfg, folds=2, cache_dir=tmp_path / "c", pretrained=False)
    report = cv["closeup"]
    assert len(report["logits"]) == len(records)
    assert 0.0 <= report["normal_called_normal"] <= 1.0 and 0.0 <= report["damaged_called_normal"] <= 1.0
    from damagelens.training.report import cv_summary

    assert cv_summary(cv, None, None)["closeup"] == {k: report[k] for k in ("normal_called_normal", "damaged_called_normal")}


def test_normal_closeups_change_what_the_tail_learns(tiny_folder: Path, tmp_path: Path) -> None:
    """With `normal_closeups` on, Normal photos are (sometimes) trained on their close-ups: same seed, other weights."""
    records, _ = scan_image_folder(tiny_folder)
    base = TrainConfig(epochs=1, n_aug=2, batch_size=8, warmup_epochs=0.5, closeup_views=2)
    heads = []
    for chance in (0.0, 1.0):
        model, _ = final_fit(tiny_entry(), records, replace(base, normal_closeups=chance), cache_dir=tmp_path / "c", pretrained=False)
        heads.append(torch.cat([p.detach().flatten() for p in model.head.parameters()]))
    assert not torch.allclose(heads[0], heads[1])
