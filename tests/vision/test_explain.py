"""Grad-CAM through pytorch-grad-cam: every method, artifacts that decode, no leak across calls."""

from __future__ import annotations

import gc
import io

import pytest
import torch
from PIL import Image

from damagelens.registry import ModelEntry
from damagelens.schemas import CAM_METHODS, SEED_LABELS
from damagelens.vision.explain import CAM_CLASSES, Explainer
from damagelens.vision.loading import load_classifier

ENTRY = ModelEntry(
    name="t", task="classify", architecture="seed_resnet18", version="1", labels=SEED_LABELS, input_size=96, cam_target_layer="model.layer4"
)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return load_classifier(ENTRY.model_copy(update={"weights": None}), torch.device("cpu"))


def test_every_api_method_has_a_cam_class() -> None:
    assert tuple(CAM_CLASSES) == CAM_METHODS


@pytest.mark.parametrize("method", CAM_METHODS)
def test_each_method_produces_overlay_and_heatmap(model, method: str) -> None:
    image = Image.new("RGB", (300, 200), (90, 120, 200))
    explanation, speed = Explainer(model, ENTRY, method)(image, target_index=2)
    assert explanation.target_label == "Front Normal" and explanation.method == method
    assert explanation.heatmap.shape == (200, 300)
    assert explanation.heatmap.min() >= 0.0 and explanation.heatmap.max() <= 1.0
    overlay = Image.open(io.BytesIO(explanation.overlay_jpeg()))
    heatmap = Image.open(io.BytesIO(explanation.heatmap_png()))
    assert overlay.size == (300, 200) and heatmap.size == (300, 200) and heatmap.mode == "L"
    assert set(speed) == {"preprocess", "inference", "postprocess"}


def test_default_target_is_the_predicted_class(model) -> None:
    image = Image.new("RGB", (128, 128), (10, 200, 30))
    with torch.no_grad():
        from damagelens.vision.preprocess import to_input_tensor

        predicted = int(model(to_input_tensor(image, ENTRY)).argmax())
    explanation, _ = Explainer(model, ENTRY)(image)
    assert explanation.target_index == predicted


@pytest.mark.parametrize("method", CAM_METHODS)
def test_default_target_costs_one_forward_pass_and_explains_the_same_class(model, method: str) -> None:
    """The target comes from the CAM's own forward (no second classification): one forward per call,
    and the heatmap is the one an explicit target for that class gives."""
    image = Image.new("RGB", (160, 120), (200, 40, 60))
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        implicit, _ = Explainer(model, ENTRY, method)(image)
    finally:
        handle.remove()
    assert len(calls) == 1
    explicit, _ = Explainer(model, ENTRY, method)(image, target_index=implicit.target_index)
    assert abs(implicit.heatmap - explicit.heatmap).max() < 1e-5


def test_unknown_method_and_missing_layer_are_errors(model) -> None:
    with pytest.raises(ValueError):
        Explainer(model, ENTRY, "magic")
    with pytest.raises(ValueError):
        Explainer(model, ENTRY.model_copy(update={"cam_target_layer": None}))


def test_hooks_are_released_between_calls(model) -> None:
    """Many calls must not accumulate hooks or tensors (a long-lived worker would grow)."""
    explainer = Explainer(model, ENTRY)
    image = Image.new("RGB", (96, 96))
    explainer(image)
    gc.collect()
    layer = model.get_submodule("model.layer4")
    hooks_before = len(layer._forward_hooks) + len(layer._backward_hooks)
    tensors_before = sum(isinstance(o, torch.Tensor) for o in gc.get_objects())
    for _ in range(20):
        explainer(image)
    gc.collect()
    assert len(layer._forward_hooks) + len(layer._backward_hooks) == hooks_before
    assert sum(isinstance(o, torch.Tensor) for o in gc.get_objects()) <= tensors_before + 5


def test_a_batch_explains_each_image_as_a_single_call_would(model) -> None:
    """explain_batch (micro-batching): one CAM pass, each image its own argmax target and heatmap."""
    import numpy as np

    images = [Image.new("RGB", (160, 120), (200, 30, 30)), Image.new("RGB", (90, 140), (20, 40, 220)), _stripes()]
    explainer = Explainer(model, ENTRY, "gradcam")
    batched, speed = explainer.explain_batch(images)
    assert set(speed) == {"preprocess", "inference", "postprocess"}
    for image, got in zip(images, batched, strict=True):
        single, _ = explainer(image)
        assert got.target_index == single.target_index and got.heatmap.shape == (image.height, image.width)
        assert np.abs(got.heatmap - single.heatmap).max() < 1e-3


def _stripes() -> Image.Image:
    image = Image.new("RGB", (128, 128), (0, 0, 0))
    for x in range(0, 128, 16):
        image.paste((255, 255, 255), (x, 0, x + 8, 128))
    return image


def _full_graph_heatmap(model: torch.nn.Module, entry: ModelEntry, method: str, image: Image.Image, target: int):
    """pytorch-grad-cam on the untouched model: the backward runs through the whole network."""
    import copy

    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from damagelens.vision.preprocess import to_input_tensor

    reference = copy.deepcopy(model).float().eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(True)
    layer = reference.get_submodule(entry.cam_target_layer)
    with CAM_CLASSES[method](model=reference, target_layers=[layer]) as cam:
        return cam(input_tensor=to_input_tensor(image, entry), targets=[ClassifierOutputTarget(target)])[0]


@pytest.mark.parametrize("method", CAM_METHODS)
@pytest.mark.parametrize("name", ["seed-layout", "fast", "lite-fusion-v4", "accurate"])
def test_the_graph_cut_at_the_target_layer_gives_the_full_backward_cam(model, method: str, name: str) -> None:
    """The Explainer backpropagates only from the score to the target layer; the CAM must be the one
    the full backward gives (same activations, same gradient at that layer), for every method and for
    the served architectures (single backbone, two-backbone fusion, their ensemble)."""
    import copy

    import numpy as np

    from damagelens.registry import load_registry
    from damagelens.settings import get_settings

    if name == "seed-layout":
        entry, net = ENTRY, model
    else:
        entry = load_registry(get_settings().registry_path).get(name, task="classify")
        net = load_classifier(entry, torch.device("cpu"), half=False)
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 255, (180, 240, 3), dtype=np.uint8))
    full = _full_graph_heatmap(net, entry, method, image, target=1)
    explainer = Explainer(copy.deepcopy(net), entry, method)
    ours, _ = explainer(image, target_index=1)
    expected = explainer._explanation(image, full, 1).heatmap
    assert np.abs(ours.heatmap - expected).max() <= 1e-4
    assert all(not p.requires_grad for p in explainer.model.parameters())
