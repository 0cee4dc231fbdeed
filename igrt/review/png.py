"""PNG encoding of review panels, with their labels drawn (Pillow)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from igrt.review.render import Panel

LABEL_RGB = (255, 255, 255)
FONT_PX = 14


def encode(panel: Panel) -> bytes:
    """The panel as PNG bytes, labels drawn with an outline so they read on any background."""
    image = Image.fromarray(panel.rgb, mode="RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=FONT_PX)
    for label in panel.labels:
        draw.text((label.x, label.y), label.text, fill=LABEL_RGB, font=font, anchor=label.anchor,
                  stroke_width=2, stroke_fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=1)
    return out.getvalue()
