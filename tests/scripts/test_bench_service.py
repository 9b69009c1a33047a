"""`scripts/bench_service.py`: the pieces that decide what is measured, and its refusal without a GPU."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from damagelens.schemas import Stage

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_service.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_service", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_started_stack_is_every_procfile_process_but_redis(bench: ModuleType) -> None:
    commands = bench.procfile_commands()
    assert "redis" not in commands  # started by the benchmark on its own port
    assert commands["gateway"][-1] == "serve" and commands["reaper"][-1] == "reaper"
    queues = {args[-1] for args in commands.values() if "worker" in args}
    assert {stage.value for stage in Stage} <= queues, "one worker per stage queue"
    assert all(args[:3] == [sys.executable, "-m", "damagelens.cli"] for args in commands.values())


def test_stage_compute_leaves_out_ultralytics_own_split_of_inference(bench: ModuleType) -> None:
    detect = {"inference": 100.0, "postprocess": 2.0, "yolo_preprocess": 10.0, "yolo_inference": 80.0, "yolo_postprocess": 5.0}
    assert bench.stage_compute_ms(detect) == 102.0
    assess = {"detect_inference": 50.0, "severity_inference": 20.0, "shape": 1.0}
    assert bench.stage_compute_ms(assess) == 71.0


def test_photos_are_spread_over_the_whole_list(bench: ModuleType) -> None:
    items = list(range(100))
    picked = bench.spaced(items, 10)
    assert picked == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert bench.spaced(items, 500) == items


def test_overhead_is_end_to_end_minus_compute(bench: ModuleType) -> None:
    result = bench.SideResult(side="damagelens", model="fast", latencies_s=[0.5, 0.4, 1.0], compute_ms=[400.0, 300.0, 500.0])
    assert result.overhead_percent == pytest.approx(25.0)  # median of 20 %, 25 %, 50 %


def test_cuda_without_a_gpu_fails_with_a_clear_message() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal path does not apply")
    run = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda"], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "--device cuda: torch.cuda.is_available() is False" in run.stderr
    assert "dl-bench" not in run.stderr  # refused before starting anything
