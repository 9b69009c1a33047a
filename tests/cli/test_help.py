"""Every command's `--help` renders: Typer's rich help parses `[...]` in help texts as markup, so a
literal bracket (`hf://org/repo[/subdir]`) made `damagelens export --help` crash."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from damagelens.cli import app


def _command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:  # typer vendors its own click: groups are what have `commands`
        paths.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    return paths


PATHS = _command_paths()


def test_the_cli_has_its_commands() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"serve", "export", "train severity", "evaluate severity", "quantize cv"} <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "damagelens")
def test_help_renders(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
