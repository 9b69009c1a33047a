"""The Grafana dashboard in infra/grafana only charts series the gateway's /metrics really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration
DASHBOARD = Path(__file__).resolve().parents[2] / "infra" / "grafana" / "damagelens-reliability.json"


def test_every_dashboard_series_is_exported(client: TestClient) -> None:
    client.post("/v1/jobs", files={"image": ("c.jpg", b"not an image", "image/jpeg")})  # a request, so HTTP series exist
    text = client.get("/metrics").text.splitlines()
    exported = {line.split("{")[0].split(" ")[0] for line in text if line and not line.startswith("#")}
    # families with no sample yet (a labelled counter nobody incremented) still declare their name
    for line in text:
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            exported |= {name} | ({f"{name}_bucket", f"{name}_count", f"{name}_sum"} if kind == "histogram" else set())
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"] for name in re.findall(r"damagelens_\w+", target["expr"])}
    assert {"damagelens_stages_running", "damagelens_stages_reaped_total", "damagelens_retries_total"} <= used
    missing = used - exported
    assert not missing, f"the dashboard charts series /metrics does not export: {sorted(missing)}"
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
