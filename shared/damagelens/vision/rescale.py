"""Results found on the working-size image (`imaging.load_upright_rgb(max_side=…)`) mapped back to the original's pixels.

Stages draw their pictures on the working image with working boxes, then store results whose boxes,
`box_normalized` and `image_width/height` refer to the photo as uploaded, as before the cap.
"""

from __future__ import annotations

from damagelens.schemas import AssessResult, Damage, Detection

Size = tuple[int, int]


def _box(box: list[float], working: Size, original: Size) -> tuple[list[float], list[float]]:
    sx, sy = original[0] / working[0], original[1] / working[1]
    w, h = original
    x1, y1, x2, y2 = (min(max(v * s, 0.0), lim) for v, s, lim in zip(box, (sx, sy, sx, sy), (w, h, w, h), strict=True))
    return [round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1)], [
        round(x1 / w, 4),
        round(y1 / h, 4),
        round(x2 / w, 4),
        round(y2 / h, 4),
    ]


def detections_to_original(detections: list[Detection], working: Size, original: Size) -> list[Detection]:
    if working == original:
        return detections
    out = []
    for det in detections:
        box, normalized = _box(det.box, working, original)
        out.append(det.model_copy(update={"box": box, "box_normalized": normalized}))
    return out


def assessment_to_original(result: AssessResult, working: Size, original: Size) -> AssessResult:
    if working == original:
        return result
    damages: list[Damage] = []
    for dmg in result.damages:
        box, normalized = _box(dmg.box, working, original)
        damages.append(dmg.model_copy(update={"box": box, "box_normalized": normalized}))
    return result.model_copy(update={"damages": damages, "image_width": original[0], "image_height": original[1]})
