"""The sample image of ``taskcast demo --image`` and the README: drawn here, so nothing binary
ships. ``python -m taskcast_images.sample FILE`` writes it as PNG."""

from __future__ import annotations

import io
import sys

from PIL import Image, ImageDraw

SIZE = (480, 320)


def sample_png() -> bytes:
    """A 480x320 PNG: a sky gradient, a sun and hills, so that every filter shows."""
    image = Image.new("RGB", SIZE)
    draw = ImageDraw.Draw(image)
    width, height = SIZE
    for y in range(height):
        shade = int(255 * y / height)
        draw.line([(0, y), (width, y)], fill=(80 + shade // 3, 140 + shade // 4, 255 - shade // 2))
    draw.ellipse([330, 40, 420, 130], fill=(255, 210, 60))
    draw.polygon(
        [(0, 320), (0, 220), (140, 170), (300, 240), (480, 190), (480, 320)], fill=(40, 120, 60)
    )
    draw.polygon([(0, 320), (120, 260), (260, 300), (480, 250), (480, 320)], fill=(25, 90, 45))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m taskcast_images.sample FILE", file=sys.stderr)
        return 2
    with open(args[0], "wb") as out:
        out.write(sample_png())
    return 0


if __name__ == "__main__":
    sys.exit(main())
