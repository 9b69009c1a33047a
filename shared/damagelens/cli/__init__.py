"""The `damagelens` command: service entry points, in-process analysis, and model tooling."""

from __future__ import annotations

import importlib.util

import typer

from damagelens.cli import analyze, service

app = typer.Typer(no_args_is_help=True, add_completion=False, help="DamageLens: car-damage classification, Grad-CAM and detection.")
service.register(app)
analyze.register(app)

_models = None
if importlib.util.find_spec("damagelens.cli.models") is not None:
    try:
        from damagelens.cli import models as _models
    except ModuleNotFoundError as exc:  # the slim gateway image has no model stack: no model commands there
        if (exc.name or "").split(".")[0] not in {"torch", "torchvision", "timm", "ultralytics", "sklearn", "matplotlib"}:
            raise
if _models is not None:
    _models.register(app)


def main() -> None:
    app()
