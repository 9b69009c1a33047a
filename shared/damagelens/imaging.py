"""Upload validation and upright RGB decoding with Pillow only (the gateway uses it; no torch here)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
    "MPO": "image/jpeg",  # multi-picture JPEGs from phones
}
EXTENSIONS: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/tiff": "tiff",
    "image/gif": "gif",
}


ORIGINAL_SIZE = "damagelens.original_size"  # `Image.info` key: upright (width, height) before the working-size cap


class ImageError(ValueError):
    """A rejected image; `code` names the problem (the gateway maps codes to HTTP statuses)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    width: int
    height: int
    extension: str


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageError("empty_upload", "The uploaded file is empty.")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # Pillow's own guard, far above ours: same answer
        raise ImageError("image_too_large", f"The image is too large to decode safely: {exc}") from None
    except (UnidentifiedImageError, ImportError):
        # ImportError: once `ultralytics` is imported it patches Image.open to fetch a HEIF plugin on
        # unidentified files, which fails offline; the answer is the same, not an image we accept.
        raise ImageError(
            "unsupported_media_type",
            "The upload is not a recognised image (accepted: JPEG, PNG, WebP, BMP, TIFF, GIF).",
        ) from None
    if image.format not in ACCEPTED_FORMATS:
        raise ImageError("unsupported_media_type", f"Image format {image.format} is not accepted.")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            "image_too_large",
            f"The image has {width}×{height} = {width * height:,} pixels; the limit is {max_pixels:,}.",
        )
    return image


def _fully_decode(image: Image.Image) -> Image.Image:
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError("invalid_image", f"The image could not be decoded (truncated or corrupt): {exc}") from None
    return image


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except (OSError, ValueError, TypeError, SyntaxError):  # malformed EXIF: show the pixels as stored
        return 1


def inspect_upload(data: bytes, max_pixels: int) -> ImageInfo:
    """Decode the whole upload once so truncated files are refused before anything is stored.

    The upright size comes from the EXIF orientation tag, without a rotated copy of the pixels.
    """
    image = _fully_decode(_open(data, max_pixels))
    width, height = image.size
    if _orientation(image) in (5, 6, 7, 8):  # rotated by 90° either way
        width, height = height, width
    content_type = ACCEPTED_FORMATS[image.format]
    return ImageInfo(content_type, width, height, EXTENSIONS[content_type])


def to_rgb(image: Image.Image) -> Image.Image:
    """Normalise any mode (alpha, palette, grayscale, CMYK, 16-bit) to 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        image = image.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    elif image.mode == "F":
        image = image.point(lambda v: v * 255).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_upright_rgb(data: bytes, max_pixels: int, max_side: int | None = None) -> Image.Image:
    """The image as a person would look at it: EXIF orientation applied, 8-bit RGB.

    With `max_side`, a photo whose long side is larger comes back reduced by the smallest integer
    factor that fits (so its long side ends between `max_side / 2` and `max_side`): no stage needs
    more (the models see ≤ 640 px). A JPEG is decoded at 1/2, 1/4 or 1/8 scale by the decoder
    itself (`Image.draft`), the rest is a box `reduce`; both are far cheaper than decoding 12 MP and
    resampling (docs/benchmarks.md). The upright full size is kept for results in original pixels:
    `original_size`.
    """
    image = _open(data, max_pixels)
    stored = image.size
    factor = math.ceil(max(stored) / max_side) if max_side and max(stored) > max_side else 1
    if factor > 1 and image.format in ("JPEG", "MPO"):
        image.draft(None, (math.ceil(stored[0] / factor), math.ceil(stored[1] / factor)))  # a power of two ≤ factor
    image = _fully_decode(image)
    rotated = _orientation(image) in (5, 6, 7, 8)
    if _orientation(image) != 1:
        try:
            image = ImageOps.exif_transpose(image) or image
        except (OSError, ValueError, TypeError, SyntaxError):
            rotated = False  # malformed EXIF: analyse the pixels as stored
    rgb = to_rgb(image)
    if factor > 1:
        rest = math.ceil(max(rgb.size) / max_side)
        if rest > 1:
            rgb = rgb.reduce(rest)
        rgb.info[ORIGINAL_SIZE] = (stored[1], stored[0]) if rotated else stored
    return rgb


def original_size(image: Image.Image) -> tuple[int, int]:
    """Upright (width, height) of the photo as uploaded, also when `load_upright_rgb` capped it."""
    width, height = image.info.get(ORIGINAL_SIZE, image.size)
    return int(width), int(height)
