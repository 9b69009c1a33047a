"""Factories for generated test images covering the formats and modes users actually send."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def _photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 / max(1, width)), (y * 255 / max(1, height)), np.full_like(x, 128)], axis=-1)
    noise = rng.integers(0, 40, size=(height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def jpeg(width: int = 320, height: int = 240, seed: int = 0) -> bytes:
    return encode(_photo_like(width, height, seed), "JPEG", quality=90)


def png_rgba(width: int = 200, height: int = 160) -> bytes:
    rgba = _photo_like(width, height).convert("RGBA")
    alpha = Image.new("L", (width, height), 0)
    alpha.paste(255, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    rgba.putalpha(alpha)
    return encode(rgba, "PNG")


def png_grayscale(width: int = 200, height: int = 160) -> bytes:
    return encode(_photo_like(width, height).convert("L"), "PNG")


def jpeg_cmyk(width: int = 200, height: int = 160) -> bytes:
    return encode(_photo_like(width, height).convert("CMYK"), "JPEG")


def png_16bit(width: int = 200, height: int = 160) -> bytes:
    ramp = (np.linspace(0, 65535, width, dtype=np.uint32)[None, :].repeat(height, 0)).astype(np.uint16)
    image = Image.fromarray(ramp)
    assert image.mode.startswith("I;16"), image.mode
    return encode(image, "PNG")


def jpeg_exif_rotated(width: int = 300, height: int = 150) -> bytes:
    """Stored landscape with EXIF Orientation=6: a viewer shows it portrait (height × width)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(_photo_like(width, height), "JPEG", exif=exif.tobytes())


def truncated_jpeg() -> bytes:
    data = jpeg(640, 480)
    return data[: len(data) // 2]


def pixel_bomb_png(side: int = 10_000) -> bytes:
    """A 1-bit PNG that is tiny on the wire but side² pixels when decoded."""
    return encode(Image.new("1", (side, side), 0), "PNG", optimize=True)


def webp(width: int = 200, height: int = 160) -> bytes:
    return encode(_photo_like(width, height), "WEBP")
