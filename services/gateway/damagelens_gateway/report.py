"""The inspection report: one self-contained HTML page (images inlined) and its PDF (WeasyPrint).

Written for a claims adjuster to file: the vehicle summary first, then per photo the input, the
Grad-CAM overlay, the detection image, the assessment image (typed damages, severity), a "Needs review"
mark where the classifier asked for a person, the six probabilities as bars, models and analysis time.
Images are downscaled before inlining so a 24-photo report stays a few megabytes.
"""

from __future__ import annotations

import base64
import io
import logging
from html import escape

from damagelens.imaging import ImageError, load_upright_rgb
from damagelens.jobs import JobNotFound
from damagelens.schemas import DamageCounts, InspectionPhotoPublic, InspectionPublic, JobPublic
from damagelens.storage import ObjectNotFound, StorageError, job_key
from damagelens_gateway.deps import Services

log = logging.getLogger(__name__)
INLINE_MAX_SIDE = 720

STYLE = """
@page { size: A4; margin: 14mm; }
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 10pt; color: #1d2430; margin: 0 auto; max-width: 1000px; }
h1 { font-size: 18pt; margin: 0 0 4px; } h2 { font-size: 13pt; margin: 18px 0 6px; border-bottom: 1px solid #ccd; }
.meta { color: #556; margin-bottom: 10px; }
table { border-collapse: collapse; width: 100%; } td, th { border: 1px solid #ccd; padding: 4px 6px; vertical-align: top; }
.photo { page-break-inside: avoid; break-inside: avoid; margin-bottom: 14px; }
.images { display: flex; gap: 6px; } .images figure { margin: 0; flex: 1; } .images img { width: 100%; border: 1px solid #ccd; }
figcaption { font-size: 8pt; color: #556; }
.bar { background: #e8ebf2; height: 10px; width: 100%; } .bar span { display: block; height: 10px; background: #3b6fd8; }
.failed { color: #b3261e; } .uncertain { color: #9a6700; }
.review { color: #fff; background: #9a6700; padding: 1px 6px; border-radius: 3px; font-weight: bold; }
"""


def _data_uri(data: bytes, max_pixels: int) -> str:
    """Downscale to a JPEG data URI; the report has to stay small enough to mail. Decoded as the models
    saw it (EXIF orientation applied, 16-bit and transparent photos made 8-bit RGB), so a portrait photo
    stands upright beside its overlay."""
    image = load_upright_rgb(data, max_pixels, max_side=2 * INLINE_MAX_SIDE)
    image.thumbnail((INLINE_MAX_SIDE, INLINE_MAX_SIDE))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _image(services: Services, key: str | None, caption: str) -> str:
    if key is None:
        return ""
    try:
        uri = _data_uri(services.store.get(key), services.settings.max_pixels)
    except (ObjectNotFound, StorageError, OSError, ImageError) as exc:
        log.warning("report: image missing", extra={"key": key, "error": str(exc)})
        return f"<figure><figcaption>{escape(caption)}: not available</figcaption></figure>"
    return f'<figure><img src="{uri}" alt="{escape(caption)}"><figcaption>{escape(caption)}</figcaption></figure>'


def _probabilities(job: JobPublic) -> str:
    cls = job.results.classification
    if cls is None:
        return ""
    rows = "".join(
        f'<tr><td>{escape(label)}</td><td style="width:55%"><div class="bar"><span style="width:{p * 100:.1f}%"></span></div></td>'
        f"<td>{p:.1%}</td></tr>"
        for label, p in sorted(cls.probabilities.items(), key=lambda kv: kv[1], reverse=True)
    )
    return f"<table class='probs'>{rows}</table>"


def _counts(counts: DamageCounts) -> str:
    return f"{counts.dent} dent(s), {counts.scratch} scratch(es), {counts.broken} broken part(s)"


def _assessment(job: JobPublic) -> str:
    result = job.results.assessment
    if result is None:
        return ""
    return f" Severity <b>{escape(result.severity.label)}</b> ({result.severity.confidence:.1%}); {_counts(result.counts)}."


def _models(job: JobPublic) -> str:
    parts = []
    for kind, result in (
        ("classifier", job.results.classification),
        ("Grad-CAM on", job.results.explanation),
        ("detector", job.results.detection),
        ("assessment", job.results.assessment),
    ):
        if result is not None:
            parts.append(f"{kind} {escape(result.model)} {escape(result.model_version)}")
    return "; ".join(parts)


def _photo(services: Services, photo: InspectionPhotoPublic) -> str:
    title = f"Photo {photo.index + 1}: {escape(photo.filename)}"
    job = photo.job
    results = job.results if job is not None else None
    partial = results is not None and any((results.classification, results.explanation, results.detection, results.assessment))
    if not partial and (job is None or photo.error is not None):  # a photo with any result shows it, with its error
        reason = escape(photo.error.message) if photo.error else "no result"
        return f"<section class='photo'><h2>{title}</h2><p class='failed'>Not analysed: {reason}</p></section>"
    try:
        input_key = services.jobs.get(job.id).meta.input_key
    except JobNotFound:
        input_key = None
    cls, det = job.results.classification, job.results.detection
    headline = f"{escape(cls.label)} ({cls.confidence:.1%})" if cls else "not classified"
    regions = f"{det.total_detections} damage region(s)" if det else "detection not run"
    images = "".join(
        [
            _image(services, input_key, "input"),
            _image(services, job_key(job.id, "overlay.jpg") if job.results.explanation else None, "Grad-CAM overlay"),
            _image(services, job_key(job.id, "detection.jpg") if det else None, "detections"),
            _image(services, job_key(job.id, "assessment.jpg") if job.results.assessment else None, "assessment"),
        ]
    )
    review = " <span class='review'>Needs review</span>" if cls is not None and cls.review else ""
    analysed = job.finished_at.strftime("%Y-%m-%d %H:%M:%S UTC") if job.finished_at else "not finished"
    error = f"<p class='failed'>{escape(job.error.message)}</p>" if job.error else ""
    return (
        f"<section class='photo'><h2>{title}{review}</h2>"
        f"<p><b>{headline}</b>; {regions}.{_assessment(job)} Status {job.status.value}.</p>{error}"
        f"<div class='images'>{images}</div>{_probabilities(job)}"
        f"<p class='meta'>Models: {_models(job)}. Analysed: {analysed}. Job {job.id}.</p></section>"
    )


def _summary(doc: InspectionPublic) -> str:
    rows = []
    for view, finding in (("Front", doc.summary.front), ("Rear", doc.summary.rear)):
        if finding is None:
            rows.append(f"<tr><th>{view}</th><td colspan='2'>no photo of this view</td></tr>")
        else:
            rows.append(
                f"<tr><th>{view}</th><td>{escape(finding.condition)} ({finding.confidence:.1%})</td>"
                f"<td>photo {finding.photo_index + 1}: {escape(finding.filename)}</td></tr>"
            )
    rows.append(f"<tr><th>Damage regions</th><td colspan='2'>{doc.summary.damage_regions}</td></tr>")
    severity, counts = doc.summary.severity, doc.summary.damage_counts
    if severity is not None:
        rows.append(
            f"<tr><th>Severity (worst)</th><td>{escape(severity.label)} ({severity.confidence:.1%})</td>"
            f"<td>photo {severity.photo_index + 1}: {escape(severity.filename)}</td></tr>"
        )
    else:
        rows.append("<tr><th>Severity (worst)</th><td colspan='2'>not assessed</td></tr>")
    if counts is not None:
        rows.append(f"<tr><th>Damage types</th><td colspan='2'>{_counts(counts)} over {doc.summary.photos_assessed} photo(s)</td></tr>")
    uncertain = ", ".join(f"photo {u.photo_index + 1} ({u.confidence:.0%} &lt; {u.threshold:.0%})" for u in doc.summary.uncertain_photos)
    rows.append(f"<tr><th>Uncertain photos</th><td colspan='2' class='uncertain'>{uncertain or 'none'}</td></tr>")
    rows.append(f"<tr><th>Photos failed (all or part)</th><td colspan='2'>{doc.summary.photos_failed}</td></tr>")
    return f"<table class='summary'>{''.join(rows)}</table>"


def render_html(doc: InspectionPublic, services: Services) -> str:
    reference = f"Reference {escape(doc.reference)} · " if doc.reference else ""
    finished = doc.finished_at.strftime("%Y-%m-%d %H:%M UTC") if doc.finished_at else "in progress"
    photos = "".join(_photo(services, photo) for photo in doc.photos)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>DamageLens inspection {doc.id}</title><style>{STYLE}</style></head><body>"
        f"<h1>Vehicle inspection</h1><p class='meta'>{reference}Inspection {doc.id} · {len(doc.photos)} photo(s) · "
        f"status {doc.status.value} · finished {finished} · model {escape(doc.model)}</p>"
        f"<h2>Vehicle summary</h2>{_summary(doc)}{photos}"
        "<p class='meta'>Generated by DamageLens. Classifications are model estimates; check uncertain photos by eye.</p>"
        "</body></html>"
    )


def render_pdf(html: str) -> bytes:
    """WeasyPrint is imported here only: a gateway without it still serves the HTML report."""
    from weasyprint import HTML

    return HTML(string=html).write_pdf()
