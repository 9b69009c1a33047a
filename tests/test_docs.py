"""Documentation that must not drift from the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_settings_table_matches_the_settings_class() -> None:
    table = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "settings_table.py")], capture_output=True, text=True, check=True
    ).stdout.strip()
    readme = (REPO / "README.md").read_text()
    start, end = readme.index("<!-- settings-table:start -->"), readme.index("<!-- settings-table:end -->")
    assert readme[start:end].split("-->", 1)[1].strip() == table, "README table is stale: run scripts/settings_table.py"
