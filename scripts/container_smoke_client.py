"""What a user does against a freshly started container stack, through the UI's nginx origin only.

Run by scripts/container-smoke.sh; exits non-zero with the reason on the first thing that is wrong.
Real photos come from the data folder (settings `data_dir`); without it, a generated photo-sized
JPEG is used and the script says so.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

STAGES = ("classify", "explain", "detect")


def fail(message: str) -> None:
    print(f"container-smoke client: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def photos(count: int) -> list[tuple[str, bytes]]:
    from damagelens.settings import get_settings

    root = get_settings().data_dir / "car-damage-6class"
    folders = sorted(d for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
    found = [min(d.glob("*.jpg")) for d in folders[::2][:count] if any(d.glob("*.jpg"))]  # F_Breakage, F_Normal, R_Crushed
    if found:
        return [(p.name, p.read_bytes()) for p in found]
    print(f"container-smoke client: no photos under {root}; using a generated image", file=sys.stderr)
    buf = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize((800, 600)).save(buf, "JPEG")
    return [("generated.jpg", buf.getvalue())]


def decode(client: httpx.Client, url: str) -> tuple[int, int]:
    response = client.get(url, follow_redirects=True)
    if response.status_code != 200:
        fail(f"GET {url} -> {response.status_code}")
    with Image.open(io.BytesIO(response.content)) as image:
        image.load()
        return image.size


def check_ui(client: httpx.Client) -> None:
    page = client.get("/")
    if page.status_code != 200 or '<div id="root">' not in page.text:
        fail(f"UI index: {page.status_code}")
    assets = [part.split('"')[0] for part in page.text.split('src="')[1:] if part.startswith("/assets/")]
    if not assets or client.get(assets[0]).status_code != 200:
        fail(f"UI script asset not served: {assets}")
    ready = client.get("/readyz")
    if ready.status_code != 200:
        fail(f"/readyz through nginx: {ready.status_code} {ready.text}")
    models = client.get("/v1/models").json()
    print("models:", ", ".join(m["name"] for m in models["models"]))


def run_job(client: httpx.Client, name: str, data: bytes, timeout: float) -> dict:
    started = time.monotonic()
    response = client.post(
        "/v1/jobs", files={"image": (name, data, "image/jpeg")}, data={"model": "fast"}
    )  # the default tasks: every stage
    if response.status_code != 202:
        fail(f"submit {name}: {response.status_code} {response.text}")
    links = response.json()["links"]
    with client.stream("GET", links["events"], timeout=30) as events:  # SSE through nginx: first event arrives
        if not any(line.startswith("data:") for line in events.iter_lines()):
            fail("no SSE event")
    while time.monotonic() - started < timeout:
        job = client.get(links["self"]).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.5)
    else:
        fail(f"{name}: not finished after {timeout}s")
    if (
        job["status"] != "succeeded"
        or any(state["status"] != "succeeded" for state in job["stages"].values())
        or not set(STAGES) <= set(job["stages"])
    ):
        fail(f"{name}: {json.dumps(job['stages'])}")
    results = job["results"]
    if "assess" in job["stages"]:  # the fourth stage, when it is a default task
        decode(client, results["assessment"]["image_url"])
    for url in (
        links["input"],
        results["explanation"]["overlay_url"],
        results["explanation"]["heatmap_url"],
        results["detection"]["image_url"],
    ):
        decode(client, url)
    seconds = time.monotonic() - started
    print(
        f"{name}: {results['classification']['label']} ({results['classification']['confidence']:.2f}), "
        f"{results['detection']['total_detections']} boxes, {len(job['stages'])} stages, artifacts decoded, {seconds:.1f} s"
    )
    return {"photo": name, "seconds": round(seconds, 2), "label": results["classification"]["label"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--photos", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    with httpx.Client(base_url=args.base_url, headers=headers, timeout=60) as client:
        check_ui(client)
        jobs = [run_job(client, name, data, args.timeout) for name, data in photos(args.photos)]
        name, data = photos(1)[0]
        seed = client.post("/predict/resnet", files={"file": (name, data, "image/jpeg")}, timeout=args.timeout)
        if seed.status_code != 200 or seed.json().get("status") != "success" or len(seed.json()["prediction"]) != 6:
            fail(f"/predict/resnet: {seed.status_code} {seed.text[:300]}")
        if args.api_key:  # the stack requires keys: a request without one is refused, not served
            anonymous = httpx.post(f"{args.base_url}/v1/jobs", files={"image": (name, data, "image/jpeg")}, timeout=60)
            if anonymous.status_code != 401 or "error" not in anonymous.json():
                fail(f"submit without an API key: {anonymous.status_code} {anonymous.text[:200]}")
        bad = client.post("/v1/jobs", files={"image": ("notes.txt", b"not an image", "text/plain")})
        if bad.status_code not in (400, 415, 422) or "error" not in bad.json():
            fail(f"non-image upload: {bad.status_code} {bad.text[:200]}")
    (args.out / "client.json").write_text(json.dumps({"jobs": jobs, "seed_endpoint": "ok", "bad_upload": bad.status_code}, indent=2))
    print(f"container-smoke client: OK ({len(jobs)} photos, seed endpoint, bad upload -> {bad.status_code})")


if __name__ == "__main__":
    main()
