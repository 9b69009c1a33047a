"""Near-copy groups for honest cross-validation.

The 6-class photos contain near-copies (mirrored, colour-shifted or re-encoded shots, dealer
listings of one model in one pose): if one copy is in a training fold and another in its
validation fold, CV measures recall of a seen photo. Photos are linked when the perceptual hash
(DCT pHash of the greyscale photo, so colour shifts barely move it) of one is within
`max_distance` bits of the other's or of the other's mirror; groups are the connected components,
and grouped folds never split a group.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from damagelens.training.data import ImageRecord, load_rgb

log = logging.getLogger(__name__)

DEFAULT_MAX_DISTANCE = (
    8  # of 64 bits: at 8 no group mixes two labels on the 6-class photos; at 10 chains start to (docs/models/experiments.md)
)


def perceptual_hashes(image: Image.Image) -> tuple[int, int]:
    """64-bit pHash of the photo and of its mirror image, as integers."""
    import imagehash

    grey = image.convert("L")
    return (
        int(str(imagehash.phash(grey)), 16),
        int(str(imagehash.phash(ImageOps.mirror(grey))), 16),
    )


def hash_records(records: list[ImageRecord], cache_file: Path | None = None) -> np.ndarray:
    """[N, 2] uint64 (hash, mirrored hash); cached by file sha256 in `cache_file` (JSON) when given."""
    cached: dict[str, list[int]] = {}
    if cache_file is not None and Path(cache_file).exists():
        cached = {k: [int(h, 16) for h in v] for k, v in json.loads(Path(cache_file).read_text()).items()}
    out = np.zeros((len(records), 2), dtype=np.uint64)
    fresh = 0
    for i, rec in enumerate(records):
        if rec.sha256 not in cached:
            cached[rec.sha256] = list(perceptual_hashes(load_rgb(rec.path)))
            fresh += 1
        out[i] = cached[rec.sha256]
    if cache_file is not None and fresh:
        Path(cache_file).parent.mkdir(parents=True, exist_ok=True)
        Path(cache_file).write_text(json.dumps({k: [f"{h:016x}" for h in v] for k, v in cached.items()}))
    return out


def _popcount(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    bytes_ = x.view(np.uint8).reshape(*x.shape, 8)
    return np.unpackbits(bytes_, axis=-1).sum(-1)


def near_copy_groups(hashes: np.ndarray, max_distance: int = DEFAULT_MAX_DISTANCE) -> np.ndarray:
    """Group id per photo: connected components of "hash within `max_distance` of the other's hash or mirror"."""
    n = len(hashes)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    plain, mirrored = hashes[:, 0], hashes[:, 1]
    for i in range(n):
        d = np.minimum(_popcount(plain[i] ^ plain[i + 1 :]), _popcount(plain[i] ^ mirrored[i + 1 :]))
        for j in np.nonzero(d <= max_distance)[0] + i + 1:
            a, b = find(i), find(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    roots = np.array([find(i) for i in range(n)])
    _, group = np.unique(roots, return_inverse=True)
    return group


def group_summary(groups: np.ndarray, labels: np.ndarray) -> dict:
    """Sizes and label purity of the groups (mixed-label groups are reported, not dropped)."""
    sizes = np.bincount(groups)
    mixed = sum(len(set(labels[groups == g].tolist())) > 1 for g in np.nonzero(sizes > 1)[0])
    return {
        "photos": len(groups),
        "groups": len(sizes),
        "photos_in_multi_photo_groups": int(sizes[sizes > 1].sum()),
        "largest_group": int(sizes.max()) if len(sizes) else 0,
        "mixed_label_groups": int(mixed),
    }


def grouped_kfold(labels: np.ndarray, groups: np.ndarray, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k folds that never split a group (sklearn `StratifiedGroupKFold`, seeded)."""
    from sklearn.model_selection import StratifiedGroupKFold

    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in sgkf.split(np.zeros(len(labels)), np.asarray(labels), np.asarray(groups))]


def grouped_splits(
    records: list[ImageRecord], cache_dir: Path, folds: int = 5, seed: int = 0, max_distance: int = DEFAULT_MAX_DISTANCE
) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict]:
    """The v2 CV's folds: pHash near-copy groups never split, stratified, seeded; hashes cached in `cache_dir`/phash.json."""
    labels = np.array([r.label for r in records])
    groups = near_copy_groups(hash_records(records, Path(cache_dir) / "phash.json"), max_distance)
    return grouped_kfold(labels, groups, folds, seed), {**group_summary(groups, labels), "max_distance": max_distance}
