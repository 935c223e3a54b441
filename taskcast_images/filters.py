"""The image filters, with Pillow, and the guards around decoding an image from a stranger."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from taskcast import TaskFailed

MAX_PIXELS = 40_000_000
"""The largest image decoded (about 6,300 x 6,300): a small file can declare a huge canvas."""
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
"""What is accepted as input; anything else is not an image here."""
OUTPUT = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg")}
PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"})

# Pillow's own bomb check, as a second line: it warns past this and raises past twice this.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageRefused(TaskFailed):
    """The input cannot be processed, and never will be: not an image, or too big to decode.

    A :class:`TaskFailed` that is not retried.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code, retry=False)


@dataclass(frozen=True)
class Rendered:
    body: bytes
    content_type: str
    width: int
    height: int


def decode(data: bytes) -> Image.Image:
    """Open and fully decode ``data``, refusing non-images and decompression bombs."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            if image.width * image.height > MAX_PIXELS:
                raise ImageRefused(
                    f"the image is {image.width}x{image.height} pixels; the limit is "
                    f"{MAX_PIXELS:,} pixels",
                    code="too_large",
                )
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRefused(
                f"the image is too large to decode: {exc}", code="too_large"
            ) from None
        except UnidentifiedImageError:
            raise ImageRefused(
                f"not an image this service reads ({', '.join(FORMATS)})", code="not_an_image"
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageRefused(f"the image is damaged: {exc}", code="not_an_image") from None
    return image


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode in ("RGB", "L") else image.convert("RGB")


def _sepia(image: Image.Image, params: Mapping[str, Any]) -> Image.Image:
    return ImageOps.colorize(ImageOps.grayscale(image), "#2e1a05", "#f0dfc0")


FILTERS: dict[str, Callable[[Image.Image, Mapping[str, Any]], Image.Image]] = {
    "grayscale": lambda image, params: ImageOps.grayscale(image),
    "blur": lambda image, params: _rgb(image).filter(
        ImageFilter.GaussianBlur(float(params.get("radius", 2)))
    ),
    "sharpen": lambda image, params: _rgb(image).filter(ImageFilter.SHARPEN),
    "edges": lambda image, params: _rgb(image).filter(ImageFilter.FIND_EDGES),
    "sepia": _sepia,
    "thumbnail": lambda image, params: _thumbnail(image, int(params.get("max_side", 256))),
    "rotate": lambda image, params: image.rotate(-float(params.get("degrees", 90)), expand=True),
}


def _thumbnail(image: Image.Image, max_side: int) -> Image.Image:
    copy = image.copy()
    copy.thumbnail((max_side, max_side))
    return copy


def apply(image: Image.Image, name: str, params: Mapping[str, Any]) -> Image.Image:
    return FILTERS[name](image, params)


def encode(image: Image.Image, output: str) -> Rendered:
    """``image`` as PNG or JPEG bytes."""
    pillow_format, content_type = OUTPUT[output]
    if pillow_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    elif pillow_format == "PNG" and image.mode not in PNG_MODES:
        # CMYK (print), YCbCr, LAB...: PNG has no such mode.
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=pillow_format)
    return Rendered(buffer.getvalue(), content_type, image.width, image.height)
