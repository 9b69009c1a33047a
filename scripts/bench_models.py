#!/usr/bin/env python
"""Per-model CPU latency at batch 1 (median of N runs) for the registry classifiers and detector.

    python scripts/bench_models.py [--runs 30] [--threads 2] [--models fast accurate detector]
    python scripts/bench_models.py --backends [--runs 30] [--rounds 5] [--thread-counts 1 2]
                                   [--models fast accurate severity detector damage-types]
    python scripts/bench_models.py --explain-profile [--runs 20] [--models fast accurate]

`--backends` times the whole per-photo classify call (preprocess + forward + calibrated
postprocess) and, for YOLO entries, the whole detector call (letterbox + forward + NMS) in torch
and ONNX Runtime in the same process, interleaved in rounds so that load from other processes
falls on both alike; `--explain-profile` splits Grad-CAM's time into its parts.

Models load through the service loader (registry → build_architecture → strict safetensors → FP32).
Prints one line per model and a JSON summary as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

import numpy as np
import torch
from PIL import Image


def bench(fn, runs: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(statistics.median(times), 2), "p90_ms": round(float(np.percentile(times, 90)), 2), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=["fast", "accurate", "detector"])
    ap.add_argument("--backends", action="store_true", help="classify: torch vs onnxruntime")
    ap.add_argument("--explain-profile", action="store_true", help="Grad-CAM: where the time goes")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--thread-counts", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--mirror", action="store_true", help="with --backends: also onnxruntime on eval + mirror views (TTA cost)")
    args = ap.parse_args()
    if args.backends or args.explain_profile:
        from bench_backends import compare_backends, compare_detector_backends, explain_profile

        from damagelens.registry.entries import load_registry
        from damagelens.settings import get_settings

        registry = load_registry(Path(get_settings().registry_path))
        yolo = [m for m in args.models if registry.get(m).task == "detect"]
        models = [m for m in args.models if m not in yolo]
        if args.explain_profile:
            print(json.dumps(explain_profile(models, args.runs)))
            return
        out = {}
        if models:
            out["classifiers"] = compare_backends(models, args.thread_counts, args.runs, args.rounds, args.mirror)
        if yolo:
            out["detectors"] = compare_detector_backends(yolo, args.thread_counts, args.runs, args.rounds)
        print(json.dumps(out))
        return
    torch.set_num_threads(args.threads)

    from damagelens.registry.entries import load_registry
    from damagelens.settings import get_settings
    from damagelens.vision.loading import load_classifier
    from damagelens.vision.preprocess import to_input_tensor

    registry = load_registry(Path(get_settings().registry_path))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (720, 960, 3), dtype=np.uint8))
    results = {}
    for name in args.models:
        entry = registry.get(name)
        if entry.task == "classify":
            model = load_classifier(entry, torch.device("cpu"), half=False)
            x = to_input_tensor(image, entry)

            def run(model=model, x=x):
                with torch.inference_mode():
                    model(x)

        else:
            from damagelens.offline import ensure_offline_env
            from damagelens.registry.weights import resolve_weights

            ensure_offline_env()
            from ultralytics import YOLO

            yolo = YOLO(str(resolve_weights(entry)), task="detect")

            def run(yolo=yolo, entry=entry):
                yolo.predict(image, conf=0.25, imgsz=entry.input_size, device="cpu", verbose=False)

        res = {"architecture": entry.architecture, "input_size": entry.input_size, **bench(run, args.runs)}
        results[name] = res
        line = f"{name:10s} {entry.architecture:12s} {entry.input_size:4d}px"
        print(f"{line}  median {res['median_ms']:8.2f} ms  p90 {res['p90_ms']:8.2f} ms")
    cpu = platform.processor() or platform.machine()
    print(json.dumps({"threads": args.threads, "cpu": cpu, "load_avg": os.getloadavg(), "models": results}))


if __name__ == "__main__":
    main()
