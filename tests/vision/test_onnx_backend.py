"""ONNX Runtime backend: calibrated probabilities match torch (max abs difference printed and bounded), export cache is sha-keyed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from damagelens.registry import ModelEntry, load_registry
from damagelens.schemas import SEED_LABELS
from damagelens.settings import get_settings
from damagelens.vision.classify import classify_image
from damagelens.vision.loading import load_classifier
from damagelens.vision.onnx_backend import OnnxClassifier, ensure_onnx, onnx_path_for
from damagelens.vision.preprocess import to_input_tensor

TOLERANCE = 1e-4  # FP32 on both sides; measured differences are ~1e-6


def _generated_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 640 * 480 * 3).reshape(480, 640, 3).astype(np.uint8)
    return [
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 255, (1024, 768, 3), dtype=np.uint8)),
        Image.fromarray(gradient),
        Image.new("RGB", (224, 224), (0, 0, 0)),
        Image.new("RGB", (97, 131), (250, 20, 90)),
        Image.new("L", (320, 240), 128),
    ]


def _torch_probs(model: torch.nn.Module, entry: ModelEntry, image: Image.Image) -> np.ndarray:
    with torch.inference_mode():
        logits = model(to_input_tensor(image, entry))[0]
    return torch.softmax(logits / entry.temperature, 0).numpy()


def _onnx_probs(session: OnnxClassifier, image: Image.Image) -> np.ndarray:
    logits = torch.from_numpy(session.logits(session.input_array(image))[0])
    return torch.softmax(logits / session.entry.temperature, 0).numpy()


def _max_diff(model, entry, session, images) -> float:
    return max(float(np.abs(_torch_probs(model, entry, im) - _onnx_probs(session, im)).max()) for im in images)


@pytest.fixture(scope="module")
def registry_pairs(tmp_path_factory) -> dict[str, tuple[ModelEntry, torch.nn.Module, OnnxClassifier]]:
    """The served classifiers (`fast`, `accurate`) and `lite1-v3`, in torch FP32 and exported to ONNX in a fresh cache."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    registry = load_registry(get_settings().registry_path)
    pairs = {}
    for name in ("fast", "accurate", "lite1-v3"):
        entry = registry.get(name)
        model = load_classifier(entry, torch.device("cpu"), half=False)
        pairs[name] = (entry, model, OnnxClassifier(entry, ensure_onnx(entry, cache), "cpu", threads=1))
    return pairs


@pytest.mark.parametrize("name", ["fast", "accurate", "lite1-v3"])
def test_probabilities_match_torch_on_generated_images(registry_pairs, name: str) -> None:
    entry, model, session = registry_pairs[name]
    worst = _max_diff(model, entry, session, _generated_images())
    print(f"\n{name}: max |p_torch - p_onnxruntime| over 6 generated images = {worst:.2e} (T = {entry.temperature})")
    assert worst <= TOLERANCE


@pytest.mark.parametrize("name", ["fast", "accurate", "lite1-v3"])
def test_probabilities_match_torch_on_real_photos(registry_pairs, real_photos: list[Path], name: str) -> None:
    entry, model, session = registry_pairs[name]
    images = [Image.open(p).convert("RGB") for p in real_photos]
    worst = _max_diff(model, entry, session, images)
    print(f"\n{name}: max |p_torch - p_onnxruntime| over {len(images)} real photos = {worst:.2e}")
    assert worst <= TOLERANCE


def test_served_result_is_the_same_as_torch(registry_pairs) -> None:
    """Label, review flag and the rounded probabilities of the job document agree across backends."""
    entry, model, session = registry_pairs["fast"]
    for image in _generated_images():
        expected, _ = classify_image(model, entry, image)
        got, speed = session(image)
        assert got.label == expected.label and got.review == expected.review and got.model == entry.name
        assert list(got.probabilities.values()) == pytest.approx(list(expected.probabilities.values()), abs=TOLERANCE)
        assert set(speed) == {"preprocess", "inference", "postprocess"}


def test_temperature_is_applied_like_torch(tmp_path: Path) -> None:
    """A random-init entry at two temperatures: the ONNX path softens exactly as the torch path does."""
    base = ModelEntry(
        name="t",
        task="classify",
        architecture="lite_single",
        version="1",
        labels=SEED_LABELS,
        input_size=64,
        options={"variant": 0, "split": 6, "structured": True},
    )
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    torch.manual_seed(0)
    path = ensure_onnx(base, tmp_path)
    torch.manual_seed(0)
    model = load_classifier(base, torch.device("cpu"), half=False)
    for t in (0.5, 1.0, 3.0):
        entry = base.model_copy(update={"temperature": t})
        session = OnnxClassifier(entry, path, "cpu", threads=1)
        diff = float(np.abs(_torch_probs(model, entry, image) - _onnx_probs(session, image)).max())
        assert diff <= TOLERANCE, (t, diff)


def test_export_is_keyed_by_the_weights_sha256(tmp_path: Path) -> None:
    entry = load_registry(get_settings().registry_path).get("fast")
    path = ensure_onnx(entry, tmp_path)
    assert path == onnx_path_for(entry, tmp_path) and entry.sha256[:16] in path.name
    stamp = path.stat().st_mtime_ns
    assert ensure_onnx(entry, tmp_path).stat().st_mtime_ns == stamp  # reused, not re-exported
    changed = entry.model_copy(update={"sha256": "f" * 64})
    assert onnx_path_for(changed, tmp_path) != path  # a changed weight file never reuses the old graph
    assert not list(tmp_path.glob("onnx/.part-*"))  # no half-written files left behind
    placeholder = entry.model_copy(update={"weights": None, "sha256": None})
    resized = placeholder.model_copy(update={"input_size": 96})
    assert onnx_path_for(placeholder, tmp_path) != onnx_path_for(resized, tmp_path)


def test_an_ensembles_export_is_keyed_by_its_members_weights(tmp_path: Path) -> None:
    entry = load_registry(get_settings().registry_path).get("accurate")
    assert entry.member_entries and entry.sha256 is None
    *others, last = entry.member_entries
    retrained = entry.model_copy(update={"member_entries": (*others, last.model_copy(update={"sha256": "f" * 64}))})
    assert onnx_path_for(retrained, tmp_path) != onnx_path_for(entry, tmp_path)
    mirrored, plain = (entry.model_copy(update={"options": o}) for o in ({"mirror_tta": True}, {}))
    assert onnx_path_for(mirrored, tmp_path) != onnx_path_for(plain, tmp_path)  # mirror TTA is another graph
