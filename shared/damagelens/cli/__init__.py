"""The `damagelens` command: service entry points, in-process analysis, and model tooling."""

from __future__ import annotations

import typer

from damagelens.cli import analyze, keys, models, quantize, service, submit

app = typer.Typer(no_args_is_help=True, add_completion=False, help="DamageLens: car-damage classification, Grad-CAM and detection.")
service.register(app)
analyze.register(app)
models.register(app)
keys.register(app)
submit.register(app)
quantize.register(app)


def main() -> None:
    app()
