"""Upload validation and upright decoding across the formats users actually send."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from damagelens.imaging import ORIGINAL_SIZE, ImageError, inspect_upload, load_upright_rgb, original_size
from damagelens_gateway.errors import IMAGE_ERROR_STATUS
from tests.support import images

MAX_PIXELS = 40_000_000


@pytest.mark.parametrize(
    ("data", "code", "status"),
    [
        (b"", "empty_upload", 400),
        (b"%PDF-1.4 not an image at all", "unsupported_media_type", 415),
        (images.truncated_jpeg(), "invalid_image", 422),
        (images.pixel_bomb_png(), "image_too_large", 422),
    ],
    ids=["empty", "not-an-image", "truncated", "pixel-bomb"],
)
def test_bad_uploads_are_refused_with_a_named_reason(data: bytes, code: str, status: int) -> None:
    with pytest.raises(ImageError) as err:
        inspect_upload(data, max_pixels=MAX_PIXELS)
    assert err.value.code == code
    assert IMAGE_ERROR_STATUS[code] == status
    assert err.value.message


@pytest.mark.parametrize(
    ("factory", "content_type"),
    [
        (images.jpeg, "image/jpeg"),
        (images.png_rgba, "image/png"),
        (images.png_grayscale, "image/png"),
        (images.jpeg_cmyk, "image/jpeg"),
        (images.png_16bit, "image/png"),
        (images.webp, "image/webp"),
    ],
)
def test_every_mode_decodes_to_8bit_rgb(factory, content_type: str) -> None:
    data = factory()
    info = inspect_upload(data, max_pixels=40_000_000)
    image = load_upright_rgb(data, MAX_PIXELS)
    assert info.content_type == content_type
    assert image.mode == "RGB"
    assert image.size == (info.width, info.height)


def test_sixteen_bit_keeps_its_tonal_range() -> None:
    image = load_upright_rgb(images.png_16bit(width=256, height=8), MAX_PIXELS)
    row = [image.getpixel((x, 4))[0] for x in (0, 128, 255)]
    assert row[0] < 5 and 100 < row[1] < 160 and row[2] > 250


def test_alpha_is_composited_on_white() -> None:
    image = load_upright_rgb(images.png_rgba(200, 160), MAX_PIXELS)
    assert image.getpixel((2, 2)) == (255, 255, 255)  # fully transparent corner


def test_exif_orientation_is_applied() -> None:
    data = images.jpeg_exif_rotated(300, 150)
    assert inspect_upload(data, max_pixels=10**8).width == 150
    assert load_upright_rgb(data, MAX_PIXELS).size == (150, 300)


def test_pillow_bomb_guard_is_answered_as_too_large() -> None:
    """Far above our pixel limit, Pillow refuses to open at all; the answer must still be 422."""
    with pytest.raises(ImageError) as err:
        inspect_upload(images.pixel_bomb_png(side=14_000), max_pixels=10**12)
    assert err.value.code == "image_too_large"


def test_malformed_exif_does_not_fail_the_image() -> None:
    exif = Image.Exif()
    exif[0x0112] = 99  # not an orientation
    data = images.encode(Image.new("RGB", (40, 20)), "JPEG", exif=exif.tobytes())
    assert inspect_upload(data, MAX_PIXELS).width == 40
    assert load_upright_rgb(data, MAX_PIXELS).size == (40, 20)


def test_non_images_are_refused_even_after_ultralytics_patches_pillow() -> None:
    """Ultralytics replaces Image.open with a version that tries to install a HEIF plugin offline."""
    import ultralytics  # noqa: F401  (the patch is applied on import)

    with pytest.raises(ImageError) as err:
        inspect_upload(b"%PDF-1.4 not an image", MAX_PIXELS)
    assert err.value.code == "unsupported_media_type"


def test_large_photos_are_decoded_at_the_working_size_and_keep_their_upright_size() -> None:
    """The JPEG is decoded at reduced scale and rotated; the pixels match a full decode scaled down."""
    data = images.jpeg_exif_rotated(4000, 2000)  # shown upright as 2000 × 4000
    capped = load_upright_rgb(data, MAX_PIXELS, max_side=1280)
    assert capped.size == (500, 1000) and capped.mode == "RGB"  # reduced by 4, the smallest integer factor that fits
    assert original_size(capped) == (2000, 4000)
    reference = load_upright_rgb(data, MAX_PIXELS).resize(capped.size, Image.Resampling.BILINEAR)
    diff = np.abs(np.asarray(capped, dtype=np.int16) - np.asarray(reference, dtype=np.int16))
    assert diff.mean() < 3.0, f"mean abs pixel difference {diff.mean():.2f}"


def test_other_formats_are_capped_too_and_small_photos_are_left_alone() -> None:
    png = load_upright_rgb(images.png_rgba(1600, 400), MAX_PIXELS, max_side=800)
    assert png.size == (800, 200) and original_size(png) == (1600, 400)
    odd = load_upright_rgb(images.jpeg(2000, 1000), MAX_PIXELS, max_side=1280)  # 1/2 by the decoder
    assert odd.size == (1000, 500) and original_size(odd) == (2000, 1000)
    thirds = load_upright_rgb(images.png_grayscale(3000, 300), MAX_PIXELS, max_side=1280)  # reduce(3), no decoder scaling
    assert thirds.size == (1000, 100) and thirds.mode == "RGB"
    small = load_upright_rgb(images.jpeg(640, 480), MAX_PIXELS, max_side=1280)
    assert small.size == (640, 480) and ORIGINAL_SIZE not in small.info and original_size(small) == (640, 480)
    full = load_upright_rgb(images.jpeg(2000, 1000), MAX_PIXELS, max_side=0)  # 0 = no cap
    assert full.size == (2000, 1000) and original_size(full) == (2000, 1000)
