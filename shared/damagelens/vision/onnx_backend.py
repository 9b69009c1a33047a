"""Classification through ONNX Runtime: the registry model exported once per weight file, run on CPU (or CUDA).

The export is keyed by the weights' sha256, so a changed weight file can never be served from a
stale graph. Grad-CAM stays in torch (it needs gradients); only the forward pass moves here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from damagelens.registry import ModelEntry
from damagelens.schemas import ClassifyResult
from damagelens.vision.classify import result_from_logits
from damagelens.vision.preprocess import to_input_tensor
from damagelens.vision.timing import StageTimer

log = logging.getLogger(__name__)


def onnx_path_for(entry: ModelEntry, cache_dir: Path) -> Path:
    """`<cache>/onnx/<name>-<sha256[:16]>.onnx`; entries without weights (seeded placeholders) are keyed by
    their architecture config instead, so an edited placeholder never reuses an old graph."""
    if entry.sha256:
        key = entry.sha256[:16]
    elif entry.member_entries:  # an ensemble changes whenever a member's weights or its options (mirror TTA) do
        parts = [str(m.sha256) for m in entry.member_entries] + ([json.dumps(entry.options, sort_keys=True)] if entry.options else [])
        key = "ensemble-" + hashlib.sha256("".join(parts).encode()).hexdigest()[:12]
    else:
        config = entry.model_dump_json(include={"architecture", "input_size", "labels", "options"})
        key = "random-" + hashlib.sha256(config.encode()).hexdigest()[:12]
    return Path(cache_dir) / "onnx" / f"{entry.name}-{key}.onnx"


def ensure_onnx(entry: ModelEntry, cache_dir: Path) -> Path:
    """Export the torch model (loaded the service way, FP32, CPU) unless this weight file's graph exists.

    Written to a temporary file and renamed, so two workers exporting at once never read a half file.
    """
    path = onnx_path_for(entry, cache_dir)
    if path.exists():
        return path
    from damagelens.training.export import export_onnx
    from damagelens.vision.loading import load_classifier

    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    model = load_classifier(entry, torch.device("cpu"), half=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-", suffix=".onnx")
    os.close(fd)
    try:
        export_onnx(model, entry, Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from workers running as another user on a shared cache
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    log.info("exported onnx", extra={"model": entry.name, "path": str(path), "ms": round((time.perf_counter() - started) * 1000)})
    return path


def providers(device: str) -> list[str]:
    """CUDA first when asked for (or `auto`) and the installed onnxruntime has it; CPU always as the fallback."""
    import onnxruntime as ort

    wanted = ["CPUExecutionProvider"]
    if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        wanted.insert(0, "CUDAExecutionProvider")
    return wanted


class OnnxClassifier:
    """One InferenceSession per model and process; `threads` = 0 leaves ONNX Runtime's default."""

    def __init__(self, entry: ModelEntry, onnx_path: Path, device: str = "cpu", threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.entry = entry
        self.session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers(device))
        self.input_name = self.session.get_inputs()[0].name

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]

    def input_array(self, image: Image.Image) -> np.ndarray:
        """torch's own preprocessing (`to_input_tensor`), as a float32 `[1, C, S, S]` array."""
        return to_input_tensor(image, self.entry).numpy()

    def __call__(self, image: Image.Image) -> tuple[ClassifyResult, dict[str, float]]:
        timer = StageTimer()
        with timer("preprocess"):
            batch = self.input_array(image)
        with timer("inference"):
            logits = self.logits(batch)
        with timer("postprocess"):
            result = result_from_logits(torch.from_numpy(logits[0]), self.entry)
        return result, timer.ms

    def classify_batch(self, images: list[Image.Image]) -> tuple[list[ClassifyResult], dict[str, float]]:
        """One session run over `[N, 3, S, S]` (the export has a dynamic batch axis); timings are the batch's."""
        timer = StageTimer()
        with timer("preprocess"):
            batch = np.concatenate([self.input_array(image) for image in images])
        with timer("inference"):
            logits = self.logits(batch)
        with timer("postprocess"):
            results = [result_from_logits(torch.from_numpy(row), self.entry) for row in logits]
        return results, timer.ms
