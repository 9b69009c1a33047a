#!/usr/bin/env python3
"""Print the configuration table (every DAMAGELENS_* variable) for the README, from Settings itself."""

from __future__ import annotations

from pathlib import Path

from damagelens.settings import REPO_ROOT, Settings


def _default(value: object) -> str:
    if isinstance(value, Path):
        for base, prefix in ((REPO_ROOT, ""), (REPO_ROOT.parent, "../"), (Path.home(), "~/")):
            if value.is_relative_to(base):
                return f"`{prefix}{value.relative_to(base)}`"
        return f"`{value}`"
    if value is None or value == []:
        return "(unset)"
    return f"`{value}`"


def table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default
        rows.append(f"| `DAMAGELENS_{name.upper()}` | {_default(default)} | {field.description or ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
