"""Helpers of `bench_models.py --backends / --explain-profile` (kept apart so the plain model bench stays short)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def photos(n: int = 6) -> list[Image.Image]:
    """Real photos (one per class) when the data is there, else generated 960×720 images; loaded once."""
    from damagelens.settings import get_settings

    root = get_settings().data_dir / "car-damage-6class"
    if root.is_dir():
        files = [sorted(folder.glob("*.jpg"))[0] for folder in sorted(root.iterdir()) if folder.is_dir()][:n]
        if files:
            return [Image.open(f).convert("RGB") for f in files]
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (720, 960, 3), dtype=np.uint8)) for _ in range(n)]


BILINEAR = Image.Resampling.BILINEAR


def _stats(times: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(times), 2), "p90_ms": round(float(np.percentile(times, 90)), 2)}


def _time_ms(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def compare_backends(models: list[str], thread_counts: list[int], runs: int, rounds: int, mirror: bool = False) -> dict:
    """Median per-photo classify latency, torch vs onnxruntime, interleaved round by round.

    `mirror`: also time onnxruntime on the eval view and its mirror as one batch of two, what serving with mirror
    TTA would cost (latency only: the mirror of an ensemble's packed input is not each member's mirror)."""
    from damagelens.registry import load_registry
    from damagelens.settings import get_settings
    from damagelens.vision.classify import classify_image
    from damagelens.vision.loading import load_classifier
    from damagelens.vision.onnx_backend import OnnxClassifier, ensure_onnx

    images = photos()
    registry = load_registry(get_settings().registry_path)
    cache = Path(tempfile.mkdtemp(prefix="dl-bench-onnx-"))
    load_before = os.getloadavg()
    out: dict = {"images": len(images), "runs_per_round": runs, "rounds": rounds, "results": {}}
    for name in models:
        entry = registry.get(name)  # classifiers and the assess stage's severity model
        model = load_classifier(entry, torch.device("cpu"), half=False)
        path = ensure_onnx(entry, cache)
        for threads in thread_counts:
            torch.set_num_threads(threads)
            session = OnnxClassifier(entry, path, "cpu", threads=threads)
            backends = {"torch": lambda im, model=model, entry=entry: classify_image(model, entry, im), "onnxruntime": session}
            if mirror:
                backends["onnxruntime+mirror"] = lambda im, session=session: _eval_and_mirror(session, im)
            out["results"][f"{name}/threads={threads}"] = _compare(backends, images, runs, rounds, f"{name:9s} threads={threads}")
    out["load_avg_before"] = load_before
    out["load_avg_after"] = os.getloadavg()
    return out


def _eval_and_mirror(session, image: Image.Image) -> np.ndarray:
    x = session.input_array(image)
    return session.logits(np.concatenate([x, np.ascontiguousarray(x[..., ::-1])])).mean(axis=0)


def detection_photos(n: int = 12) -> list[Image.Image]:
    """Real damaged-car photos: half seed-yolo (800×600 and up), half lensor test (640×640)."""
    from damagelens.settings import get_settings

    root = get_settings().data_dir / "detection"
    seed = sorted((root / "seed-yolo" / "images").glob("*.jpg"))[: n // 2]
    files = seed + sorted((root / "lensor" / "images" / "test").glob("*.jpg"))[: n // 2]
    if not files:
        raise SystemExit(f"no detection photos under {root}")
    return [Image.open(f).convert("RGB") for f in files]


def compare_detector_backends(models: list[str], thread_counts: list[int], runs: int, rounds: int) -> dict:
    """Median per-photo YOLO call (letterbox + forward + NMS + boxes), torch (Ultralytics' predictor on the
    `.pt`) vs onnxruntime (`vision.onnx_detector`), interleaved round by round, at the service's sizes."""
    from damagelens.registry import load_registry
    from damagelens.settings import get_settings
    from damagelens.vision.detector import Detector
    from damagelens.vision.onnx_detector import OnnxDetector, ensure_detector_onnx

    settings = get_settings()
    sizes = {
        settings.detector_model: (settings.detect_conf, settings.detect_imgsz),
        settings.damage_types_model: (settings.assess_conf, settings.assess_imgsz),
    }
    images = detection_photos()
    registry = load_registry(settings.registry_path)
    cache = Path(tempfile.mkdtemp(prefix="dl-bench-onnx-"))
    out: dict = {"images": len(images), "runs_per_round": runs, "rounds": rounds, "load_avg_before": os.getloadavg(), "results": {}}
    for name in models:
        entry = registry.get(name, task="detect")
        conf, imgsz = sizes.get(name, (0.25, entry.input_size))
        path = ensure_detector_onnx(entry, cache)
        by_torch = Detector(entry, conf=conf, imgsz=imgsz)
        for threads in thread_counts:
            torch.set_num_threads(threads)
            backends = {"torch": by_torch, "onnxruntime": OnnxDetector(entry, path, conf=conf, imgsz=imgsz, threads=threads)}
            label = f"{name:12s} {imgsz}px threads={threads}"
            out["results"][f"{name}@{imgsz}/threads={threads}"] = _compare(backends, images, runs, rounds, label)
    out["load_avg_after"] = os.getloadavg()
    return out


def explain_profile(models: list[str], runs: int) -> dict:
    """Grad-CAM split into its parts, step by step as `vision.explain.Explainer` does them (the extra
    no-grad forward that picks the target is timed apart from the CAM's own forward + backward),
    then the service's whole Explainer call and artifact encoders for the total."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from damagelens.registry import load_registry
    from damagelens.settings import get_settings
    from damagelens.vision.explain import MAX_OUTPUT_SIDE, Explainer
    from damagelens.vision.loading import load_classifier
    from damagelens.vision.preprocess import to_input_tensor

    torch.set_num_threads(1)
    images = photos()
    registry = load_registry(get_settings().registry_path)
    out: dict = {"images": len(images), "sizes": [im.size for im in images], "load_avg_before": os.getloadavg(), "results": {}}
    for name in models:
        entry = registry.get(name, task="classify")
        model = load_classifier(entry, torch.device("cpu"), half=False)
        explainer = Explainer(model, entry, "gradcam")
        layer = model.get_submodule(entry.cam_target_layer)
        parts: dict[str, list[float]] = {}

        def step(key: str, fn, parts=parts):
            started = time.perf_counter()
            value = fn()
            parts.setdefault(key, []).append((time.perf_counter() - started) * 1000)
            return value

        for i in range(runs + 2):
            image = images[i % len(images)]
            if i < 2:  # warm-up
                explainer(image)
                continue
            batch = step("preprocess", lambda image=image, entry=entry: to_input_tensor(image, entry))
            with torch.no_grad():
                target = step("predict_forward", lambda batch=batch, model=model: int(model(batch).argmax(dim=1).item()))
            # the service's CAM: the graph starts at the target layer (the Explainer froze the weights)
            with explainer._cut(), GradCAM(model=model, target_layers=[layer]) as cam:
                targets = [ClassifierOutputTarget(target)]
                gray = step("cam_forward_backward", lambda cam=cam, x=batch, t=targets: cam(input_tensor=x, targets=t)[0])
            scale = min(1.0, MAX_OUTPUT_SIDE / max(image.size))
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            shown = step("resize_photo", lambda image=image, size=size: image.convert("RGB").resize(size, Image.Resampling.BILINEAR))
            resized = step("resize_heatmap", lambda gray=gray, size=size: Image.fromarray(np.float32(gray)).resize(size, BILINEAR))
            heat = np.clip(np.asarray(resized), 0, 1)
            rgb = np.asarray(shown, dtype=np.float32) / 255.0
            step("overlay_colour", lambda rgb=rgb, heat=heat: show_cam_on_image(rgb, heat, use_rgb=True))
            started = time.perf_counter()
            explanation, _ = explainer(image)
            explanation.overlay_jpeg()
            explanation.heatmap_png()
            parts.setdefault("service_total", []).append((time.perf_counter() - started) * 1000)
            step("overlay_jpeg", explanation.overlay_jpeg)
            step("heatmap_png", explanation.heatmap_png)
        row = {k: round(statistics.median(v), 2) for k, v in parts.items()}
        out["results"][name] = row
        print(f"{name:9s} " + "  ".join(f"{k} {v:.1f}" for k, v in row.items()) + "  (ms, medians)", flush=True)
    out["load_avg_after"] = os.getloadavg()
    return out


def _compare(backends: dict, images: list, runs: int, rounds: int, label: str) -> dict:
    """Warm each backend up, then time them interleaved round by round (load drifts hit both alike)."""
    times: dict[str, list[float]] = {b: [] for b in backends}
    for fn in backends.values():
        for im in images[:3]:
            fn(im)
    for _ in range(rounds):
        for backend, fn in backends.items():
            times[backend] += [_time_ms(lambda fn=fn, im=images[i % len(images)]: fn(im)) for i in range(runs)]
    row = {b: _stats(t) for b, t in times.items()}
    row["speedup"] = round(row["torch"]["median_ms"] / row["onnxruntime"]["median_ms"], 2)
    print(
        f"{label}  torch {row['torch']['median_ms']:7.2f} ms  onnxruntime {row['onnxruntime']['median_ms']:7.2f} ms  "
        f"torch/ort {row['speedup']:.2f}x",
        flush=True,
    )
    return row
