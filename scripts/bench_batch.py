#!/usr/bin/env python
"""Model-level throughput per stage at each batch size (images/s), from real photos.

    python scripts/bench_batch.py --device cpu --batch-sizes 1 8 32 --n 64
    python scripts/bench_batch.py --device cuda --batch-sizes 1 8 32 --n 256     # issue 13 part 4 (GPU)

Each stage runs the worker's own model calls (`damagelens_worker.model_cache`, the configured
inference backend): B = 1 is today's per-photo call, B > 1 the batched call a batching worker makes
(`classify_batch`, `explain_batch`, `detect_batch`, `assess_batch`). Photos are decoded and made
upright before timing (the worker does that per task, outside the forward pass); the timed part is
the stage's model call including its per-image resize and postprocessing, not storage or JPEG
encoding of artifacts. Each (stage, B) pass is run `--rounds` times, interleaved, and the best
round kept (other processes' load on a shared machine only ever slows a round down).
Also prints the batched-vs-single parity of classify (max |Δp|) and detect (boxes that differ).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

STAGES = ("classify", "explain", "detect", "assess")


def photos(n: int) -> list[Path]:
    from damagelens.settings import get_settings

    root = get_settings().data_dir / "car-damage-6class"
    if not root.is_dir():
        sys.exit(f"real photos not available: {root} is absent (set DAMAGELENS_DATA_DIR)")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    per_folder = [sorted(f.glob("*.jpg")) for f in folders]
    out: list[Path] = []
    i = 0
    while len(out) < n and any(i < len(files) for files in per_folder):  # round-robin over the classes
        out.extend(files[i] for files in per_folder if i < len(files))
        i += 1
    if out and len(out) < n:  # fewer photos than asked (a copied subset on a GPU box): cycle through them
        out = (out * -(-n // len(out)))[:n]
    return out[:n]


def stage_calls(stage: str, model: str):
    """(single, batched) callables of one stage, each taking a list of images."""
    from damagelens.settings import get_settings
    from damagelens_worker import model_cache

    if stage == "classify":
        return (lambda ims: [model_cache.classify(model, im) for im in ims]), (lambda ims: model_cache.classify_batch(model, ims))
    if stage == "explain":
        explainer = model_cache.explainer(model, get_settings().cam_method)
        return (lambda ims: [explainer(im) for im in ims]), explainer.explain_batch
    if stage == "detect":
        detector = model_cache.detector()
        return (lambda ims: [detector(im) for im in ims]), detector.detect_batch
    assessor = model_cache.assessor()
    return (lambda ims: [assessor(im, "") for im in ims]), (lambda ims: assessor.assess_batch(ims, [""] * len(ims)))


def run_pass(single, batched, images, size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(images), size):
        chunk = images[start : start + size]
        single(chunk) if size == 1 else batched(chunk)
    return time.perf_counter() - started


def parity(images, model: str) -> dict:
    from damagelens_worker import model_cache

    single = [model_cache.classify(model, im)[0] for im in images]
    batched, _ = model_cache.classify_batch(model, images)
    max_dp = max(abs(a.probabilities[k] - b.probabilities[k]) for a, b in zip(single, batched, strict=True) for k in a.probabilities)
    same_label = sum(a.label == b.label for a, b in zip(single, batched, strict=True))
    detector = model_cache.detector()
    one = [detector(im)[0] for im in images]
    many, _ = detector.detect_batch(images)
    differing = sum(len(a) != len(b) or any(x.box != y.box for x, y in zip(a, b, strict=False)) for a, b in zip(one, many, strict=True))
    return {
        "classify_max_abs_dp": max_dp,
        "classify_same_label": f"{same_label}/{len(images)}",
        "detect_photos_with_other_boxes": differing,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--n", type=int, default=64, help="photos per pass")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--model", default="fast", help="classifier for classify and explain")
    ap.add_argument("--threads", type=int, default=1, help="DAMAGELENS_TORCH_THREADS (the workers' default is 1)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    os.environ["DAMAGELENS_DEVICE"] = args.device
    os.environ["DAMAGELENS_TORCH_THREADS"] = str(args.threads)

    from damagelens.imaging import load_upright_rgb
    from damagelens.settings import get_settings

    settings = get_settings()
    paths = photos(args.n)
    images = [load_upright_rgb(p.read_bytes(), settings.max_pixels) for p in paths]
    calls = {stage: stage_calls(stage, args.model) for stage in args.stages}
    for single, batched in calls.values():  # load + warm every model and shape once
        single(images[:1])
        batched(images[: min(2, len(images))])
    best: dict[tuple[str, int], float] = {}
    for _ in range(args.rounds):
        for stage, (single, batched) in calls.items():
            for size in args.batch_sizes:
                seconds = run_pass(single, batched, images, size)
                best[(stage, size)] = min(best.get((stage, size), float("inf")), seconds)
    print(
        f"device={args.device} backend={settings.inference_backend} threads={args.threads} n={len(images)} "
        f"model={args.model} rounds={args.rounds} cpu={platform.processor() or platform.machine()} cores={os.cpu_count()} "
        f"load={os.getloadavg()[0]:.2f}"
    )
    header = (
        "| stage | "
        + " | ".join(f"B={b} img/s" for b in args.batch_sizes)
        + " | "
        + " | ".join(f"B={b} vs B=1" for b in args.batch_sizes[1:])
    )
    print(header + " |")
    print("|" + "---|" * (1 + 2 * len(args.batch_sizes) - 1))
    table = {}
    for stage in args.stages:
        rates = [len(images) / best[(stage, b)] for b in args.batch_sizes]
        table[stage] = {str(b): round(r, 2) for b, r in zip(args.batch_sizes, rates, strict=True)}
        ratios = [f"{r / rates[0]:.2f}×" for r in rates[1:]]
        print(f"| {stage} | " + " | ".join(f"{r:.2f}" for r in rates) + " | " + " | ".join(ratios) + " |")
    check = parity(images[: min(16, len(images))], args.model)
    print(f"parity (first {min(16, len(images))} photos, batched vs single): {check}")
    print(json.dumps({"device": args.device, "n": len(images), "images_per_s": table, "parity": check}))


if __name__ == "__main__":
    main()
