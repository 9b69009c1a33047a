"""Keep Ultralytics and huggingface_hub off the network: no hub, no auto-install, a private config dir."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def ensure_offline_env() -> None:
    """Call before importing `ultralytics`: it reads these variables at import time."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / f"damagelens-yolo-{os.getuid()}"))
    Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)
