"""End to end: a 12-photo inspection through real workers, followed live, then its report as HTML
and as a PDF that poppler's `pdftoppm` turns into pages showing the photos."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from tests.conftest import CLASS_FOLDERS
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def twelve_photos(data_dir: Path) -> list[Path]:
    root = data_dir / "car-damage-6class"
    if not root.is_dir():
        pytest.skip(f"real photos not available: {root} is absent (set DAMAGELENS_DATA_DIR)")
    photos = [p for folder in CLASS_FOLDERS for p in sorted((root / folder).glob("*.jpg"))[1:3]]
    assert len(photos) == 12
    return photos


@pytest.fixture(scope="module")
def finished_inspection(stack: Stack, twelve_photos: list[Path]) -> dict:
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in twelve_photos]
    with stack.client(timeout=120) as client:
        response = client.post("/v1/inspections", files=files, data={"model": "fast", "reference": "claim-e2e"})
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert [p["filename"] for p in accepted["jobs"]] == [p.name for p in twelve_photos]
        events = []
        with client.stream("GET", accepted["links"]["events"], timeout=900) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line.removeprefix("data: ")))
        assert events and events[-1]["status"] == "succeeded", json.dumps(events[-1] if events else {}, indent=1) + stack.tail_logs()
        assert len(events) >= 2 and events[0]["progress"] < 1.0  # it was followed live, not read once at the end
        doc = client.get(accepted["links"]["self"]).json()
    return doc


def test_twelve_photo_inspection_completes_with_a_vehicle_summary(finished_inspection: dict) -> None:
    doc = finished_inspection
    assert doc["status"] == "succeeded" and doc["progress"] == 1.0 and doc["reference"] == "claim-e2e"
    assert len(doc["photos"]) == 12 and all(p["status"] == "succeeded" for p in doc["photos"])
    jobs = [p["job"] for p in doc["photos"]]
    summary = doc["summary"]
    for view in ("front", "rear"):
        found = [j["results"]["classification"] for j in jobs if j["results"]["classification"]["label"].lower().startswith(view)]
        if found:
            finding = summary[view]
            assert finding is not None and finding["label"] in {c["label"] for c in found}
            assert doc["photos"][finding["photo_index"]]["job"]["id"] == finding["job_id"]
    assert summary["damage_regions"] == sum(j["results"]["detection"]["total_detections"] for j in jobs)
    uncertain = {u["job_id"] for u in summary["uncertain_photos"]}
    threshold = summary["uncertainty_threshold"]
    classes = {j["id"]: j["results"]["classification"] for j in jobs}
    assert uncertain == {i for i, c in classes.items() if c["confidence"] < threshold or c.get("review")}
    # assess ran on every photo (default tasks): worst severity over the photos and the summed counts
    assessments = {j["id"]: j["results"]["assessment"] for j in jobs}
    assert summary["photos_assessed"] == 12 and all(assessments.values())
    order = ["minor", "moderate", "severe"]
    worst = max(order.index(a["severity"]["label"]) for a in assessments.values())
    assert summary["severity"]["label"] == order[worst]
    assert assessments[summary["severity"]["job_id"]]["severity"]["label"] == order[worst]
    for kind in ("dent", "scratch", "broken"):
        assert summary["damage_counts"][kind] == sum(a["counts"][kind] for a in assessments.values())


def test_report_html_is_self_contained(stack: Stack, finished_inspection: dict) -> None:
    with stack.client(timeout=120) as client:
        response = client.get(finished_inspection["links"]["report"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    # input, Grad-CAM overlay, detections × 12, plus the assessment image of each photo assess ran on
    # (the default tasks include assess since issue 10, so that is every photo here: 48)
    assessed = [p for p in finished_inspection["photos"] if p["job"]["results"].get("assessment")]
    assert html.count('src="data:image/jpeg;base64,') == 36 + len(assessed)
    assert len(assessed) == 12
    assert 'src="http' not in html and 'src="/' not in html
    assert "claim-e2e" in html and "Vehicle summary" in html and "Grad-CAM overlay" in html
    for photo in finished_inspection["photos"]:
        cls = photo["job"]["results"]["classification"]
        assert photo["filename"] in html and cls["model_version"] in html
    summary = finished_inspection["summary"]
    worst, counts = summary["severity"], summary["damage_counts"]
    assert f"Severity (worst)</th><td>{worst['label']} ({worst['confidence']:.1%})" in html
    total = f"{counts['dent']} dent(s), {counts['scratch']} scratch(es), {counts['broken']} broken part(s) over 12 photo(s)"
    assert total in html
    for photo in assessed:
        severity = photo["job"]["results"]["assessment"]["severity"]
        assert f"Severity <b>{severity['label']}</b> ({severity['confidence']:.1%})" in html
    flagged = [p for p in finished_inspection["photos"] if p["job"]["results"]["classification"].get("review")]
    assert html.count("<span class='review'>Needs review</span>") == len(flagged)


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
def test_report_pdf_opens_into_pages_that_show_the_photos(stack: Stack, finished_inspection: dict, tmp_path: Path) -> None:
    with stack.client(timeout=300) as client:
        response = client.get(finished_inspection["links"]["report"], params={"format": "pdf"})
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == "application/pdf" and response.content.startswith(b"%PDF")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(response.content)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 4, f"{len(pages)} pages for 12 photos"
    colourful = 0
    for page in pages:
        image = Image.open(io.BytesIO(page.read_bytes())).convert("RGB")
        grey = image.convert("L")
        assert ImageStat.Stat(grey).stddev[0] > 5, f"{page.name} is blank"
        hsv = image.convert("HSV")
        saturated = sum(1 for s in hsv.getdata(band=1) if s > 60) / (image.width * image.height)
        colourful += saturated > 0.05  # photos and heatmaps are in colour; text and tables are not
    assert colourful >= len(pages) - 1, f"only {colourful} of {len(pages)} pages show photos"
