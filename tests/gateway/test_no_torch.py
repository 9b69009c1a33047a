"""The gateway must never import torch or model code (it runs in a slim image)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'torchvision', 'timm', 'ultralytics', 'pytorch_grad_cam', 'cv2', 'transformers'}:
            raise ImportError(f'gateway imported {name}')
        if name.startswith('damagelens.vision') or name.startswith('damagelens_worker'):
            raise ImportError(f'gateway imported {name}')
sys.meta_path.insert(0, Block())
from damagelens_gateway.app import create_app
app = create_app()
app.openapi()
import damagelens.cli  # the gateway image runs `damagelens serve` without torch installed
print('ok', sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'numpy'}))
"""


def test_gateway_imports_without_torch(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DAMAGELENS_STORAGE_DIR": str(tmp_path)},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
    assert "torch" not in out.stdout
