"""Near-copy grouping: mirrored and colour-shifted copies of a real photo share a group and a fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from damagelens.training.data import CLASS_DIRS, data_dir, scan_image_folder, scan_image_folders
from damagelens.training.grouping import grouped_kfold, hash_records, near_copy_groups


def _real_root() -> Path:
    root = data_dir() / "car-damage-6class"
    if not root.is_dir():
        pytest.skip(f"real photos not available: {root} is absent (set DAMAGELENS_DATA_DIR)")
    return root


def _copy_set(tmp_path: Path) -> Path:
    """3 real photos per class; the first photo of F_Breakage also as a mirrored copy and the first of
    R_Crushed as a colour-shifted, re-encoded, downscaled copy (the kinds of copies the origin holds)."""
    src = _real_root()
    out = tmp_path / "copies"
    for cls in CLASS_DIRS:
        (out / cls).mkdir(parents=True)
        for path in sorted((src / cls).glob("*.jpg"))[:3]:
            (out / cls / path.name).write_bytes(path.read_bytes())
    first = sorted((out / "F_Breakage").glob("*.jpg"))[0]
    ImageOps.mirror(Image.open(first).convert("RGB")).save(out / "F_Breakage" / "zz_mirrored.jpg", quality=85)
    shot = sorted((out / "R_Crushed").glob("*.jpg"))[0]
    im = Image.open(shot).convert("RGB")
    im = ImageEnhance.Color(im).enhance(0.4)
    r, g, b = im.split()
    im = Image.merge("RGB", (b, g, r)).resize((im.width // 2, im.height // 2))
    im.save(out / "R_Crushed" / "zz_recoloured.jpg", quality=70)
    return out


def test_mirrored_and_recoloured_copies_share_a_group_and_a_fold(tmp_path: Path):
    records, _ = scan_image_folder(_copy_set(tmp_path))
    names = [r.path.name for r in records]
    groups = near_copy_groups(hash_records(records, tmp_path / "phash.json"))
    mirrored, recoloured = names.index("zz_mirrored.jpg"), names.index("zz_recoloured.jpg")
    f_orig = names.index(sorted(n for n in names if records[names.index(n)].label == 0 and n != "zz_mirrored.jpg")[0])
    r_orig = names.index(sorted(n for n in names if records[names.index(n)].label == 4 and n != "zz_recoloured.jpg")[0])
    assert groups[mirrored] == groups[f_orig]
    assert groups[recoloured] == groups[r_orig]
    assert len(set(groups.tolist())) == len(records) - 2  # the 18 distinct photos stay apart
    labels = np.array([r.label for r in records])
    for _tr, va in grouped_kfold(labels, groups, 2, seed=0):
        va = set(va.tolist())
        assert (mirrored in va) == (f_orig in va)
        assert (recoloured in va) == (r_orig in va)
    # the hash cache is keyed by content and reused
    again = hash_records(records, tmp_path / "phash.json")
    assert (near_copy_groups(again) == groups).all()


def test_scan_image_folders_drops_content_already_in_an_earlier_folder(tmp_path: Path):
    from tests.training.conftest import make_image

    a, b = tmp_path / "a", tmp_path / "b"
    for c, cls in enumerate(CLASS_DIRS):
        make_image(a / cls / "x.jpg", seed=c)
        make_image(b / cls / "y.jpg", seed=50 + c)
    (b / "F_Normal" / "copy.jpg").write_bytes((a / "F_Normal" / "x.jpg").read_bytes())
    records, reports = scan_image_folders([a, b])
    assert len(records) == 12
    assert [str(p) for p in reports[str(b)]["cross_folder_duplicates"]] == [str(b / "F_Normal" / "copy.jpg")]
    assert all(a in r.path.parents for r in records[:6])  # folder order kept: the first folder's photos first
