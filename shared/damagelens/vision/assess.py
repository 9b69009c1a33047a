"""The assess stage's work: photo-level severity, typed damage regions with a severity each, and a picture.

The typed detector (`damage-types`) finds dent / scratch / broken regions; the photo severity model
(`severity`) scores the whole photo and the region severity model (default `severity-v1`) a context crop
around every region, each in one batch (lensor's per-box severities are too few and too skewed to
train a 9-class detector on the CPU). When both are the same model, photo and crops share one batch.
"""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from damagelens.registry import ModelEntry
from damagelens.schemas import DAMAGE_TYPES, AssessResult, Damage, DamageCounts, Detection, SeverityScore
from damagelens.vision.loading import model_dtype
from damagelens.vision.preprocess import normalise, square_resize
from damagelens.vision.timing import StageTimer

TYPE_COLOURS: dict[str, tuple[int, int, int]] = {"dent": (255, 140, 0), "scratch": (0, 170, 255), "broken": (220, 20, 60)}
SEVERITY_COLOURS: dict[str, tuple[int, int, int]] = {"minor": (46, 160, 67), "moderate": (230, 160, 0), "severe": (200, 30, 30)}
MAX_REGIONS = 32  # crops scored per photo; more boxes than this keep the photo's severity


def region_crop(image: Image.Image, box: list[float], grow: float = 1.6, min_frac: float = 0.2) -> Image.Image:
    """A square-ish crop around a pixel box [x1, y1, x2, y2], enlarged so the severity model sees context."""
    w, h = image.size
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max((x2 - x1) * grow, (y2 - y1) * grow, min_frac * min(w, h), 8.0)
    left, top = max(0.0, min(cx - side / 2, w - side)), max(0.0, min(cy - side / 2, h - side))
    return image.crop((round(left), round(top), round(min(w, left + side)), round(min(h, top + side))))


def severity_scores(probs: torch.Tensor, labels: tuple[str, ...]) -> list[SeverityScore]:
    out = []
    for row in probs.tolist():
        best = max(range(len(row)), key=row.__getitem__)
        out.append(
            SeverityScore(
                label=labels[best],  # type: ignore[arg-type]
                confidence=round(row[best], 4),
                probabilities={label: round(p, 4) for label, p in zip(labels, row, strict=True)},
            )
        )
    return out


def shape_assessment(
    severity: SeverityScore,
    detections: list[Detection],
    region_severity: list[SeverityScore],
    width: int,
    height: int,
    image_url: str,
    model: str,
    model_version: str,
    region_model: str | None = None,
    region_model_version: str | None = None,
) -> AssessResult:
    """Detections (labelled with a damage type) + one severity per detection → the job's `assessment`.

    Regions beyond the scored ones (MAX_REGIONS) take the photo's severity; unknown labels are an error."""
    damages: list[Damage] = []
    for i, det in enumerate(detections):
        if det.label not in DAMAGE_TYPES:
            raise ValueError(f"detector label {det.label!r} is not a damage type {DAMAGE_TYPES}")
        sev = region_severity[i] if i < len(region_severity) else severity
        damages.append(
            Damage(type=det.label, severity=sev.label, confidence=det.confidence, box=det.box, box_normalized=det.box_normalized)
        )  # type: ignore[arg-type]
    counts = DamageCounts(**{t: sum(d.type == t for d in damages) for t in DAMAGE_TYPES})
    return AssessResult(
        severity=severity,
        damages=damages,
        counts=counts,
        image_width=width,
        image_height=height,
        image_url=image_url,
        model=model,
        model_version=model_version,
        region_model=region_model,
        region_model_version=region_model_version,
    )


class Assessor:
    """Typed detector + severity models of one worker process (built by `model_cache.assessor`).

    `severity_model` scores each whole photo, `region_model` the context crop of each region (the
    first MAX_REGIONS); without a region model, or given the very same model object, the photo and
    its crops go through one batch of that model."""

    def __init__(
        self,
        severity_entry: ModelEntry,
        severity_model: nn.Module,
        detector,
        region_entry: ModelEntry | None = None,
        region_model: nn.Module | None = None,
    ) -> None:
        if (region_entry is None) != (region_model is None):
            raise ValueError("give the region severity model with its registry entry, or neither")
        self.severity_entry = severity_entry
        self.severity_model = severity_model
        self.detector = detector
        self.region_entry = region_entry or severity_entry
        self.region_model = region_model if region_model is not None else severity_model
        self.one_batch = self.region_model is self.severity_model
        if self.one_batch and self.region_entry != severity_entry:
            raise ValueError(f"one model object given for two entries: {severity_entry.name!r}, {self.region_entry.name!r}")
        self.model = f"{severity_entry.name}+{detector.entry.name}"
        self.model_version = f"{severity_entry.version}+{detector.entry.version}"

    def __call__(self, image: Image.Image, image_url: str) -> tuple[AssessResult, dict[str, float]]:
        """One photo: a batch of one (both detector backends treat a one-image batch as a single call)."""
        results, speed = self.assess_batch([image], [image_url])
        return results[0], speed

    def warm_up(self, image: Image.Image) -> None:
        """Run the detector and both severity models once (a blank photo has no regions for the region model)."""
        self(image, "")
        if not self.one_batch:
            self.region_severity([image.convert("RGB")])

    @torch.inference_mode()
    def region_severity(self, crops: list[Image.Image]) -> list[SeverityScore]:
        """The region model on RGB region crops (`region_crop`), one batch."""
        return _severity(self.region_entry, self.region_model, crops, StageTimer(), "region_severity")

    @torch.inference_mode()
    def assess_batch(self, images: list[Image.Image], image_urls: list[str]) -> tuple[list[AssessResult], dict[str, float]]:
        """`__call__` over a batch: one detector call, then one photo-model pass over the photos and one
        region-model pass over every region crop (one pass over both, photo by photo, when the models are one)."""
        rgbs = [image.convert("RGB") for image in images]
        all_detections, det_speed = self.detector.detect_batch(rgbs)
        timer = StageTimer()
        with timer("severity_preprocess" if self.one_batch else "region_severity_preprocess"):
            crops = [[region_crop(rgb, d.box) for d in dets[:MAX_REGIONS]] for rgb, dets in zip(rgbs, all_detections, strict=True)]
        if self.one_batch:
            batch = [im for rgb, own in zip(rgbs, crops, strict=True) for im in (rgb, *own)]
            scores = iter(_severity(self.severity_entry, self.severity_model, batch, timer, "severity"))
            photo_scores, region_scores = [], []
            for own in crops:
                photo_scores.append(next(scores))
                region_scores.append([next(scores) for _ in own])
        else:
            photo_scores = _severity(self.severity_entry, self.severity_model, rgbs, timer, "severity")
            flat = [c for own in crops for c in own]
            scores = iter(_severity(self.region_entry, self.region_model, flat, timer, "region_severity"))
            region_scores = [[next(scores) for _ in own] for own in crops]
        with timer("shape"):
            results = [
                shape_assessment(
                    photo,
                    dets,
                    regions,
                    rgb.width,
                    rgb.height,
                    url,
                    self.model,
                    self.model_version,
                    region_model=self.region_entry.name,
                    region_model_version=self.region_entry.version,
                )
                for photo, regions, dets, rgb, url in zip(photo_scores, region_scores, all_detections, rgbs, image_urls, strict=True)
            ]
        speed = {f"detect_{k}": v for k, v in det_speed.items()}
        speed.update(timer.ms)
        return results, speed


def _severity(entry: ModelEntry, model: nn.Module, images: list[Image.Image], timer: StageTimer, name: str) -> list[SeverityScore]:
    """One severity model over RGB images (squash-resized to its input size) in one batch, timed as
    `<name>_preprocess` and `<name>_inference`; no images, no call."""
    if not images:
        return []
    param = next(model.parameters())
    with timer(f"{name}_preprocess"):
        batch = torch.stack([normalise(square_resize(im, entry.input_size), entry.mean, entry.std) for im in images])
        batch = batch.to(device=param.device, dtype=model_dtype(model))
    with timer(f"{name}_inference"):
        probs = torch.softmax(model(batch).float(), dim=1).cpu()
    return severity_scores(probs, entry.labels)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # Pillow's bundled font: no download, same everywhere


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill: tuple[int, int, int], font, pad: int) -> None:
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=fill)
    draw.text(xy, text, fill=(255, 255, 255), font=font)


def draw_assessment(image: Image.Image, result: AssessResult) -> Image.Image:
    """Boxes coloured by type (labelled type · severity), a legend with counts, and a severity badge."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    long_side = max(canvas.size)
    width = max(2, round(long_side / 320))
    font = _font(max(12, round(long_side / 45)))
    pad = width
    for dmg in result.damages:
        colour = TYPE_COLOURS[dmg.type]
        x1, y1, x2, y2 = dmg.box
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        text = f"{dmg.type} · {dmg.severity} {dmg.confidence:.2f}"
        _, top, _, bottom = draw.textbbox((0, 0), text, font=font)
        lift = bottom - top + 3 * pad
        _label(draw, (x1 + pad, y1 - lift + pad if y1 - lift >= 0 else y1 + pad), text, colour, font, pad)
    # legend (top-left): one swatch per type with its count
    y = 2 * pad
    for kind in DAMAGE_TYPES:
        text = f"{kind}: {getattr(result.counts, kind)}"
        _, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        sw = bottom - top
        draw.rectangle((2 * pad, y, 2 * pad + sw, y + sw), fill=TYPE_COLOURS[kind], outline=(255, 255, 255))
        _label(draw, (3 * pad + sw + pad, y - top), text, (40, 40, 40), font, pad)
        y += sw + 3 * pad
    # severity badge (top-right)
    sev = result.severity
    badge = f"severity: {sev.label} {sev.confidence:.0%}"
    big = _font(max(14, round(long_side / 32)))
    left, top, right, bottom = draw.textbbox((0, 0), badge, font=big)
    bx = canvas.width - (right - left) - 4 * pad
    _label(draw, (bx, 2 * pad - top + pad), badge, SEVERITY_COLOURS[sev.label], big, 2 * pad)
    return canvas
