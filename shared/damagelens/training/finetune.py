"""End-to-end fine-tuning of a whole classifier on the photos (the `finetune` recipe).

Unlike `classify.py` (frozen stem, cached activations: cheap on 2 CPU cores), every layer
learns here, each step sees freshly augmented photos, and the same code runs on a GPU when
one is present (bf16 autocast, channels-last) or on the CPU. Photos are decoded once through
the service's decoder; augmentation runs on tensors on the training device. Evaluation uses the
service's exact eval view (squash-resize of the decoded photo) and, with TTA, its mirror.

AdamW with separate head/backbone learning rates, label smoothing, warm-up + cosine, class-
balanced sampling, optional mixup and an EMA of the weights (torch's AveragedModel), a progress
bar, a JSONL metric log and resumable checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchvision.transforms import v2 as T
from tqdm import tqdm

from damagelens.registry import ModelEntry
from damagelens.training.augment import eval_view
from damagelens.training.classify import classification_metrics, cv_metrics, is_structured, loss_fn, lr_lambda, sampling_weights
from damagelens.training.data import ImageRecord, load_rgb, stratified_kfold

log = logging.getLogger(__name__)

CROP_SCALE = {"light": (0.6, 1.0), "medium": (0.4, 1.0), "strong": (0.25, 1.0)}


@dataclass
class FinetuneConfig:
    epochs: int = 60
    batch_size: int = 32
    lr_head: float = 1e-3
    lr_backbone: float = 2e-4
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    aux_weight: float = 0.5  # view/condition marginal losses (structured heads)
    warmup_epochs: float = 3.0
    balanced: bool = True
    tta: bool = False  # CV from the single eval view, as the service predicts
    aug_strength: str = "medium"
    mixup: float = 0.0  # Beta(a, a) mixup of whole photos; 0 = off
    ema_decay: float = 0.0  # per-step EMA of weights, evaluated instead of the raw weights; 0 = off
    freeze_bn: bool = False
    grad_clip: float = 5.0
    checkpoint_every: int = 10
    seed: int = 0
    raw_side_factor: float = 2.0  # decoded photos kept at most factor × input size per side (augmentation source)


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def resolve_device(device: str) -> torch.device:
    """The service's device choice (`auto` = CUDA when present), plus cuDNN autotuning for training."""
    from damagelens.vision.loading import resolve_device as service_device

    dev = service_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest kernels
    return dev


# ---------------------------------------------------------------- photos on the device


class PhotoSet:
    """Decoded photos held as tensors on the training device: eval views (+ mirror) and augmentation sources.

    Augmentation is vectorised over the batch (one `roi_align` does every random resized crop,
    with adaptive sampling that averages like an antialiased resize; flips, ±10° rotations,
    brightness/contrast/saturation jitter and greyscale are per-sample tensor ops). A per-sample
    torchvision pipeline cost ≈ 200 ms of Python per batch of 32 on a GPU box, more than the model.
    """

    def __init__(self, records: list[ImageRecord], entry: ModelEntry, cfg: FinetuneConfig, device: torch.device):
        size, self.device, self.size = entry.input_size, device, entry.input_size
        self.mean = torch.tensor(entry.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(entry.std, device=device).view(1, 3, 1, 1)
        self.scale = CROP_SCALE[cfg.aug_strength]
        side = round(cfg.raw_side_factor * size)
        evals, raws = [], []
        for rec in tqdm(records, desc="decode", leave=False):
            image = load_rgb(rec.path)
            evals.append(eval_view(image, size, entry.mean, entry.std))
            small = image.copy()
            small.thumbnail((side, side), Image.Resampling.BILINEAR)
            raws.append(T.functional.pil_to_tensor(small))
        self.eval = torch.stack(evals).to(device)
        h_max, w_max = max(r.shape[1] for r in raws), max(r.shape[2] for r in raws)
        self.raw = torch.zeros(len(raws), 3, h_max, w_max, device=device)  # zero-padded; crops stay inside each photo
        for i, r in enumerate(raws):
            self.raw[i, :, : r.shape[1], : r.shape[2]] = r.to(device).float() / 255
        self.hw = torch.tensor([[r.shape[1], r.shape[2]] for r in raws], dtype=torch.float32, device=device)

    def train_batch(self, idx: np.ndarray) -> torch.Tensor:
        from torchvision.ops import roi_align

        dev, n, size = self.device, len(idx), self.size
        rand = lambda *shape: torch.rand(*shape, device=dev)  # noqa: E731
        index = torch.as_tensor(idx, device=dev)
        h, w = self.hw[index, 0], self.hw[index, 1]
        # random resized crop: area fraction in `scale`, aspect ratio log-uniform in [0.7, 1.45]
        area = h * w * (self.scale[0] + (self.scale[1] - self.scale[0]) * rand(n))
        ratio = torch.exp(math.log(0.7) + (math.log(1.45) - math.log(0.7)) * rand(n))
        cw = torch.sqrt(area * ratio).clamp(max=w)
        ch = torch.sqrt(area / ratio).clamp(max=h)
        x0, y0 = (w - cw) * rand(n), (h - ch) * rand(n)
        boxes = torch.stack([index.float(), x0, y0, x0 + cw, y0 + ch], 1)
        x = roi_align(self.raw, boxes, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        # horizontal flip (p 0.5) and rotation by ±10° (p 0.3)
        x = torch.where((rand(n) < 0.5).view(n, 1, 1, 1), x.flip(3), x)
        angle = torch.where(rand(n) < 0.3, (rand(n) * 2 - 1) * math.radians(10), torch.zeros(n, device=dev))
        cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros(n, device=dev)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        x = nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # colour jitter: brightness 0.3, contrast 0.3, saturation 0.25; greyscale p 0.05
        col = lambda v: v.view(n, 1, 1, 1)  # noqa: E731
        x = (x * col(0.7 + 0.6 * rand(n))).clamp(0, 1)
        grey = T.functional.rgb_to_grayscale(x)
        mean = grey.mean((1, 2, 3), keepdim=True)
        x = ((x - mean) * col(0.7 + 0.6 * rand(n)) + mean).clamp(0, 1)
        grey = T.functional.rgb_to_grayscale(x)
        x = ((x - grey) * col(0.75 + 0.5 * rand(n)) + grey).clamp(0, 1)
        x = torch.where(col(rand(n) < 0.05), T.functional.rgb_to_grayscale(x).expand_as(x), x)
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def eval_batch(self, idx: np.ndarray, flip: bool = False) -> torch.Tensor:
        x = self.eval[torch.as_tensor(idx, device=self.device)]
        return (x.flip(3) if flip else x).contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------- fit / predict


def _autocast(device: torch.device):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _set_train_mode(model: nn.Module, freeze_bn: bool) -> None:
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


@torch.no_grad()
def predict(model: nn.Module, photos: PhotoSet, idx, tta: bool = True, batch: int = 64) -> torch.Tensor:
    """Softmax probabilities from the service's eval view (averaged with its mirror under TTA)."""
    model.eval()
    idx = np.asarray(idx)
    out = []
    for s in range(0, len(idx), batch):
        b = idx[s : s + batch]
        with _autocast(photos.device):
            p = model(photos.eval_batch(b)).float().softmax(1)
            if tta:
                p = (p + model(photos.eval_batch(b, flip=True)).float().softmax(1)) / 2
        out.append(p.cpu())
    return torch.cat(out) if out else torch.zeros(0, 6)


def fit(
    model: nn.Module, photos: PhotoSet, labels: np.ndarray, train_idx, cfg: FinetuneConfig, out_dir: Path | None = None, desc: str = "train"
) -> tuple[nn.Module, FitResult]:
    """Train every layer; returns the model to evaluate (the EMA copy when enabled). Resumes from `out_dir/checkpoint.pt`."""
    started = time.perf_counter()
    device = photos.device
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    structured = is_structured(model)
    model.to(device).to(memory_format=torch.channels_last)
    y_all = torch.as_tensor(labels, dtype=torch.long, device=device)
    train_idx = np.asarray(train_idx)

    head_ids = {id(p) for p in model.head.parameters()}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    for p in model.parameters():
        p.requires_grad = True
    opt = torch.optim.AdamW(
        [{"params": list(model.head.parameters()), "lr": cfg.lr_head}, {"params": backbone, "lr": cfg.lr_backbone}],
        weight_decay=cfg.weight_decay,
    )
    steps_per_epoch = max(1, math.ceil(len(train_idx) / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, total, int(cfg.warmup_epochs * steps_per_epoch)))
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True) if cfg.ema_decay > 0 else None

    weights = sampling_weights(labels, train_idx, cfg.balanced)

    result, start_epoch = FitResult(), 0
    ckpt_path = log_path = None
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        ckpt_path, log_path = Path(out_dir) / "checkpoint.pt", Path(out_dir) / "metrics.jsonl"
    if ckpt_path and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        if ema is not None and ck.get("ema") is not None:
            ema.load_state_dict(ck["ema"])
        start_epoch, result.history = ck["epoch"] + 1, ck["history"]
        rng = np.random.default_rng(cfg.seed + start_epoch)
        torch.manual_seed(cfg.seed + start_epoch)

    bar = tqdm(range(start_epoch, cfg.epochs), desc=desc, leave=False)
    for epoch in bar:
        _set_train_mode(model, cfg.freeze_bn)
        order = rng.choice(train_idx, size=len(train_idx), replace=True, p=weights) if cfg.balanced else rng.permutation(train_idx)
        running, correct, seen = 0.0, 0, 0
        for s in range(0, len(order), cfg.batch_size):
            b = order[s : s + cfg.batch_size]
            if len(b) < 2:  # BatchNorm needs two samples in train mode
                continue
            x, y = photos.train_batch(b), y_all[torch.as_tensor(b, device=device)]
            with _autocast(device):
                if cfg.mixup > 0:
                    lam = float(rng.beta(cfg.mixup, cfg.mixup))
                    perm = torch.randperm(len(b), device=device)
                    logits = model(lam * x + (1 - lam) * x[perm]).float()
                    loss = lam * loss_fn(logits, y, cfg, structured) + (1 - lam) * loss_fn(logits, y[perm], cfg, structured)
                else:
                    logits = model(x).float()
                    loss = loss_fn(logits, y, cfg, structured)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            running += float(loss.detach()) * len(b)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(b)
        row = {
            "epoch": epoch + 1,
            "train_loss": round(running / max(1, seen), 4),
            "train_acc": round(correct / max(1, seen), 4),
            "lr_head": opt.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - started, 1),
        }
        result.history.append(row)
        bar.set_postfix({k: v for k, v in row.items() if k in ("train_loss", "train_acc")})
        if log_path:
            with open(log_path, "a") as fh:
                fh.write(json.dumps({"run": desc, **row}) + "\n")
        last = epoch + 1 == cfg.epochs
        if ckpt_path and (last or (cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0)):
            state = {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "epoch": epoch,
                "history": result.history,
            }
            state["ema"] = ema.state_dict() if ema is not None else None
            torch.save(state, ckpt_path)
    result.seconds = time.perf_counter() - started
    final = ema.module if ema is not None else model
    return final.eval(), result


# ---------------------------------------------------------------- CV and final fit


def _fresh_model(entry: ModelEntry, seed: int) -> nn.Module:
    from damagelens.vision.architectures import build_architecture

    torch.manual_seed(seed)  # head initialisation
    return build_architecture(entry, pretrained_backbone=True).float()


def cross_validate(
    entry: ModelEntry,
    records: list[ImageRecord],
    cfg: FinetuneConfig,
    folds: int = 5,
    out_dir: Path | None = None,
    fold_seed: int = 0,
    device: str = "auto",
    splits: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict:
    """Stratified k-fold (or the given `splits`, e.g. near-copy-grouped); every fold starts again from
    the ImageNet backbone. Out-of-fold predictions pooled."""
    started = time.perf_counter()
    dev = resolve_device(device)
    photos = PhotoSet(records, entry, cfg, dev)
    labels = np.array([r.label for r in records])
    oof = np.zeros((len(records), len(entry.labels)), dtype=np.float32)
    fold_metrics = []
    for k, (tr, va) in enumerate(splits if splits is not None else stratified_kfold(labels, folds, fold_seed)):
        model = _fresh_model(entry, cfg.seed + k)
        fcfg = replace(cfg, seed=cfg.seed + k)
        fdir = Path(out_dir) / f"fold{k}" if out_dir else None
        model, res = fit(model, photos, labels, tr, fcfg, out_dir=fdir, desc=f"{entry.name} fold {k + 1}/{folds}")
        probs = predict(model, photos, va, tta=cfg.tta).numpy()
        oof[va] = probs
        fm = classification_metrics(labels[va], probs.argmax(1), entry.labels)
        fold_metrics.append({"n": fm["n"], "accuracy": fm["accuracy"], "macro_f1": fm["macro_f1"], "seconds": round(res.seconds, 1)})
        log.info("fold %d: %s", k, fold_metrics[-1])
        del model
    return cv_metrics(labels, oof, fold_metrics, entry, cfg, started, device=_device_name(dev), recipe="finetune")


def final_fit(
    entry: ModelEntry, records: list[ImageRecord], cfg: FinetuneConfig, out_dir: Path | None = None, device: str = "auto"
) -> tuple[nn.Module, FitResult]:
    """The same recipe on every photo; returns an FP32 CPU module ready to save."""
    dev = resolve_device(device)
    photos = PhotoSet(records, entry, cfg, dev)
    labels = np.array([r.label for r in records])
    model, res = fit(
        _fresh_model(entry, cfg.seed), photos, labels, np.arange(len(records)), cfg, out_dir=out_dir, desc=f"{entry.name} final"
    )
    probs = predict(model, photos, np.arange(len(records)), tta=False)
    res.history.append({"fit_accuracy_eval_view": round(float((probs.argmax(1).numpy() == labels).mean()), 4)})
    return model.float().cpu().to(memory_format=torch.contiguous_format).eval(), res


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({torch.get_num_threads()} threads)"
