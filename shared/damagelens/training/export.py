"""FP16 safetensors, ONNX export with onnxruntime parity, and Hugging Face Hub upload."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from damagelens.registry import ModelEntry


def save_fp16_safetensors(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Every floating tensor stored as FP16 (integer buffers such as BN counters kept as is)."""
    from safetensors.torch import save_file

    state = {k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous().cpu() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={k: str(v) for k, v in (metadata or {}).items()})
    return path


def write_pretrained_cache(out_dir: Path) -> list[Path]:
    """The installed ImageNet backbones (classifiers dropped) as FP16 safetensors, ≈ 29 MB in all,
    read back by `damagelens.vision.backbones` when settings `pretrained_dir` points at `out_dir`."""
    from damagelens.vision.backbones import efficientnet_lite, mobilenet_v2_features

    modules = {f"tf_efficientnet_lite{v}": efficientnet_lite(v, pretrained=True) for v in (0, 1, 2)}
    modules["mobilenet_v2_features"] = mobilenet_v2_features(pretrained=True)
    return [save_fp16_safetensors(module, Path(out_dir) / f"{name}.safetensors") for name, module in modules.items()]


def load_into(model: nn.Module, path: Path) -> nn.Module:
    """Strict load of an FP16 safetensors file into an FP32 module, through the service's loader."""
    from damagelens.vision.state_dicts import load_weights_into

    return load_weights_into(model, path)


def export_onnx(model: nn.Module, entry: ModelEntry, path: Path, opset: int = 17) -> Path:
    """Static batch-1 graph (the service's shape) with a dynamic batch axis."""
    model = model.float().eval()
    x = torch.randn(1, entry.input_channels, entry.input_size, entry.input_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (x,),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        opset_version=opset,
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    return path


def onnx_parity(model: nn.Module, onnx_path: Path, entry: ModelEntry, n: int = 4, seed: int = 0) -> float:
    """Max-abs difference of logits between PyTorch (FP32) and onnxruntime on random inputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    with torch.no_grad():
        for _ in range(n):
            x = torch.randn(1, entry.input_channels, entry.input_size, entry.input_size, generator=g)  # an ensemble packs its members
            ref = model.float().eval()(x).numpy()
            out = sess.run(None, {"input": x.numpy()})[0]
            worst = max(worst, float(np.abs(ref - out).max()))
    return worst


def push_to_hub(target: str, files: list[Path], message: str = "DamageLens model upload") -> list[str]:
    """`target` = hf://org/repo[/subdir]. Uses `HfApi().upload_file` (token from the environment/HF cache)."""
    from huggingface_hub import HfApi

    if not target.startswith("hf://"):
        raise ValueError("push target must look like hf://org/repo[/subdir]")
    parts = target.removeprefix("hf://").strip("/").split("/")
    if len(parts) < 2:
        raise ValueError("push target needs org/repo")
    repo_id, prefix = "/".join(parts[:2]), "/".join(parts[2:])
    api = HfApi()
    api.create_repo(repo_id=repo_id, exist_ok=True)
    uploaded = []
    for f in files:
        dest = f"{prefix}/{Path(f).name}" if prefix else Path(f).name
        api.upload_file(path_or_fileobj=str(f), path_in_repo=dest, repo_id=repo_id, commit_message=message)
        uploaded.append(f"hf://{repo_id}/{dest}")
    return uploaded


def export_model(entry: ModelEntry, out_dir: Path, onnx: bool = True, push: str | None = None) -> dict:
    """Load the registry entry the service way, write FP16 safetensors (+ ONNX, parity), optionally upload."""
    from damagelens.training.evaluate import load_entry_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {"model": entry.name}
    files: list[Path] = []
    if entry.task == "detect":
        from damagelens.registry.weights import resolve_weights

        src = resolve_weights(entry)
        if src is None:
            raise ValueError("detector has no weights")
        dst = out_dir / Path(src).name
        dst.write_bytes(Path(src).read_bytes())
        files.append(dst)
        if onnx:
            from damagelens.offline import ensure_offline_env

            ensure_offline_env()
            from ultralytics import YOLO

            onnx_file = Path(YOLO(str(dst), task="detect").export(format="onnx", imgsz=entry.input_size, simplify=False, dynamic=False))
            files.append(onnx_file)
    else:
        model = load_entry_model(entry)
        st = save_fp16_safetensors(model, out_dir / f"{entry.name}.safetensors", {"name": entry.name, "version": entry.version})
        files.append(st)
        report["safetensors_bytes"] = st.stat().st_size
        if onnx:
            onnx_file = export_onnx(model, entry, out_dir / f"{entry.name}.onnx")
            report["onnx_parity_max_abs_diff"] = onnx_parity(model, onnx_file, entry)
            files.append(onnx_file)
    card = out_dir / "config.json"
    card.write_text(json.dumps(entry.model_dump(mode="json", exclude={"base_dir"}), indent=2))
    files.append(card)
    report["files"] = [str(f) for f in files]
    if push:
        report["uploaded"] = push_to_hub(push, files)
    return report
