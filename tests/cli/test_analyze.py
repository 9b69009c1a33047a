"""`damagelens analyze` runs the whole pipeline in-process with the shipped models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from damagelens.cli import app
from damagelens.schemas import SEED_LABELS
from tests.support import images

pytestmark = pytest.mark.slow


def test_analyze_writes_results_and_json(tmp_path: Path) -> None:
    photo = tmp_path / "car.jpg"
    photo.write_bytes(images.jpeg(400, 300, seed=11))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(images.truncated_jpeg())
    result = CliRunner().invoke(app, ["analyze", str(photo), str(bad), "--model", "fast", "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 1, result.output  # one bad image → non-zero, the good one still analysed
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    good = next(line for line in lines if line["image"] == str(photo))
    assert set(good["classification"]["probabilities"]) == set(SEED_LABELS)
    assert good["explanation"]["target_label"] in SEED_LABELS
    assert good["detection"]["total_detections"] == len(good["detection"]["detections"])
    for file in good["files"]:
        assert Image.open(file).size[0] > 0
    broken = next(line for line in lines if line["image"] == str(bad))
    assert broken["error"]["code"] == "invalid_image"
