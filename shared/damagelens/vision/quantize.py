"""Static INT8 quantisation of a classifier's ONNX graph (ONNX Runtime), calibrated on training photos.

Static (not dynamic) because the classifiers are convolutional: dynamic quantisation only covers
MatMul/Gemm and would leave the convolutions, where the time goes, in FP32. QDQ format with
per-channel signed weights (depthwise convolutions have very different ranges per channel; per-tensor
weights agreed with FP32 on only 49 of 60 photos) and unsigned activations: with signed activations
ONNX Runtime ran 18 of `fast`'s 49 convolutions in FP32 between Dequantize/Quantize nodes (plus 37
layout transposes) and INT8 was no faster; with unsigned ones all 49 became QLinearConv.
Calibration photos go through the service's own decoding and preprocessing, so the activation ranges
are the served ones.

Whether INT8 is worth serving is a measured judgement (grouped CV, `damagelens.training.int8_cv`,
docs/models/int8.md), not an assumption: serving uses `ensure_int8` only with `DAMAGELENS_ONNX_QUANTIZE=int8`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from damagelens.registry import ModelEntry
from damagelens.vision.preprocess import to_input_tensor

log = logging.getLogger(__name__)

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
# The backbone's compute ops. ONNX Runtime's default set also quantises the head's Gemms and the
# shape arithmetic of the TF-style "same" padding; on `fast` that agreed with FP32 on 56 of 60 photos
# against 58 of 60 for this set, and ran slower (docs/models/int8.md).
QUANTIZED_OPS: tuple[str, ...] = ("Conv", "Add", "Clip", "GlobalAveragePool")


def input_array(image: Image.Image, entry: ModelEntry) -> np.ndarray:
    """The served model input for one photo, `[1, 3, S, S]` float32 (the torch and ONNX paths' own preprocessing)."""
    return to_input_tensor(image, entry).numpy()


def photo_inputs(photos: Sequence[Path], entry: ModelEntry) -> Iterator[np.ndarray]:
    """Decode each photo the service's way (EXIF, alpha, CMYK …) and preprocess it for `entry`."""
    from damagelens.training.data import load_rgb

    for path in photos:
        yield input_array(load_rgb(path), entry)


def _calibration_reader(photos: Sequence[Path], entry: ModelEntry, input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class PhotoCalibrationReader(CalibrationDataReader):
        """Feeds the calibration photos one at a time (batch 1, the served shape), decoded lazily."""

        def __init__(self) -> None:
            self._inputs = photo_inputs(photos, entry)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._inputs, None)
            return None if batch is None else {input_name: batch}

    return PhotoCalibrationReader()


def calibration_key(photos: Sequence[Path], method: str) -> str:
    """Names the calibration set (photo file names and method), so an INT8 graph is never reused for another set."""
    h = hashlib.sha256(method.encode())
    for p in photos:
        h.update(Path(p).name.encode())
    return h.hexdigest()[:12]


def calibration_photos(roots: Sequence[Path], n: int, seed: int = 0, exclude: int = 0) -> tuple[list[Path], list[Path]]:
    """A seeded sample of `n` training photos (sorted file list, shuffled): the calibration set, and the
    next `exclude` photos of the same shuffle as a disjoint check set. Raises when the folders are absent."""
    from damagelens.training.data import IMAGE_EXTS

    files = sorted(p for root in roots for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if len(files) < n + exclude or n < 1:
        raise FileNotFoundError(f"INT8 calibration needs {n + exclude} training photos under {[str(r) for r in roots]}; found {len(files)}")
    random.Random(seed).shuffle(files)
    return files[:n], files[n : n + exclude]


def int8_path_for(fp32_path: Path, calibration: Sequence[Path], method: str) -> Path:
    """`<fp32 stem>-int8-<calibration key>.onnx` beside the FP32 graph (which is keyed by the weights' sha256)."""
    return Path(fp32_path).with_name(f"{Path(fp32_path).stem}-int8-{calibration_key(calibration, method)}.onnx")


def ensure_int8(entry: ModelEntry, fp32_path: Path, data_dir: Path, n: int = 128, seed: int = 0) -> Path:
    """The served INT8 graph (`DAMAGELENS_ONNX_QUANTIZE=int8`): calibrated on `n` seeded photos of the two
    6-class training folders under `data_dir`, as in the grouped-CV judgement; built once, then reused.
    Without the photos this raises (a worker asked for INT8 must not silently serve FP32)."""
    roots = [Path(data_dir) / "car-damage-6class", Path(data_dir) / "car-damage-6class-more"]
    photos, _ = calibration_photos(roots, n, seed)
    path = int8_path_for(fp32_path, photos, "minmax")
    if path.exists():
        return path
    return quantize_classifier(fp32_path, path, entry, photos)


def quantize_classifier(
    fp32_path: Path,
    out_path: Path,
    entry: ModelEntry,
    calibration_photos: Sequence[Path],
    method: str = "minmax",
    per_channel: bool = True,
    quant_format: str = "qdq",
    op_types: Sequence[str] | None = QUANTIZED_OPS,
    activations: str = "u8",
) -> Path:
    """Write the INT8 graph of `fp32_path` to `out_path` (temporary file + rename: never a half graph).

    The FP32 graph is first pre-processed the way ONNX Runtime recommends (shape inference and graph
    optimisation, which folds BatchNorm into the convolutions) so the quantiser sees the fused ops.
    `op_types`: quantise only these op types (None = ONNX Runtime's default set). `activations`: `u8`
    (unsigned activations, signed weights) or `s8`.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method {method!r}: choose one of {CALIBRATION_METHODS}")
    if not calibration_photos:
        raise ValueError("static quantisation needs at least one calibration photo")
    started = time.perf_counter()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".quant-") as work:
        pre = Path(work) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        tmp = Path(work) / "int8.onnx"
        quantize_static(
            str(pre),
            str(tmp),
            _calibration_reader(calibration_photos, entry, "input"),
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            per_channel=per_channel,
            activation_type=QuantType.QInt8 if activations == "s8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy,
            }[method],
            op_types_to_quantize=list(op_types) if op_types else None,
        )
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    log.info(
        "quantised onnx",
        extra={
            "model": entry.name,
            "path": str(out_path),
            "calibration_photos": len(calibration_photos),
            "ms": round((time.perf_counter() - started) * 1000),
        },
    )
    return out_path


def session(path: Path, threads: int = 1):
    """A CPU InferenceSession with `threads` intra-op threads (1 = the per-worker setting measured here)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def run_pair(fp32, int8, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Logits of both sessions for one input and each call's milliseconds (interleaved, so load noise hits both alike)."""
    t0 = time.perf_counter()
    a = fp32.run(None, {"input": batch})[0]
    t1 = time.perf_counter()
    b = int8.run(None, {"input": batch})[0]
    t2 = time.perf_counter()
    return a, b, (t1 - t0) * 1000, (t2 - t1) * 1000


def compare_on_inputs(fp32, int8, inputs: Sequence[np.ndarray] | Iterator[np.ndarray], warmup: int = 3) -> dict:
    """FP32 and INT8 logits on the same inputs, batch 1, plus median latency of each (after `warmup` calls)."""
    logits_a, logits_b, ms_a, ms_b = [], [], [], []
    for i, batch in enumerate(inputs):
        if i == 0:
            for _ in range(warmup):
                run_pair(fp32, int8, batch)
        a, b, ta, tb = run_pair(fp32, int8, batch)
        logits_a.append(a[0])
        logits_b.append(b[0])
        ms_a.append(ta)
        ms_b.append(tb)
    return {
        "fp32_logits": np.asarray(logits_a),
        "int8_logits": np.asarray(logits_b),
        "fp32_ms": ms_a,
        "int8_ms": ms_b,
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def agreement(fp32_logits: np.ndarray, int8_logits: np.ndarray) -> dict:
    """Top-1 agreement and the largest probability difference (temperature 1) between the two graphs."""
    if len(fp32_logits) == 0:
        return {"n": 0, "top1_agreeing": 0, "top1_agreement": 0.0, "max_abs_prob_diff": 0.0, "mean_abs_prob_diff": 0.0}
    pa, pb = softmax(fp32_logits), softmax(int8_logits)
    diff = np.abs(pa - pb)
    same = pa.argmax(1) == pb.argmax(1)
    return {
        "n": len(pa),
        "top1_agreeing": int(same.sum()),  # the count, for bounds a rounded fraction would miss (10/12 → 0.8333)
        "top1_agreement": round(float(same.mean()), 4),
        "max_abs_prob_diff": round(float(diff.max()), 4),
        "mean_abs_prob_diff": round(float(diff.max(1).mean()), 4),
    }


def median_latency_ms(sess, batch: np.ndarray, runs: int = 100, warmup: int = 5) -> float:
    """Median wall time of one `run` at this batch (what a stage worker pays per photo at batch 1)."""
    feed = {sess.get_inputs()[0].name: batch}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1000)
    return round(float(np.median(times)), 3)
