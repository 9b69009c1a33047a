"""YOLO detection through ONNX Runtime: the registry's `.pt` exported once per weight file, run in our own session.

Ultralytics can load a `.onnx` itself, but it builds the session with ONNX Runtime's default
threading (one thread per core), which oversubscribes when several workers share the CPU; that is
why the detector was slower in ORT before (docs/benchmarks.md). So the session is ours (same thread
setting as the classifiers) and everything around it is Ultralytics' own: `LetterBox` (minimal
padding, as its `.pt` path does), `non_max_suppression` and `scale_boxes`, so boxes match torch.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from damagelens.offline import ensure_offline_env
from damagelens.registry import ModelEntry
from damagelens.registry.weights import resolve_weights
from damagelens.schemas import Detection
from damagelens.vision.detector import detections_from_boxes
from damagelens.vision.onnx_backend import onnx_path_for, providers
from damagelens.vision.timing import StageTimer

log = logging.getLogger(__name__)

STRIDE = 32  # YOLOv8's largest stride: the letterbox pads each side to a multiple of it
IOU = 0.7  # Ultralytics' predict default, so both backends suppress alike
MAX_DET = 300


def ensure_detector_onnx(entry: ModelEntry, cache_dir: Path) -> Path:
    """Export the YOLO weights with a dynamic input (any batch, any stride-32 size) unless this sha's graph exists.

    Ultralytics writes the export next to the `.pt`, so the weights are copied into a private
    temporary folder under the cache first (the registry folder may be read-only in a container),
    and the result is renamed into place so concurrent workers never read a half-written file.
    """
    path = onnx_path_for(entry, cache_dir)
    if path.exists():
        return path
    weights = resolve_weights(entry)
    if weights is None:
        raise ValueError(f"detector {entry.name!r} has no weights")
    ensure_offline_env()
    from ultralytics import YOLO

    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=path.parent, prefix=".export-"))
    try:
        local = work / weights.name
        shutil.copyfile(weights, local)
        exported = Path(
            YOLO(str(local), task="detect").export(
                format="onnx", imgsz=entry.input_size, dynamic=True, simplify=False, device="cpu", verbose=False
            )
        )
        os.chmod(exported, 0o644)
        os.replace(exported, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("exported detector onnx", extra={"model": entry.name, "path": str(path), "ms": round((time.perf_counter() - started) * 1000)})
    return path


class OnnxDetector:
    """Drop-in for `vision.detector.Detector` (same call, same `Detection`s) on an ONNX Runtime session."""

    def __init__(self, entry: ModelEntry, onnx_path: Path, device: str = "cpu", conf: float = 0.25, imgsz: int = 640, threads: int = 1):
        ensure_offline_env()
        import onnxruntime as ort
        from ultralytics.data.augment import LetterBox

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.entry = entry
        self.conf = conf
        self.imgsz = imgsz
        self.names = entry.labels or ("damage",)
        self.session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers(device))
        self.input_name = self.session.get_inputs()[0].name
        self.letterbox = LetterBox((imgsz, imgsz), auto=True, stride=STRIDE)

    def input_array(self, image: Image.Image) -> np.ndarray:
        """Letterboxed `[1, 3, h, w]` float32 in 0..1; RGB throughout (the letterbox is channel-blind)."""
        boxed = self.letterbox(image=np.asarray(image.convert("RGB")))
        return np.ascontiguousarray(boxed.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)

    def predict(self, image: Image.Image, timer: StageTimer | None = None) -> torch.Tensor:
        """Kept boxes as `[n, 6]` (x1, y1, x2, y2 in the image's pixels, confidence, class), unrounded."""
        from ultralytics.utils import nms, ops

        timer = timer or StageTimer()
        with timer("preprocess"):
            batch = self.input_array(image)
        with timer("inference"):
            raw = self.session.run(None, {self.input_name: batch})[0]
        with timer("postprocess"):
            pred = nms.non_max_suppression(torch.from_numpy(raw), self.conf, IOU, max_det=MAX_DET)[0]
            pred[:, :4] = ops.scale_boxes(batch.shape[2:], pred[:, :4], (image.height, image.width))
        return pred

    def __call__(self, image: Image.Image) -> tuple[list[Detection], dict[str, float]]:
        timer = StageTimer()
        pred = self.predict(image, timer)
        with timer("postprocess"):
            detections = detections_from_boxes(pred[:, :4].tolist(), pred[:, 4].tolist(), pred[:, 5].tolist(), image.size, self.names)
        return detections, timer.ms

    def detect_batch(self, images: list[Image.Image]) -> tuple[list[list[Detection]], dict[str, float]]:
        """One session run over a batch (micro-batching). Photos of different shapes cannot share the
        minimal letterbox of a single call, so each is letterboxed to the square input, as Ultralytics
        does for a list; boxes can therefore differ slightly from a batch-1 call. Batch timings."""
        from ultralytics.data.augment import LetterBox
        from ultralytics.utils import nms, ops

        if len(images) == 1:
            detections, speed = self(images[0])
            return [detections], speed
        timer = StageTimer()
        rgbs = [image.convert("RGB") for image in images]
        with timer("preprocess"):
            square = LetterBox((self.imgsz, self.imgsz), auto=False, stride=STRIDE)
            boxed = np.stack([square(image=np.asarray(rgb)) for rgb in rgbs])
            batch = np.ascontiguousarray(boxed.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
        with timer("inference"):
            raw = self.session.run(None, {self.input_name: batch})[0]
        with timer("postprocess"):
            results = []
            for pred, rgb in zip(nms.non_max_suppression(torch.from_numpy(raw), self.conf, IOU, max_det=MAX_DET), rgbs, strict=True):
                pred[:, :4] = ops.scale_boxes(batch.shape[2:], pred[:, :4], (rgb.height, rgb.width))
                results.append(detections_from_boxes(pred[:, :4].tolist(), pred[:, 4].tolist(), pred[:, 5].tolist(), rgb.size, self.names))
        return results, timer.ms
