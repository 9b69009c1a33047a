"""The Python client and `damagelens submit` against the real stack: SSE waiting, typed results,
downloaded artifacts that decode, an inspection report saved next to them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from damagelens.cli import app as cli_app
from damagelens.client import DamageLensClient
from damagelens.schemas import InspectionPublic, JobPublic
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_client_submits_waits_and_downloads(stack: Stack, real_photos: list[Path], tmp_path: Path) -> None:
    with DamageLensClient(stack.base_url) as client:
        job = client.wait(client.submit(real_photos[0], model="fast").id, timeout=300)
        assert isinstance(job, JobPublic) and job.status.value == "succeeded", job.model_dump_json(indent=1) + stack.tail_logs()
        files = client.download_artifacts(job, tmp_path)
        assert sorted(p.name.split("_", 1)[1] for p in files) == [
            "assessment.jpg",
            "detection.jpg",
            "heatmap.png",
            "input.jpg",
            "overlay.jpg",
        ]
        for path in files:
            Image.open(path).load()
        inspection = client.wait(client.submit_inspection(real_photos[1:3], model="fast").id, kind="inspection", timeout=300)
        assert isinstance(inspection, InspectionPublic) and inspection.status.value == "succeeded"
        assert [p.filename for p in inspection.photos] == [p.name for p in real_photos[1:3]]
        assert client.report(inspection.id).startswith(b"<!doctype html>")


def test_cli_submit_wait_out(stack: Stack, real_photos: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli_app,
        [
            "submit",
            str(real_photos[3]),
            str(real_photos[4]),
            "--server",
            stack.base_url,
            "--model",
            "fast",
            "--wait",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output + stack.tail_logs()
    doc = json.loads(result.stdout)
    assert doc["status"] == "succeeded" and len(doc["photos"]) == 2
    saved = {p.name for p in tmp_path.iterdir()}
    assert f"inspection-{doc['id']}.html" in saved
    assert sum(name.endswith("_overlay.jpg") for name in saved) == 2
