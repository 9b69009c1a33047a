"""Grad-CAM through pytorch-grad-cam: built once per model, called per image."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from damagelens.registry import ModelEntry
from damagelens.vision.preprocess import to_input_tensor
from damagelens.vision.timing import StageTimer

CAM_CLASSES = {"gradcam": GradCAM, "hirescam": HiResCAM, "gradcam++": GradCAMPlusPlus}
MAX_OUTPUT_SIDE = 1280
HEATMAP_PNG_LEVEL = 3  # zlib level: about half the encode time of the default 6, ~1.5x the bytes (docs/benchmarks.md)


@dataclass
class Explanation:
    method: str
    target_index: int
    target_label: str
    heatmap: np.ndarray  # float32 [H, W] in 0..1 at the output size
    overlay: Image.Image

    def overlay_jpeg(self) -> bytes:
        buf = io.BytesIO()
        self.overlay.save(buf, format="JPEG", quality=90)
        return buf.getvalue()

    def heatmap_png(self) -> bytes:
        """The raw CAM as 8-bit grayscale, so clients can recolour or threshold it."""
        buf = io.BytesIO()
        Image.fromarray((self.heatmap * 255).round().astype(np.uint8), mode="L").save(buf, format="PNG", compress_level=HEATMAP_PNG_LEVEL)
        return buf.getvalue()


class Explainer:
    """Grad-CAM runs in float32 (FP16 gradients are unstable); the model is cast once here."""

    def __init__(self, model: nn.Module, entry: ModelEntry, method: str = "gradcam"):
        if method not in CAM_CLASSES:
            raise ValueError(f"unknown CAM method {method!r}; choose from {sorted(CAM_CLASSES)}")
        if not entry.cam_target_layer:
            raise ValueError(f"model {entry.name!r} declares no cam_target_layer")
        self.entry = entry
        self.method = method
        self.model = model.float().eval()
        self.target_layer = self.model.get_submodule(entry.cam_target_layer)
        # A CAM needs d(score)/d(target activation) only, never the weights' gradients: with no
        # parameter asking for them, autograd builds no graph up to the target layer (see `_cut`).
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @contextmanager
    def _cut(self) -> Iterator[None]:
        """Start the autograd graph at the target layer: its output becomes a fresh leaf that requires
        grad, so the backward pass stops there instead of running back through the whole backbone
        (the CAM is the same: it depends on the gradient at that layer only). Registered before
        pytorch-grad-cam's own hooks, which then see the leaf."""
        handle = self.target_layer.register_forward_hook(lambda _m, _i, output: output.detach().requires_grad_(True), prepend=True)
        try:
            yield
        finally:
            handle.remove()

    def __call__(self, image: Image.Image, target_index: int | None = None) -> tuple[Explanation, dict[str, float]]:
        timer = StageTimer()
        device = next(self.model.parameters()).device
        with timer("preprocess"):
            batch = to_input_tensor(image, self.entry).to(device)
        with timer("inference"):
            # Without a target the CAM explains the argmax of its own forward pass: no second
            # forward just to pick the class (that was 15-25 % of the stage on CPU: docs/benchmarks.md).
            targets = None if target_index is None else [ClassifierOutputTarget(target_index)]
            with self._cut(), CAM_CLASSES[self.method](model=self.model, target_layers=[self.target_layer]) as cam:
                grayscale = cam(input_tensor=batch, targets=targets)[0]
                if target_index is None:
                    target_index = int(cam.outputs.argmax(dim=1).item())
        with timer("postprocess"):
            explanation = self._explanation(image, grayscale, target_index)
        return explanation, timer.ms

    def explain_batch(self, images: list[Image.Image]) -> tuple[list[Explanation], dict[str, float]]:
        """One CAM pass over a batch, each image explaining its own argmax class; timings are the batch's."""
        timer = StageTimer()
        device = next(self.model.parameters()).device
        with timer("preprocess"):
            batch = torch.cat([to_input_tensor(image, self.entry) for image in images]).to(device)
        with timer("inference"), self._cut(), CAM_CLASSES[self.method](model=self.model, target_layers=[self.target_layer]) as cam:
            grayscale = cam(input_tensor=batch, targets=None)
            targets = cam.outputs.argmax(dim=1).tolist()
        with timer("postprocess"):
            explanations = [self._explanation(image, grayscale[i], int(targets[i])) for i, image in enumerate(images)]
        return explanations, timer.ms

    def _explanation(self, image: Image.Image, grayscale: np.ndarray, target_index: int) -> Explanation:
        """The CAM at the output size (long side ≤ MAX_OUTPUT_SIDE) and its overlay on the photo."""
        scale = min(1.0, MAX_OUTPUT_SIDE / max(image.size))
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        shown = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
        heat = Image.fromarray(np.float32(grayscale)).resize(size, Image.Resampling.BILINEAR)
        heatmap = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)
        overlay = show_cam_on_image(np.asarray(shown, dtype=np.float32) / 255.0, heatmap, use_rgb=True)
        return Explanation(
            method=self.method,
            target_index=target_index,
            target_label=self.entry.labels[target_index],
            heatmap=heatmap,
            overlay=Image.fromarray(overlay),
        )
