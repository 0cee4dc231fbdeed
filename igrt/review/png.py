"""PNG encoding of review panels, with their labels drawn (Pillow)."""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageDraw, ImageFont

from igrt.review.render import Panel

LABEL_RGB = (255, 255, 255)
FONT_PX = 14
#: The outline that makes a label read on any background.
OUTLINE_PX = 2


def encode(panel: Panel) -> bytes:
    """The panel as PNG bytes, labels drawn with an outline so they read on any background."""
    image = Image.fromarray(panel.rgb, mode="RGB")
    for label in panel.labels:
        stamp, left, top = _stamp(label.text, label.anchor)
        image.paste(stamp, (round(label.x) + left, round(label.y) + top), stamp)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=1)
    return out.getvalue()


@functools.lru_cache(maxsize=512)
def _stamp(text: str, anchor: str) -> tuple[Image.Image, int, int]:
    """The label drawn once on a transparent image, and where its corner lies from the anchor
    point: pasted through its own alpha it gives exactly the pixels drawing it at the rounded
    position gives (tested; a label at half a pixel moves by half a pixel). Most labels (the
    edge letters, the scale) repeat on every panel: drawing an outlined label was most of the
    cost of encoding a panel."""
    font = ImageFont.load_default(size=FONT_PX)
    left, top, right, bottom = (int(v) for v in font.getbbox(text, anchor=anchor,
                                                             stroke_width=OUTLINE_PX))
    stamp = Image.new("RGBA", (max(1, right - left), max(1, bottom - top)), (0, 0, 0, 0))
    ImageDraw.Draw(stamp).text((-left, -top), text, fill=(*LABEL_RGB, 255), font=font,
                               anchor=anchor, stroke_width=OUTLINE_PX,
                               stroke_fill=(0, 0, 0, 255))
    return stamp, left, top
