"""A real Chromium (Debian's) drives the built web UI against the real stack: upload → every default stage → tabs
(the Assessment tab when `assess` is a default task), then two photos at once → one inspection whose
"Download report" button serves the report.

The browser script lives with the frontend (`frontend/e2e/run.mjs`, playwright-core); this test
starts it against the same stack the API end-to-end tests use and saves its screenshots.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from damagelens.schemas import DEFAULT_STAGES
from tests.e2e.conftest import REPO, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]
CHROMIUM = os.environ.get("DAMAGELENS_E2E_CHROMIUM", "/usr/bin/chromium")


def test_upload_a_photo_in_the_browser(stack: Stack, real_photos: list[Path]) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM} (scripts/install-system-deps.sh installs Debian's chromium)")
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    if not (REPO / "frontend" / "dist" / "index.html").exists() or not (REPO / "frontend" / "node_modules").is_dir():
        pytest.skip("frontend not built: run `make setup` (npm ci && npm run build in frontend/)")
    out = REPO / "frontend" / "test-results"
    env = {
        **os.environ,
        "DAMAGELENS_E2E_URL": stack.base_url,
        "DAMAGELENS_E2E_IMAGE": str(real_photos[0]),
        "DAMAGELENS_E2E_TIMEOUT_S": "300",
        "DAMAGELENS_E2E_CHROMIUM": CHROMIUM,
        "DAMAGELENS_E2E_OUT": str(out),
        "DAMAGELENS_E2E_INSPECTION_IMAGES": os.pathsep.join(str(p) for p in real_photos[1:4:2]),
    }
    run = subprocess.run(["node", "e2e/run.mjs"], cwd=REPO / "frontend", env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{stack.tail_logs()}"
    assert "E2E PASSED" in run.stdout
    # two photos sent together: one inspection, its report (input, overlay, detection, and assessment when a default task)
    per_photo = 4 if "assess" in DEFAULT_STAGES else 3
    assert f'"report_images":{2 * per_photo}' in run.stdout
    for shot in ("desktop-prediction.png", "desktop-gradcam.png", "desktop-detection.png", "mobile-375.png", "desktop-inspection.png"):
        assert (out / shot).stat().st_size > 10_000, shot
    summary = json.loads((out / "e2e-summary.json").read_text())
    if "assess" in DEFAULT_STAGES:  # the UI submits the default tasks: the Assessment tab must have been checked
        assert summary["assessment"] and summary["assessment"]["severity"] in ("minor", "moderate", "severe"), summary
        assert (out / "desktop-assessment.png").stat().st_size > 10_000
