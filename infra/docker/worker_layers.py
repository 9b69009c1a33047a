"""Split pip's install report for the worker image into layers of bounded size.

Why: unpacking torch with its CUDA libraries (~7 GB) in one RUN makes the container engine hold
that layer about three times while it commits it (the build container's files, the diff blob, the
committed layer): 27 GB at the peak, more than a CI machine had free. Installed as a few smaller
layers, the peak is bounded by the largest one. Used only inside infra/docker/worker.Dockerfile:

    pip install --dry-run --quiet --report plan.json -r requirements/worker.txt
    python worker_layers.py plan.json OUTDIR    # writes OUTDIR/<layer>.txt, pinned, one per layer

Everything not named here is left to the final `pip install -r requirements/worker.txt`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# Ordered: a package goes to the first layer whose test matches (sizes measured on x86_64, torch 2.14.1).
LAYERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("cuda-dnn", re.compile(r"nvidia-(cudnn|nccl|cusparselt|nvshmem)(-.*)?")),  # ~1.5 GB
    ("cuda-libs", re.compile(r"nvidia-.*")),  # ~1.8 GB (cuBLAS, cuFFT, cuSOLVER, ...)
    ("torch", re.compile(r"torch|torchvision|triton")),  # ~2.2 GB
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split(report: dict) -> dict[str, list[str]]:
    layers: dict[str, list[str]] = {name: [] for name, _ in LAYERS}
    for item in report.get("install", []):
        name = canonical(item["metadata"]["name"])
        for layer, pattern in LAYERS:
            if pattern.fullmatch(name):
                layers[layer].append(f"{name}=={item['metadata']['version']}")
                break
    return layers


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: worker_layers.py REPORT.json OUTDIR", file=sys.stderr)
        return 2
    report, out = Path(argv[1]), Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for layer, pins in split(json.loads(report.read_text())).items():
        (out / f"{layer}.txt").write_text("".join(f"{pin}\n" for pin in sorted(pins)))
        print(f"layer {layer}: {len(pins)} packages: {' '.join(sorted(pins)) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
