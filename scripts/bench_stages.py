#!/usr/bin/env python
"""Where each stage's time goes, per photo size: decode, the model's own parts, and the rest (drawing, encoding).

    python scripts/bench_stages.py [--repeats 3] [--stages classify explain detect assess] [--json out.json]

Runs what a worker runs for one task, without the queue and storage: the photo's bytes are decoded
the runner's way (`load_upright_rgb`, with the working-size cap when this tree has one), then the
stage's own function (`damagelens_worker.stages.<stage>`) builds the result and encodes its artifacts.
Wall time and this process's CPU time are both recorded (medians); with one model thread
(`DAMAGELENS_TORCH_THREADS=1`, the default) CPU time is the work itself and stays comparable when
other processes load the machine.
Models come from `model_cache`, so `DAMAGELENS_*` settings (backend, threads) apply as in a worker.

Photos: real ones from <data_dir> at their own sizes (206–1352 px), plus two upscaled from a real
800×600 photo to phone sizes (2000×1500 and 4032×3024, the latter stored rotated with EXIF
orientation 6 like a phone portrait), all JPEG. Prints one line per stage and size, and JSON last.
The same script runs against an older tree (`PYTHONPATH=<tree>/shared:<tree>/services/worker`)
for a before/after pair.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

from PIL import Image

MODEL_PARTS = ("preprocess", "inference", "postprocess")


def _jpeg(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=92, **kwargs)
    return buf.getvalue()


def photos(data_dir: Path) -> list[tuple[str, bytes]]:
    """(label, JPEG bytes), smallest first."""
    picks = [
        data_dir / "damage-severity" / "val" / "minor" / "val_minor_140.jpg",
        sorted((data_dir / "detection" / "lensor" / "images" / "test").glob("*.jpg"))[0],
        sorted((data_dir / "detection" / "seed-yolo" / "images").glob("*.jpg"))[1],
        data_dir / "car-damage-6class" / "F_Crushed" / "FC_10.jpg",
    ]
    out = []
    for path in picks:
        if not path.exists():
            raise SystemExit(f"photo {path} not found: the data folder is needed (../shared/data/README.md)")
        w, h = Image.open(path).size
        out.append((f"{w}x{h}", path.read_bytes()))
    base = Image.open(picks[2]).convert("RGB")
    out.append(("2000x1500 (upscaled)", _jpeg(base.resize((2000, 1500), Image.Resampling.LANCZOS))))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 3024×4032, shown upright as 4032×3024
    stored = base.resize((4032, 3024), Image.Resampling.LANCZOS).transpose(Image.Transpose.ROTATE_90)
    out.append(("4032x3024 (upscaled, EXIF 6)", _jpeg(stored, exif=exif.tobytes())))
    return out


def decoder():
    from damagelens.imaging import load_upright_rgb
    from damagelens.settings import get_settings

    settings = get_settings()
    kwargs = {}
    if "max_side" in inspect.signature(load_upright_rgb).parameters:
        kwargs["max_side"] = settings.work_max_side
    return lambda data: load_upright_rgb(data, settings.max_pixels, **kwargs)


def stage_function(stage: str):
    import importlib

    return getattr(importlib.import_module(f"damagelens_worker.stages.{stage}"), stage)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stages", nargs="*", default=["classify", "explain", "detect", "assess"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch

    from damagelens.schemas import Stage, StageTask
    from damagelens.settings import get_settings
    from damagelens_worker import model_cache

    settings = get_settings()
    torch.set_num_threads(max(1, settings.torch_threads))
    decode = decoder()
    shots = photos(Path(settings.data_dir))
    load_before = os.getloadavg()
    rows = []
    for stage in args.stages:
        work = stage_function(stage)
        model_cache.warm_up(stage)
        payload = StageTask(job_id="bench", stage=Stage(stage), model=settings.default_model, input_key="bench/input")
        for label, data in shots:
            work(payload, decode(data))  # first call at this size (allocations) is not counted
            parts: dict[str, list[float]] = {}
            for _ in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                image = decode(data)
                t1, c1 = time.perf_counter(), time.process_time()
                output = work(payload, image)
                t2, c2 = time.perf_counter(), time.process_time()
                model = {k: v for k, v in output.speed_ms.items() if not k.startswith("yolo_")}
                sample = {"decode": (t1 - t0) * 1000, "model": sum(model.values()), "work": (t2 - t1) * 1000, "total": (t2 - t0) * 1000}
                sample["rest"] = sample["work"] - sample["model"]  # drawing, encoding, shaping the result
                # CPU time of this process: with one model thread it is the work itself, much less
                # disturbed than wall time when other processes load the machine
                sample.update({"cpu_decode": (c1 - c0) * 1000, "cpu_work": (c2 - c1) * 1000, "cpu_total": (c2 - c0) * 1000})
                for k, v in sample.items():
                    parts.setdefault(k, []).append(v)
                for k, v in model.items():
                    parts.setdefault(f"model.{k}", []).append(v)
            row = {"stage": stage, "photo": label, **{k: round(statistics.median(v), 1) for k, v in parts.items()}}
            rows.append(row)
            print(
                f"{stage:8s} {label:30s} decode {row['decode']:7.1f}  model {row['model']:7.1f}  rest {row['rest']:7.1f}  "
                f"total {row['total']:7.1f} ms  | CPU decode {row['cpu_decode']:6.1f} work {row['cpu_work']:6.1f} "
                f"total {row['cpu_total']:6.1f} ms  "
                f"({', '.join(f'{k[6:]} {v}' for k, v in row.items() if k.startswith('model.'))})",
                flush=True,
            )
    summary = {
        "backend": settings.inference_backend,
        "threads": settings.torch_threads,
        "repeats": args.repeats,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
