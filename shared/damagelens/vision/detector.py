"""Damage detection through Ultralytics YOLO, kept offline: no hub, no auto-install, no font download."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from damagelens.offline import ensure_offline_env
from damagelens.registry import ModelEntry
from damagelens.registry.weights import resolve_weights
from damagelens.schemas import Detection
from damagelens.vision.timing import StageTimer

BOX_COLOUR = (255, 56, 56)


def draw_detections(image: Image.Image, detections: list[Detection]) -> Image.Image:
    """Boxes drawn with Pillow's bundled font (Ultralytics' plot() would fetch Arial from the web)."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 320))
    font = ImageFont.load_default(size=max(12, round(max(canvas.size) / 45)))
    for det in detections:
        x1, y1, x2, y2 = det.box
        draw.rectangle((x1, y1, x2, y2), outline=BOX_COLOUR, width=width)
        text = f"{det.label} {det.confidence:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        lift = bottom - top + 2 * width
        ty = y1 - lift if y1 - lift >= 0 else y1
        draw.rectangle((x1, ty, x1 + (right - left) + 2 * width, ty + lift), fill=BOX_COLOUR)
        draw.text((x1 + width, ty + width), text, fill=(255, 255, 255), font=font)
    return canvas


def to_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def detections_from_boxes(
    xyxy: list[list[float]],
    confidences: list[float],
    classes: list[float],
    size: tuple[int, int],
    names: tuple[str, ...],
    model_names: dict[int, str] | None = None,
) -> list[Detection]:
    """Pixel boxes of an image of `size` → `Detection`s (clipped, rounded, with normalised forms), best first."""
    w, h = size
    detections: list[Detection] = []
    for box, conf, cls in zip(xyxy, confidences, classes, strict=True):
        x1, y1, x2, y2 = (max(0.0, min(v, lim)) for v, lim in zip(box, (w, h, w, h), strict=True))
        label = names[int(cls)] if int(cls) < len(names) else str((model_names or {}).get(int(cls), int(cls)))
        detections.append(
            Detection(
                label=label,
                confidence=round(float(conf), 4),
                box=[round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1)],
                box_normalized=[round(x1 / w, 4), round(y1 / h, 4), round(x2 / w, 4), round(y2 / h, 4)],
            )
        )
    detections.sort(key=lambda d: d.confidence, reverse=True)
    return detections


class Detector:
    """One Ultralytics model per worker process (its predictor is not thread-safe)."""

    def __init__(self, entry: ModelEntry, device: str = "cpu", conf: float = 0.25, imgsz: int = 640):
        ensure_offline_env()
        from ultralytics import YOLO

        path = resolve_weights(entry)
        if path is None:
            raise ValueError(f"detector {entry.name!r} has no weights")
        self.entry = entry
        self.model = YOLO(str(path), task="detect")
        self.device = device
        # FP16 on a GPU, FP32 on CPU; Ultralytics 8.4 names this `quantize` (its `half=` warns on every call)
        self.quantize = 16 if device.startswith("cuda") else None
        self.conf = conf
        self.imgsz = imgsz
        self.names = entry.labels or ("damage",)

    def __call__(self, image: Image.Image) -> tuple[list[Detection], dict[str, float]]:
        timer = StageTimer()
        rgb = image.convert("RGB")
        with timer("inference"):
            result = self.model.predict(rgb, conf=self.conf, imgsz=self.imgsz, device=self.device, quantize=self.quantize, verbose=False)[0]
        with timer("postprocess"):
            detections = self._detections(result, rgb.size)
        # Only our own timers: Ultralytics' `result.speed` splits the same `inference` span again, and
        # clients (UI, benchmarks) add the entries up.
        return detections, dict(timer.ms)

    def detect_batch(self, images: list[Image.Image]) -> tuple[list[list[Detection]], dict[str, float]]:
        """One Ultralytics call over a list of images (one forward pass; photos of different shapes are
        letterboxed to the square input, so boxes can differ slightly from a batch-1 call); batch timings."""
        timer = StageTimer()
        rgbs = [image.convert("RGB") for image in images]
        with timer("inference"):
            results = self.model.predict(rgbs, conf=self.conf, imgsz=self.imgsz, device=self.device, quantize=self.quantize, verbose=False)
        with timer("postprocess"):
            detections = [self._detections(result, rgb.size) for result, rgb in zip(results, rgbs, strict=True)]
        return detections, timer.ms

    def _detections(self, result, size: tuple[int, int]) -> list[Detection]:
        boxes = result.boxes
        return detections_from_boxes(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), size, self.names, result.names)
