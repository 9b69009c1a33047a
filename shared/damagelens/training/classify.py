"""Classifier training on cached stem activations (cheap on CPU), cross-validation and final fit.

Each photo is passed once through the frozen stem of the model for V views (the service's own
eval view, its mirror for TTA, and V-2 random augmentations); the activations are cached
(FP16, on disk). Training then runs only the tail (last backbone stages + head) on the cache:
AdamW with per-group learning rates, label smoothing, warm-up + cosine, class-balanced
sampling, optional early stopping, optional TTA, resumable checkpoints and a JSONL metric log.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from damagelens.registry import ModelEntry
from damagelens.training.augment import eval_view, train_transform, train_view
from damagelens.training.calibration import view_probs
from damagelens.training.data import ImageRecord, damage_boxes_by_name, damage_crop, load_rgb, stratified_kfold

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    lr_head: float = 2e-3
    lr_backbone: float = 3e-4  # 0 freezes the tail (a linear/MLP probe on cached features)
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    aux_weight: float = 0.5  # view/condition marginal losses (structured heads)
    warmup_epochs: float = 2.0
    balanced: bool = True
    tta: bool = True
    patience: int = 0  # early stopping on the monitor set's loss; 0 = off
    n_aug: int = 10
    aug_strength: str = "medium"
    seed: int = 0
    mixup: float = 0.0
    lensor_weight: float = 0.0  # auxiliary multi-label damage-tag loss on lensor close-ups; 0 = off
    lensor_views: int = 4  # cached views per lensor photo (eval, mirror, 2 augmentations)
    box_views: int = 0  # of the n_aug views, this many are crops around the photo's seed-yolo damage box (if it has one)
    # partial-label loss on damaged cars of another origin (damage-severity/train): their view is unknown, so
    # the loss asks only that the probability mass sit on the four damaged classes; 0 = off
    damaged_weight: float = 0.0
    damaged_views: int = 3  # cached views per such photo (eval, mirror, augmentations)
    damaged_lensor: bool = False  # the damaged set also holds lensor's *train* close-ups (any box); val/test stay the check
    # tight crops ("closeup" augmentation) of every photo, cached apart: out of fold, how often a close-up of a
    # Normal car is still called Normal (`closeup` in the report); 0 = no such cache
    closeup_views: int = 0
    normal_closeups: float = 0.0  # chance that a Normal photo in a batch is shown as one of its close-ups (needs closeup_views)


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


# ---------------------------------------------------------------- stem cache

HEAD_ONLY_OPTIONS = frozenset({"structured", "hidden", "dropout"})  # do not change stem activations: caches are shared


def _cache_key(entry: ModelEntry, records: list[ImageRecord], cfg: TrainConfig) -> str:
    h = hashlib.sha256()
    stem_options = {k: v for k, v in entry.options.items() if k not in HEAD_ONLY_OPTIONS}
    key = [entry.architecture, stem_options, entry.input_size, entry.mean, entry.std, cfg.n_aug, cfg.aug_strength, cfg.seed]
    if cfg.box_views:
        key.append(cfg.box_views)
    h.update(json.dumps(key, sort_keys=True, default=str).encode())
    for r in records:
        h.update(r.sha256.encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def build_stem_cache(
    model: nn.Module,
    entry: ModelEntry,
    records: list[ImageRecord],
    cfg: TrainConfig,
    cache_dir: Path | None = None,
    batch: int = 16,
    augmented_only: bool = False,
) -> list[torch.Tensor]:
    """Returns one FP16 tensor per stem output, shaped [N, V, C, H, W]; view 0 = eval, 1 = mirrored eval
    (unless `augmented_only`: then the `cfg.n_aug` augmented views alone)."""
    path = None
    if cache_dir is not None:
        tag = "-aug" if augmented_only else ""
        path = Path(cache_dir) / f"stem-{entry.name}{tag}-{_cache_key(entry, records, cfg)}.pt"
        if path.exists():
            return torch.load(path, weights_only=True)
    model.eval()
    size, mean, std = entry.input_size, entry.mean, entry.std
    tf = train_transform(size, cfg.aug_strength)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    outs: list[list[torch.Tensor]] | None = None
    boxes = damage_boxes_by_name() if cfg.box_views else {}
    crop_tf = train_transform(size, "light")
    for rec in tqdm(records, desc=f"stem cache {entry.name}", leave=False):
        image = load_rgb(rec.path)
        views = [] if augmented_only else [eval_view(image, size, mean, std), eval_view(image, size, mean, std, flip=True)]
        own = boxes.get(rec.path.name, ())
        for j in range(cfg.n_aug):
            if j < cfg.box_views and own:
                views.append(train_view(damage_crop(image, own[j % len(own)]), size, mean, std, crop_tf))
            else:
                views.append(train_view(image, size, mean, std, tf))
        x = torch.stack(views)
        parts = [model.stem(x[i : i + batch]) for i in range(0, len(x), batch)]
        per_out = [torch.cat([p[k] for p in parts]).half() for k in range(len(parts[0]))]
        if outs is None:
            outs = [[] for _ in per_out]
        for k, t in enumerate(per_out):
            outs[k].append(t)
    cache = [torch.stack(o) for o in outs]  # type: ignore[union-attr]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(cache, path)
    return cache


def build_lensor_cache(
    model: nn.Module, entry: ModelEntry, cfg: TrainConfig, cache_dir: Path | None
) -> tuple[list[torch.Tensor], torch.Tensor] | None:
    """Stem cache + damage tags of lensor's training close-ups, when `cfg.lensor_weight` > 0."""
    if cfg.lensor_weight <= 0:
        return None
    from damagelens.training.data import data_dir, lensor_damage_tags

    records, tags = lensor_damage_tags(data_dir() / "detection" / "lensor", "train")
    cache = build_stem_cache(
        model, entry.model_copy(update={"name": f"{entry.name}-lensor"}), records, replace(cfg, n_aug=cfg.lensor_views - 2), cache_dir
    )
    return cache, torch.from_numpy(tags)


def build_damaged_cache(model: nn.Module, entry: ModelEntry, cfg: TrainConfig, cache_dir: Path | None) -> list[torch.Tensor] | None:
    """Stem cache of damage-severity's *train* photos (damaged cars of another origin), when
    `cfg.damaged_weight` > 0. Its val split is never read here: it stays the held-out check of how often
    a damaged car of another origin is called "Normal" (`damagelens evaluate damaged-as-normal`)."""
    if cfg.damaged_weight <= 0:
        return None
    from damagelens.training.data import data_dir, lensor_damage_tags, scan_image_folder

    records, _ = scan_image_folder(data_dir() / "damage-severity" / "train", ("minor", "moderate", "severe"), min_side=1)
    if not records:
        raise FileNotFoundError(f"damaged_weight > 0 needs {data_dir() / 'damage-severity' / 'train'}")
    views = replace(cfg, n_aug=cfg.damaged_views - 2)
    cache = build_stem_cache(model, entry.model_copy(update={"name": f"{entry.name}-damaged"}), records, views, cache_dir)
    if not cfg.damaged_lensor:
        return cache
    # close-ups of one panel (lensor) are the photos still called "Normal" most often; separate cache
    # file, so the damage-severity one above is shared with runs without them
    lensor_records, _ = lensor_damage_tags(data_dir() / "detection" / "lensor", "train")
    extra = build_stem_cache(model, entry.model_copy(update={"name": f"{entry.name}-lensor-damaged"}), lensor_records, views, cache_dir)
    return [torch.cat([a, b]) for a, b in zip(cache, extra, strict=True)]


def build_closeup_cache(
    model: nn.Module, entry: ModelEntry, records: list[ImageRecord], cfg: TrainConfig, cache_dir: Path | None
) -> list[torch.Tensor] | None:
    """`cfg.closeup_views` tight crops of every photo, row for row with the main cache (so folds apply)."""
    if cfg.closeup_views <= 0:
        if cfg.normal_closeups > 0:
            raise ValueError("normal_closeups needs closeup_views > 0")
        return None
    crops = replace(cfg, n_aug=cfg.closeup_views, aug_strength="closeup", box_views=0)
    named = entry.model_copy(update={"name": f"{entry.name}-closeup"})
    return build_stem_cache(model, named, records, crops, cache_dir, augmented_only=True)


def normal_mask(labels: tuple[str, ...] | list[str]) -> np.ndarray:
    """True for each "… Normal" class: the one split of the six classes that the damage losses and reports use."""
    return np.array([name.endswith("Normal") for name in labels], dtype=bool)


def not_normal_loss(logits: torch.Tensor, labels: tuple[str, ...] | list[str]) -> torch.Tensor:
    """-log P(some damaged class): a photo known to be damaged, whatever its view."""
    damaged = np.flatnonzero(~normal_mask(labels)).tolist()
    return -torch.logsumexp(torch.log_softmax(logits.float(), dim=1)[:, damaged], dim=1).mean()


class HeadOnly(nn.Module):
    """Training view of a model whose whole backbone is frozen (`lr_backbone == 0`): the "cache" is the
    pooled features of every view, so an epoch costs a head forward only. The head is shared, not copied."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.head = model.head
        self.head_in_features = model.head_in_features

    def features(self, cached: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return cached[0]

    def tail(self, cached: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.head(cached[0])

    def tail_modules(self) -> list[nn.Module]:
        return []


@torch.no_grad()
def pooled_feature_cache(model: nn.Module, cache: list[torch.Tensor], path: Path | None = None, batch: int = 128) -> list[torch.Tensor]:
    """[N, V, D] FP16 pooled features of every cached view through the frozen tail (one pass, reused by every fold)."""
    if path is not None and path.exists():
        return torch.load(path, weights_only=True)
    model.eval()
    n, n_views = cache[0].shape[:2]
    out = torch.empty(n, n_views, model.head_in_features, dtype=torch.float16)
    for v in tqdm(range(n_views), desc="pooled features", leave=False):
        for i in range(0, n, batch):
            idx = torch.arange(i, min(n, i + batch))
            out[idx, v] = model.features(_select(cache, idx, torch.full((len(idx),), v))).half()
    if path is not None:
        torch.save([out], path)
    return [out]


def training_view(
    model: nn.Module, entry: ModelEntry, records: list[ImageRecord], cfg: TrainConfig, cache: list[torch.Tensor], cache_dir: Path | None
):
    """(module to train, cache to train it on): the model itself on stem activations, or — with a frozen
    backbone — its head on pooled features."""
    if cfg.lr_backbone > 0:
        return model, cache
    path = Path(cache_dir) / f"pooled-{entry.name}-{_cache_key(entry, records, cfg)}.pt" if cache_dir is not None else None
    return HeadOnly(model), pooled_feature_cache(model, cache, path)


# ---------------------------------------------------------------- losses and schedule


def grouped_log_probs(logits: torch.Tensor, n_views: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """View and condition marginals of a view-major 6-way softmax."""
    logp = logits.log_softmax(1).view(logits.shape[0], n_views, -1)
    return torch.logsumexp(logp, 2), torch.logsumexp(logp, 1)


def loss_fn(logits: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, structured: bool) -> torch.Tensor:
    loss = nn.functional.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    if structured and cfg.aux_weight > 0:
        lv, lc = grouped_log_probs(logits)
        loss = loss + cfg.aux_weight * (nn.functional.nll_loss(lv, y // 3) + nn.functional.nll_loss(lc, y % 3))
    return loss


def lr_lambda(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# ---------------------------------------------------------------- fit / predict


def sampling_weights(labels: np.ndarray, train_idx: np.ndarray, balanced: bool) -> np.ndarray:
    """Per-photo draw probabilities: inverse class frequency (class-balanced) or uniform."""
    counts = np.bincount(labels[train_idx], minlength=int(labels.max()) + 1).astype(float)
    weights = (1.0 / np.maximum(counts, 1))[labels[train_idx]] if balanced else np.ones(len(train_idx))
    return weights / weights.sum()


def is_structured(model: nn.Module) -> bool:
    from damagelens.vision.architectures.lite import StructuredHead

    return isinstance(getattr(model, "head", None), StructuredHead)


def _select(cache: list[torch.Tensor], idx: torch.Tensor, views: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(c[idx, views].float() for c in cache)


def set_train_mode(model: nn.Module) -> None:
    """Backbone BN statistics stay frozen (ImageNet running stats); only the head uses dropout."""
    model.eval()
    model.head.train()


@torch.no_grad()
def logits_cached(model: nn.Module, cache: list[torch.Tensor], idx, view: int = 0, batch: int = 64) -> torch.Tensor:
    """Raw logits of one cached view (0 = the service's own eval view): what calibration is fit on."""
    model.eval()
    idx = torch.as_tensor(idx)
    out = [model.tail(_select(cache, idx[i : i + batch], torch.full((len(idx[i : i + batch]),), view))) for i in range(0, len(idx), batch)]
    return torch.cat(out) if out else torch.zeros(0, 6)


@torch.no_grad()
def predict_cached(model: nn.Module, cache: list[torch.Tensor], idx, tta: bool = True, batch: int = 64) -> torch.Tensor:
    """Softmax probabilities from the eval view (and its mirror with TTA)."""
    model.eval()
    idx = torch.as_tensor(idx)
    probs = []
    for i in range(0, len(idx), batch):
        b = idx[i : i + batch]
        p = model.tail(_select(cache, b, torch.zeros(len(b), dtype=torch.long))).softmax(1)
        if tta:
            p = (p + model.tail(_select(cache, b, torch.ones(len(b), dtype=torch.long))).softmax(1)) / 2
        probs.append(p)
    return torch.cat(probs) if probs else torch.zeros(0, 6)


def fit(
    model: nn.Module,
    cache: list[torch.Tensor],
    labels: np.ndarray,
    train_idx,
    cfg: TrainConfig,
    monitor_idx=None,
    out_dir: Path | None = None,
    desc: str = "train",
    aux: tuple[list[torch.Tensor], torch.Tensor] | None = None,
    damaged: list[torch.Tensor] | None = None,
    label_names: tuple[str, ...] | list[str] = (),
    closeups: list[torch.Tensor] | None = None,
) -> FitResult:
    """Train the tail on cached stem outputs. Resumes from `out_dir/checkpoint.pt` when present.

    `aux` = (lensor stem cache, multi-hot damage tags): a throw-away linear head on the shared
    features learns the tags alongside the six classes (weight `cfg.lensor_weight`); it is not
    checkpointed, so a resumed run starts it afresh."""
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    structured = is_structured(model)
    y_all = torch.as_tensor(labels, dtype=torch.long)
    train_idx = np.asarray(train_idx)
    for p in model.parameters():
        p.requires_grad = False
    head_params = list(model.head.parameters())
    tail_params = [p for m in model.tail_modules() for p in m.parameters()] if cfg.lr_backbone > 0 else []
    for p in head_params + tail_params:
        p.requires_grad = True
    groups = [{"params": head_params, "lr": cfg.lr_head}]
    aux_head = None
    if aux is not None and cfg.lensor_weight > 0:
        aux_head = nn.Linear(model.head_in_features, aux[1].shape[1])
        groups.append({"params": list(aux_head.parameters()), "lr": cfg.lr_head})
    if tail_params:
        groups.append({"params": tail_params, "lr": cfg.lr_backbone})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_idx) / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, total, int(cfg.warmup_epochs * steps_per_epoch)))

    weights = sampling_weights(labels, train_idx, cfg.balanced)
    n_views = cache[0].shape[1]
    is_normal = torch.from_numpy(normal_mask(label_names)) if label_names else None

    result = FitResult()
    start_epoch, best_loss, best_state, bad = 0, float("inf"), None, 0
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    ckpt_path = Path(out_dir) / "checkpoint.pt" if out_dir else None
    log_path = Path(out_dir) / "metrics.jsonl" if out_dir else None
    if ckpt_path and ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        start_epoch, best_loss, best_state, bad = ck["epoch"] + 1, ck["best_loss"], ck["best_state"], ck["bad"]
        result.history = ck["history"]
        rng = np.random.default_rng(cfg.seed + start_epoch)
        torch.manual_seed(cfg.seed + start_epoch)

    bar = tqdm(range(start_epoch, cfg.epochs), desc=desc, leave=False)
    for epoch in bar:
        set_train_mode(model)
        order = rng.choice(train_idx, size=len(train_idx), replace=True, p=weights) if cfg.balanced else rng.permutation(train_idx)
        running, seen = 0.0, 0
        for s in range(0, len(order), cfg.batch_size):
            b = torch.as_tensor(order[s : s + cfg.batch_size])
            views = torch.as_tensor(rng.integers(0, n_views, size=len(b)))  # eval, mirror and augmented views
            x, y = _select(cache, b, views), y_all[b]
            if closeups is not None and cfg.normal_closeups > 0 and is_normal is not None:
                # a Normal photo stays Normal however closely it is cropped; a damaged one might not
                swap = is_normal[y] & torch.from_numpy(rng.random(len(b)) < cfg.normal_closeups)
                if swap.any():
                    crop = _select(closeups, b[swap], torch.as_tensor(rng.integers(0, closeups[0].shape[1], size=int(swap.sum()))))
                    for t, c in zip(x, crop, strict=True):  # _select's tensors are fresh float copies
                        t[swap] = c
            if cfg.mixup > 0:
                lam = float(rng.beta(cfg.mixup, cfg.mixup))
                perm = torch.randperm(len(b))
                feats = model.features(x)
                feats = lam * feats + (1 - lam) * feats[perm]
                logits = model.head(feats)
                loss = lam * loss_fn(logits, y, cfg, structured) + (1 - lam) * loss_fn(logits, y[perm], cfg, structured)
            else:
                logits = model.tail(x)
                loss = loss_fn(logits, y, cfg, structured)
            if aux_head is not None:
                ai = torch.as_tensor(rng.integers(0, aux[1].shape[0], size=cfg.batch_size))
                av = torch.as_tensor(rng.integers(0, aux[0][0].shape[1], size=cfg.batch_size))
                tag_logits = aux_head(model.features(_select(aux[0], ai, av)))
                loss = loss + cfg.lensor_weight * nn.functional.binary_cross_entropy_with_logits(tag_logits, aux[1][ai])
            if damaged is not None and cfg.damaged_weight > 0:
                di = torch.as_tensor(rng.integers(0, damaged[0].shape[0], size=cfg.batch_size))
                dv = torch.as_tensor(rng.integers(0, damaged[0].shape[1], size=cfg.batch_size))
                loss = loss + cfg.damaged_weight * not_normal_loss(model.tail(_select(damaged, di, dv)), label_names)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach()) * len(b)
            seen += len(b)
        row = {"epoch": epoch + 1, "train_loss": round(running / max(1, seen), 4), "lr_head": opt.param_groups[0]["lr"]}
        if monitor_idx is not None and len(monitor_idx):
            probs = predict_cached(model, cache, monitor_idx, tta=cfg.tta)
            ym = y_all[torch.as_tensor(monitor_idx)]
            row["monitor_loss"] = round(float(nn.functional.nll_loss(probs.clamp_min(1e-8).log(), ym)), 4)
            row["monitor_acc"] = round(float((probs.argmax(1) == ym).float().mean()), 4)
            if cfg.patience:
                if row["monitor_loss"] < best_loss - 1e-4:
                    best_loss, bad, result.best_epoch = row["monitor_loss"], 0, epoch + 1
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad += 1
        result.history.append(row)
        bar.set_postfix({k: v for k, v in row.items() if k != "epoch"})
        if log_path:
            with open(log_path, "a") as fh:
                fh.write(json.dumps({"run": desc, **row}) + "\n")
        if ckpt_path:
            torch.save(
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "epoch": epoch,
                    "best_loss": best_loss,
                    "best_state": best_state,
                    "bad": bad,
                    "history": result.history,
                },
                ckpt_path,
            )
        if cfg.patience and bad >= cfg.patience:
            break
    if cfg.patience and best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_epoch = len(result.history)
    model.eval()
    result.seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------- metrics and CV


def classification_metrics(y_true, y_pred, labels: tuple[str, ...]) -> dict:
    from sklearn.metrics import confusion_matrix, f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))
    out = {
        "n": len(y_true),
        "accuracy": round(float((y_true == y_pred).mean()) if len(y_true) else 0.0, 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro", labels=list(range(len(labels))), zero_division=0)), 4),
    }
    if len(labels) == 6:  # the seed's view × condition labels: the two marginal accuracies say which half errs
        out["view_accuracy"] = round(float((y_true // 3 == y_pred // 3).mean()) if len(y_true) else 0.0, 4)
        out["condition_accuracy"] = round(float((y_true % 3 == y_pred % 3).mean()) if len(y_true) else 0.0, 4)
        # damaged photos (breakage/crushed) called "Normal": the costly miss for triage
        damaged = y_true % 3 != 2
        out["damaged_called_normal"] = round(float((y_pred[damaged] % 3 == 2).mean()) if damaged.any() else 0.0, 4)
    out.update({"confusion": cm.tolist(), "labels": list(labels)})
    return out


def cv_metrics(labels: np.ndarray, oof: np.ndarray, fold_metrics: list[dict], entry: ModelEntry, cfg, started: float, **extra) -> dict:
    """The CV report both recipes write to cv.json: pooled out-of-fold metrics, per-fold rows, config."""
    metrics = classification_metrics(labels, oof.argmax(1), entry.labels)
    metrics["folds"] = fold_metrics
    metrics["fold_accuracy_std"] = round(float(np.std([f["accuracy"] for f in fold_metrics])), 4)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    metrics.update(extra)
    metrics["config"] = asdict(cfg)
    metrics["oof_probs"] = oof.round(4).tolist()
    return metrics


def cross_validate(
    entry: ModelEntry,
    records: list[ImageRecord],
    cfg: TrainConfig,
    folds: int = 5,
    cache_dir: Path | None = None,
    out_dir: Path | None = None,
    fold_seed: int = 0,
    pretrained: bool = True,
    splits: list[tuple[np.ndarray, np.ndarray]] | None = None,
    check_idx: np.ndarray | None = None,
    fold_hook: Callable[[int, nn.Module, np.ndarray, np.ndarray], None] | None = None,
) -> dict:
    """k-fold CV (stratified, or the given `splits`, e.g. near-copy-grouped); the model is rebuilt
    from the pretrained state for every fold. Out-of-fold probabilities (with TTA if configured) and
    raw logits of the service's eval view (for calibration) are both returned.

    `check_idx`: a second check — train on every other photo, predict these (e.g. the original
    169 photos after training on `-more` only); reported under `cross_check`.

    `fold_hook(k, model, train_idx, val_idx)`: called with each fold's trained full model (e.g. to export
    and quantise it), so other judgements run on exactly these folds and fold models."""
    from damagelens.vision.architectures import build_architecture

    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = build_architecture(entry, pretrained_backbone=pretrained).float().eval()
    init_state = copy.deepcopy(model.state_dict())
    cache = build_stem_cache(model, entry, records, cfg, cache_dir)
    aux = build_lensor_cache(model, entry, cfg, cache_dir)
    damaged = build_damaged_cache(model, entry, cfg, cache_dir)
    closeups = build_closeup_cache(model, entry, records, cfg, cache_dir)
    net, cache = training_view(model, entry, records, cfg, cache, cache_dir)
    if (damaged is not None or closeups is not None) and net is not model:
        raise ValueError("damaged_weight and closeup_views need a trainable tail (lr_backbone > 0)")
    cache_s = time.perf_counter() - started
    labels = np.array([r.label for r in records])
    oof = np.zeros((len(records), len(entry.labels)), dtype=np.float32)
    oof_logits, oof_mirror, oof_closeup = np.zeros_like(oof), np.zeros_like(oof), np.zeros_like(oof)
    fold_metrics = []
    for k, (tr, va) in enumerate(splits if splits is not None else stratified_kfold(labels, folds, fold_seed)):
        model.load_state_dict(init_state)
        torch.manual_seed(cfg.seed + k)
        _reinit_head(model, cfg.seed + k)
        fdir = Path(out_dir) / f"fold{k}" if out_dir else None
        if fdir:
            fdir.mkdir(parents=True, exist_ok=True)
        monitor = va if cfg.patience else None  # early stopping on the val fold would bias CV: off by default
        fit(
            net, cache, labels, tr, cfg, monitor_idx=monitor, out_dir=fdir, desc=f"{entry.name} fold {k + 1}/{folds}", aux=aux,
            damaged=damaged, label_names=entry.labels, closeups=closeups,
        )  # fmt: skip
        probs = predict_cached(net, cache, va, tta=cfg.tta).numpy()
        oof[va] = probs
        oof_logits[va] = logits_cached(net, cache, va).numpy()
        oof_mirror[va] = logits_cached(net, cache, va, view=1).numpy()
        if closeups is not None:
            oof_closeup[va] = logits_cached(net, closeups, va).numpy()
        fm = classification_metrics(labels[va], probs.argmax(1), entry.labels)
        fold_metrics.append({k2: fm[k2] for k2 in ("n", "accuracy", "macro_f1")})
        log.info("fold %d: %s", k, fold_metrics[-1])
        if fold_hook is not None:
            fold_hook(k, model, np.asarray(tr), np.asarray(va))
    metrics = cv_metrics(labels, oof, fold_metrics, entry, cfg, started, cache_seconds=round(cache_s, 1))
    metrics["per_class_recall"] = per_class_recall(metrics["confusion"], entry.labels)
    metrics["oof_logits"] = oof_logits.round(4).tolist()
    metrics["oof_mirror_logits"] = oof_mirror.round(4).tolist()  # lets an ensemble be scored with mirror TTA, out of fold
    metrics["served_view_accuracy"] = round(float((oof_logits.argmax(1) == labels).mean()), 4)  # one view, as `fast` serves
    metrics["tta_accuracy"] = tta_accuracy(oof_logits, oof_mirror, labels)
    if closeups is not None:
        metrics["closeup"] = closeup_report(labels, oof_closeup, entry.labels)
    if check_idx is not None and len(check_idx):
        check_idx = np.asarray(check_idx)
        train_idx = np.setdiff1d(np.arange(len(records)), check_idx)
        model.load_state_dict(init_state)
        _reinit_head(model, cfg.seed + folds)
        fdir = Path(out_dir) / "cross-check" if out_dir else None
        fit(
            net, cache, labels, train_idx, cfg, out_dir=fdir, desc=f"{entry.name} cross-check", aux=aux, damaged=damaged,
            label_names=entry.labels, closeups=closeups,
        )  # fmt: skip
        probs = predict_cached(net, cache, check_idx, tta=cfg.tta).numpy()
        check = classification_metrics(labels[check_idx], probs.argmax(1), entry.labels)
        check["per_class_recall"] = per_class_recall(check["confusion"], entry.labels)
        check["train_n"] = len(train_idx)
        check["logits"] = logits_cached(net, cache, check_idx).numpy().round(4).tolist()
        check["mirror_logits"] = logits_cached(net, cache, check_idx, view=1).numpy().round(4).tolist()
        check["tta_accuracy"] = tta_accuracy(np.asarray(check["logits"]), np.asarray(check["mirror_logits"]), labels[check_idx])
        check["labels_true"] = labels[check_idx].tolist()
        metrics["cross_check"] = check
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    return metrics


def tta_accuracy(logits: np.ndarray, mirror_logits: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the mean of the eval view's and the mirrored view's softmax (`mean_ensemble`'s `mirror_tta`)."""
    return round(float((view_probs(logits, mirror_logits).argmax(1) == labels).mean()), 4)


def closeup_report(labels: np.ndarray, logits: np.ndarray, label_names: tuple[str, ...] | list[str]) -> dict:
    """Out of fold, on one tight crop per photo: the share called "… Normal", for Normal and damaged photos.
    A close-up of an undamaged car should stay Normal; one of a damaged car may or may not show the damage."""
    normal = normal_mask(label_names)
    called_normal = normal[logits.argmax(1)]
    is_normal = normal[labels]
    return {
        "normal_called_normal": round(float(called_normal[is_normal].mean()), 4) if is_normal.any() else None,
        "damaged_called_normal": round(float(called_normal[~is_normal].mean()), 4) if (~is_normal).any() else None,
        "logits": logits.round(4).tolist(),
    }


def per_class_recall(confusion: list[list[int]], labels: tuple[str, ...] | list[str]) -> dict[str, float]:
    cm = np.asarray(confusion)
    return {label: round(float(cm[i, i] / max(1, cm[i].sum())), 4) for i, label in enumerate(labels)}


def _reinit_head(model: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    for m in model.head.modules():
        if isinstance(m, (nn.Linear, nn.LayerNorm)):
            m.reset_parameters()


def final_fit(
    entry: ModelEntry,
    records: list[ImageRecord],
    cfg: TrainConfig,
    cache_dir: Path | None = None,
    out_dir: Path | None = None,
    pretrained: bool = True,
) -> tuple[nn.Module, FitResult]:
    from damagelens.vision.architectures import build_architecture

    torch.manual_seed(cfg.seed)
    model = build_architecture(entry, pretrained_backbone=pretrained).float().eval()
    cache = build_stem_cache(model, entry, records, cfg, cache_dir)
    aux = build_lensor_cache(model, entry, cfg, cache_dir)
    damaged = build_damaged_cache(model, entry, cfg, cache_dir)
    # the crops are only trained on when normal_closeups > 0; a final fit has no out-of-fold score to give
    closeups = build_closeup_cache(model, entry, records, cfg, cache_dir) if cfg.normal_closeups > 0 else None
    net, cache = training_view(model, entry, records, cfg, cache, cache_dir)
    labels = np.array([r.label for r in records])
    _reinit_head(model, cfg.seed)
    res = fit(
        net, cache, labels, np.arange(len(records)), cfg, out_dir=out_dir, desc=f"{entry.name} final", aux=aux, damaged=damaged,
        label_names=entry.labels, closeups=closeups,
    )  # fmt: skip
    return model.eval(), res


def holdout_fit(
    entry: ModelEntry,
    train_records: list[ImageRecord],
    val_records: list[ImageRecord],
    cfg: TrainConfig,
    cache_dir: Path | None = None,
    out_dir: Path | None = None,
    pretrained: bool = True,
) -> tuple[nn.Module, FitResult, dict]:
    """Train on a given train split, select on the given val split (early stopping on its loss when
    `cfg.patience`), and score the selected model on val. For label sets with their own fixed split
    (e.g. severity), where cross-validation would ignore the split the data comes with."""
    from damagelens.vision.architectures import build_architecture

    torch.manual_seed(cfg.seed)
    model = build_architecture(entry, pretrained_backbone=pretrained).float().eval()
    train_cache = build_stem_cache(model, entry, train_records, cfg, cache_dir)
    val_cache = build_stem_cache(
        model, entry.model_copy(update={"name": f"{entry.name}-val"}), val_records, replace(cfg, n_aug=0), cache_dir
    )
    n_views = train_cache[0].shape[1]
    pad = torch.tensor([0, 1] + [0] * (n_views - 2))  # val needs only its eval and mirror views; pad to the cache's width
    cache = [torch.cat([t, v[:, pad]]) for t, v in zip(train_cache, val_cache, strict=True)]
    labels = np.array([r.label for r in train_records] + [r.label for r in val_records])
    n_train = len(train_records)
    val_idx = np.arange(n_train, len(labels))
    _reinit_head(model, cfg.seed)
    res = fit(model, cache, labels, np.arange(n_train), cfg, monitor_idx=val_idx, out_dir=out_dir, desc=f"{entry.name} train")
    probs = predict_cached(model, cache, val_idx, tta=cfg.tta).numpy()
    metrics = classification_metrics(labels[val_idx], probs.argmax(1), entry.labels)
    metrics.update({"best_epoch": res.best_epoch, "train_seconds": round(res.seconds, 1), "config": asdict(cfg)})
    return model.eval(), res, metrics
