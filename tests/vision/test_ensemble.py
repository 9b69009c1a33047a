"""The served ensemble (`accurate` v4): exactly the mean its out-of-fold numbers measured, and a registry that refuses bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from damagelens.registry import RegistryError, load_registry
from damagelens.registry.entries import parse_registry
from damagelens.settings import get_settings
from damagelens.vision.loading import load_classifier
from damagelens.vision.preprocess import normalise, square_resize, to_input_tensor


@pytest.fixture(scope="module")
def ensemble():
    entry = load_registry(get_settings().registry_path).get("accurate")
    return entry, load_classifier(entry, torch.device("cpu"), half=False)


def test_the_served_accurate_model_is_the_mean_of_fast_v7_and_lite1_v4() -> None:
    registry = load_registry(get_settings().registry_path)
    entry = registry.get("accurate")
    assert entry.architecture == "mean_ensemble" and entry.version.startswith("12.")
    assert [(m.name, m.version) for m in entry.member_entries] == [("fast", "7.0.0"), ("lite1-v4", "4.0.0")]  # by its alias fast-v7
    assert entry.member_entries[0].options["split"] == 4  # fast v7: the last three stages fine-tuned
    assert entry.member_entries[1].options["variant"] == 1  # EfficientNet-Lite1: a second backbone, not a second Lite0
    assert entry.member_entries[1].options["split"] == 4  # lite1-v4: also its last three stages
    v11 = registry.get("accurate-v11")  # the previous ensembles, by name, on their own members
    assert [(m.name, m.version) for m in v11.member_entries] == [("fast", "7.0.0"), ("lite1-v3", "3.0.0")]
    v10 = registry.get("accurate-v10")
    assert [(m.name, m.version) for m in v10.member_entries] == [("fast-v6", "6.0.0"), ("lite1-v3", "3.0.0")]
    v9 = registry.get("accurate-v9")
    assert [(m.name, m.version) for m in v9.member_entries] == [("fast-v6", "6.0.0"), ("lite1-v2", "2.0.0")]
    v8 = registry.get("accurate-v8")
    assert [(m.name, m.version) for m in v8.member_entries] == [("fast-v4", "4.0.0"), ("lite1-v2", "2.0.0")]
    previous = registry.get("accurate-v7")
    assert [(m.name, m.version) for m in previous.member_entries] == [("fast-v4", "4.0.0"), ("lite1-v1", "1.0.0")]
    v6 = registry.get("accurate-v6")
    assert [(m.name, m.version) for m in v6.member_entries] == [("fast-v4", "4.0.0"), ("lite-fusion-v4", "4.0.0")]
    assert [(m.name, m.version) for m in registry.get("accurate-v5").member_entries] == [("fast-v4", "4.0.0"), ("accurate-v3", "3.0.0")]
    older = registry.get("accurate-v4")
    assert [(m.name, m.version) for m in older.member_entries] == [("fast-v3", "3.0.0"), ("accurate-v3", "3.0.0")]
    assert entry.input_channels == 6 and entry.input_size == entry.member_entries[0].input_size == 288


def test_each_member_sees_the_photo_resized_once_to_its_own_size(ensemble, real_photos: list[Path]) -> None:
    """The out-of-fold mean (0.781) was measured with each member's own preprocessing; the served module
    must give the same probabilities, not those of a resize of a resize (which moved 4 % of argmaxes)."""
    entry, model = ensemble
    worst = 0.0
    with torch.inference_mode():
        for path in real_photos:
            image = Image.open(path).convert("RGB")
            served = torch.softmax(model(to_input_tensor(image, entry)), dim=1)[0]
            own_views = [
                torch.softmax(member(normalise(square_resize(image, m.input_size), m.mean, m.std)[None]), dim=1)[0]
                for member, m in zip(model.members, entry.member_entries, strict=True)
            ]
            worst = max(worst, float((served - torch.stack(own_views).mean(0)).abs().max()))
    print(f"max |served - mean of members| over {len(real_photos)} photos: {worst:.2e}")
    assert worst < 1e-5


def _registry(tmp_path: Path, *entries: dict):
    return parse_registry({"models": list(entries)}, tmp_path)


def _member(name: str, size: int, labels=("a", "b")) -> dict:
    return {
        "name": name,
        "task": "classify",
        "architecture": "lite_single",
        "version": "1",
        "labels": list(labels),
        "input_size": size,
        "weights": f"{name}.safetensors",
        "sha256": "0" * 64,
    }


def _ensemble(*members: str, size: int = 288) -> dict:
    return {
        "name": "ens",
        "task": "classify",
        "architecture": "mean_ensemble",
        "version": "1",
        "labels": ["a", "b"],
        "input_size": size,
        "members": list(members),
    }


def test_the_registry_resolves_members_by_name_or_alias(tmp_path: Path) -> None:
    registry = _registry(tmp_path, {**_member("big", 288), "aliases": ["big-v1"]}, _member("small", 260), _ensemble("big-v1", "small"))
    assert [m.name for m in registry.get("ens").member_entries] == ["big", "small"]
    assert registry.get("ens").public().members == ["big-v1", "small"]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ((_member("big", 288), _ensemble("big", "missing")), "not a classifier with weights"),
        ((_member("big", 288), _member("other", 260, labels=("a", "c")), _ensemble("big", "other")), "other labels"),
        ((_member("small", 260), _member("big", 288), _ensemble("small", "big")), "first member"),
        ((_member("big", 288), _ensemble("big"), {**_ensemble("big", "ens"), "name": "nested"}), "not a classifier with weights"),
    ],
)
def test_bad_ensembles_are_registry_errors(tmp_path: Path, entries, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        _registry(tmp_path, *entries)


def test_members_only_with_the_ensemble_architecture_and_no_weights_of_its_own(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="members go with"):
        _registry(tmp_path, _member("big", 288), {**_member("x", 288), "members": ["big"], "weights": None, "sha256": None})
    with pytest.raises(RegistryError, match="no weights of its own"):
        _registry(tmp_path, _member("big", 288), {**_ensemble("big"), "weights": "e.safetensors", "sha256": "0" * 64})


@pytest.fixture(scope="module")
def mirror_ensemble():
    """`accurate`'s members with `mirror_tta` on, built from the real registry file and weights."""
    path = Path(get_settings().registry_path)
    data = yaml.safe_load(path.read_text())
    served = next(m for m in data["models"] if m["name"] == "accurate")
    data["models"].append({**served, "name": "accurate-mirror", "aliases": [], "options": {"mirror_tta": True}})
    entry = parse_registry(data, path.parent).get("accurate-mirror")
    return entry, load_classifier(entry, torch.device("cpu"), half=False)


def test_mirror_tta_is_the_mean_of_each_members_view_and_its_mirror(mirror_ensemble, real_photos: list[Path]) -> None:
    """What `oof_ensemble.py --mirror` scored out of fold: per member, the mean of the softmax of its own view and of
    the mirrored view the CV cached (`training.augment.eval_view(flip=True)`); then the mean over members. One forward
    pass, the batch doubled."""
    from damagelens.training.augment import eval_view

    entry, model = mirror_ensemble
    assert model.mirror_tta
    worst, moved = 0.0, 0
    with torch.inference_mode():
        for path in real_photos:
            image = Image.open(path).convert("RGB")
            served = torch.softmax(model(to_input_tensor(image, entry)), dim=1)[0]
            per_member = []
            for member, m in zip(model.members, entry.member_entries, strict=True):
                view, mirrored = (eval_view(image, m.input_size, m.mean, m.std, flip=f)[None] for f in (False, True))
                both = torch.softmax(member(view), dim=1)[0] + torch.softmax(member(mirrored), dim=1)[0]
                per_member.append(both / 2)
                moved += int(torch.softmax(member(view), dim=1).argmax() != (both / 2).argmax())
            worst = max(worst, float((served - torch.stack(per_member).mean(0)).abs().max()))
    print(f"max |served - mean of views and mirrors| over {len(real_photos)} photos: {worst:.2e}; member argmaxes moved: {moved}")
    assert worst < 1e-5


def test_mirror_tta_batches_and_exports_to_onnx_with_parity(mirror_ensemble, real_photos: list[Path], tmp_path: Path) -> None:
    import onnxruntime as ort

    from damagelens.training.export import export_onnx

    entry, model = mirror_ensemble
    batch = torch.cat([to_input_tensor(Image.open(p).convert("RGB"), entry) for p in real_photos])
    with torch.inference_mode():
        together = model(batch)
        alone = torch.cat([model(batch[i : i + 1]) for i in range(len(batch))])
    assert float((together - alone).abs().max()) < 1e-4  # a photo's answer does not depend on its batch-mates
    session = ort.InferenceSession(str(export_onnx(model, entry, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": batch.numpy()})[0]
    diff = float(abs(torch.softmax(torch.from_numpy(out), 1) - torch.softmax(together, 1)).max())
    print(f"mirror TTA ensemble, ONNX Runtime vs torch, {len(batch)} real photos in one batch: max |dp| {diff:.2e}")
    assert out.shape == (len(batch), 6) and diff < 1e-4


def test_grad_cam_of_a_mirror_tta_ensemble_explains_the_served_class_on_the_photo_as_it_is(mirror_ensemble, real_photos) -> None:
    """The target layer sees [views, mirrors]: the CAM returned is the eval view's (the first map), for the class the
    whole mean (both views) predicts."""
    from damagelens.vision.explain import Explainer

    entry, model = mirror_ensemble
    explainer = Explainer(model, entry)
    images = [Image.open(p).convert("RGB") for p in real_photos[:3]]
    explanations, _ = explainer.explain_batch(images)
    with torch.inference_mode():
        served = [int(model(to_input_tensor(im, entry)).argmax()) for im in images]
    assert [e.target_index for e in explanations] == served
    one, _ = explainer(images[0])
    assert one.target_index == served[0] and abs(one.heatmap - explanations[0].heatmap).max() < 1e-3
    for image, explanation in zip(images, explanations, strict=True):
        scale = min(1.0, 1280 / max(image.size))
        assert explanation.heatmap.shape == (round(image.height * scale), round(image.width * scale))
        assert explanation.heatmap.max() > 0.5 and explanation.heatmap.min() < 0.5  # a map, not a constant
