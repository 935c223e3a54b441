"""The image filters and the decoding guards, on real images made here."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from taskcast_images import filters
from taskcast_images.filters import ImageRefused
from tests.images import jpeg, pixel_bomb, png


@pytest.mark.parametrize(
    ("name", "params", "size", "mode"),
    [
        ("grayscale", {}, (320, 200), "L"),
        ("blur", {"radius": 3}, (320, 200), "RGB"),
        ("sharpen", {}, (320, 200), "RGB"),
        ("edges", {}, (320, 200), "RGB"),
        ("sepia", {}, (320, 200), "RGB"),
        ("thumbnail", {"max_side": 64}, (64, 40), "RGB"),
        ("rotate", {"degrees": 90}, (200, 320), "RGB"),
    ],
)
def test_each_filter_changes_the_image_as_it_says(
    name: str, params: dict[str, float], size: tuple[int, int], mode: str
) -> None:
    original = filters.decode(png())
    done = filters.apply(original, name, params)
    assert (done.size, done.mode) == (size, mode)
    if done.size == original.size and done.mode == original.mode:
        assert done.tobytes() != original.tobytes()


@pytest.mark.parametrize(
    ("output", "content_type", "magic"),
    [
        ("png", "image/png", b"\x89PNG"),
        ("jpeg", "image/jpeg", b"\xff\xd8"),
    ],
)
def test_the_output_is_png_or_jpeg_as_asked(output: str, content_type: str, magic: bytes) -> None:
    rendered = filters.encode(filters.decode(jpeg()), output)
    assert rendered.content_type == content_type
    assert rendered.body.startswith(magic)
    assert (rendered.width, rendered.height) == (64, 48)


def test_rgba_becomes_rgb_for_jpeg() -> None:
    rendered = filters.encode(Image.new("RGBA", (4, 4)), "jpeg")
    assert rendered.body.startswith(b"\xff\xd8")


@pytest.mark.parametrize(
    "data",
    [b"<html>not an image</html>", b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"%PDF-1.4 ..."],
)
def test_what_is_not_an_image_is_refused(data: bytes) -> None:
    with pytest.raises(ImageRefused) as refused:
        filters.decode(data)
    assert refused.value.code == "not_an_image"


def test_a_few_kib_declaring_a_hundred_million_pixels_is_refused_before_decoding() -> None:
    bomb = pixel_bomb(10_000)
    assert len(bomb) < 200_000
    with pytest.raises(ImageRefused) as refused:
        filters.decode(bomb)
    assert refused.value.code == "too_large"


def test_an_image_just_over_the_pixel_limit_is_refused_too() -> None:
    with pytest.raises(ImageRefused, match="limit"):
        filters.decode(pixel_bomb(6_400))  # 41 million pixels: past ours, under Pillow's 2x


def test_our_own_pixel_limit_holds_without_pillows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageRefused, match="pixels; the limit is"):
        filters.decode(pixel_bomb(6_400))


@pytest.mark.parametrize("name", ["thumbnail", "rotate", "sharpen"])
def test_a_cmyk_jpeg_comes_out_as_an_rgb_png(name: str) -> None:
    out = io.BytesIO()
    Image.new("CMYK", (40, 30), (0, 100, 200, 0)).save(out, format="JPEG")

    rendered = filters.encode(filters.apply(filters.decode(out.getvalue()), name, {}), "png")

    with Image.open(io.BytesIO(rendered.body)) as png_image:
        assert (png_image.format, png_image.mode) == ("PNG", "RGB")
