#!/usr/bin/env python
"""CPU latency of the `assess` stage's work per photo at batch 1 (target: ≤ 250 ms on the build VM).

    python scripts/bench_assess.py [--photos 20] [--repeats 3] [--threads 1]

Builds the stage's models exactly as the worker does (registry names and detector settings from
`damagelens.settings`): typed detector + photo severity model on the photo + region severity model
on a crop per region (`DAMAGELENS_REGION_SEVERITY_MODEL`; one batch when it is the photo's). Times,
per photo, the model work (`Assessor.__call__`) and the whole stage body (that + drawing
assessment.jpg + JPEG encoding). Photos: real damaged cars from <data_dir> (lensor test and
damage-severity val, alternating), decoded once beforehand, as the worker has them. Prints one line
per measurement and a JSON summary as the last line.
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


def photos(data_dir: Path, n: int) -> list[Path]:
    lensor = sorted((data_dir / "detection" / "lensor" / "images" / "test").glob("*.jpg"))
    severity = sorted((data_dir / "damage-severity" / "val").rglob("*.jpg"))
    if not lensor or not severity:
        raise SystemExit(f"no damaged-car photos under {data_dir} (detection/lensor, damage-severity)")
    rng = np.random.default_rng(0)
    picks = [p for pair in zip(rng.permutation(lensor), rng.permutation(severity), strict=False) for p in pair]
    return [Path(p) for p in picks[:n]]


def stats(ms: list[float]) -> dict:
    return {"median_ms": round(statistics.median(ms), 1), "p90_ms": round(float(np.percentile(ms, 90)), 1), "n": len(ms)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the worker default, DAMAGELENS_TORCH_THREADS, is 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["DAMAGELENS_TORCH_THREADS"] = str(args.threads)  # the worker's models (torch and ONNX Runtime) read it

    from damagelens.registry.entries import load_registry
    from damagelens.settings import get_settings
    from damagelens.training.data import load_rgb
    from damagelens.vision.assess import draw_assessment
    from damagelens.vision.detector import to_jpeg
    from damagelens_worker import model_cache

    settings = get_settings()
    registry = load_registry(Path(settings.registry_path))
    severity = registry.get(settings.severity_model, task="severity")
    region = registry.get(settings.region_severity_model, task="severity")
    typed = registry.get(settings.damage_types_model, task="detect")
    assessor = model_cache.assessor()  # as the worker builds it (DAMAGELENS_INFERENCE_BACKEND applies)
    images = [load_rgb(p) for p in photos(Path(settings.data_dir), args.photos)]
    for im in images[:3]:  # warm-up, as the worker's warm_up does
        assessor(im, "")

    model_ms, stage_ms, regions = [], [], []
    for _ in range(args.repeats):
        for im in images:
            t0 = time.perf_counter()
            result, _speed = assessor(im, "")
            t1 = time.perf_counter()
            to_jpeg(draw_assessment(im, result))
            t2 = time.perf_counter()
            model_ms.append((t1 - t0) * 1000)
            stage_ms.append((t2 - t0) * 1000)
            regions.append(len(result.damages))
    summary = {
        "models": f"{severity.name}@{severity.input_size} + {region.name}@{region.input_size} + {typed.name}@{settings.assess_imgsz}",
        "backend": settings.inference_backend,
        "threads": args.threads,
        "photos": len(images),
        "mean_regions": round(float(np.mean(regions)), 2),
        "model_work": stats(model_ms),
        "stage_body": stats(stage_ms),
        "cpu": platform.processor() or platform.machine(),
        "load_avg": [round(v, 2) for v in os.getloadavg()],
    }
    print(
        f"model work (detector + severity):       median {summary['model_work']['median_ms']} ms, p90 {summary['model_work']['p90_ms']} ms"
    )
    print(
        f"stage body (+ draw + JPEG):             median {summary['stage_body']['median_ms']} ms, p90 {summary['stage_body']['p90_ms']} ms"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
