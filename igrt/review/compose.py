"""Turning two sampled planes into what a therapist looks at: window/level, a two-colour blend,
a checkerboard, and the overlays (isocentre cross, registration box, scale bar). Pure numpy;
images are ``(rows, columns, 3)`` uint8 arrays, row 0 at the top."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from igrt.core.types import Float32Array

Rgb = npt.NDArray[np.uint8]

CROSS_RGB = (255, 220, 0)
BOX_RGB = (0, 200, 255)
SCALE_RGB = (255, 255, 255)


@dataclass(frozen=True)
class Window:
    """A window/level preset in HU."""

    name: str
    width_hu: float
    level_hu: float


#: Soft tissue and bone, as CBCT HU allow (CBCT values are less exact than CT's).
PRESETS: tuple[Window, ...] = (
    Window("soft", 400.0, 40.0),
    Window("bone", 1600.0, 350.0),
)


def windowed(values: Float32Array, window: Window) -> Float32Array:
    """Values scaled to 0..1 by the window; NaN (no data) stays NaN."""
    lo = window.level_hu - window.width_hu / 2.0
    return np.clip((values - lo) / window.width_hu, 0.0, 1.0)


def blend(planning: Float32Array, cbct: Float32Array) -> Rgb:
    """Planning CT in magenta, CBCT in green: where they agree the image is grey; an edge that
    does not line up shows one colour on one side and the other on the other."""
    ct = np.nan_to_num(planning, nan=0.0)
    cb = np.nan_to_num(cbct, nan=0.0)
    return _to_rgb(np.stack([ct, cb, ct], axis=-1))


def checkerboard(planning: Float32Array, cbct: Float32Array, *, square_px: int) -> Rgb:
    """Alternating squares of the planning CT and the CBCT (grey): edges must continue across
    the squares' borders. Where the CBCT has no data its squares show the planning CT dimmed."""
    rows, cols = planning.shape
    r, c = np.mgrid[0:rows, 0:cols]
    take_cbct = ((r // square_px) + (c // square_px)) % 2 == 1
    grey = np.where(take_cbct, cbct, planning)
    grey = np.where(np.isnan(grey), 0.35 * np.nan_to_num(planning, nan=0.0), grey)
    return _to_rgb(np.repeat(np.nan_to_num(grey, nan=0.0)[..., None], 3, axis=-1))


def draw_cross(image: Rgb, row: float, col: float, *, half_px: int) -> None:
    """The isocentre cross, in place."""
    r, c = int(round(row)), int(round(col))
    rows, cols, _ = image.shape
    for dr in range(-half_px, half_px + 1):
        if 0 <= r + dr < rows and 0 <= c < cols:
            image[r + dr, c] = CROSS_RGB
    for dc in range(-half_px, half_px + 1):
        if 0 <= r < rows and 0 <= c + dc < cols:
            image[r, c + dc] = CROSS_RGB


def draw_rectangle(image: Rgb, top: float, left: float, bottom: float, right: float, *,
                   dash_px: int = 6) -> None:
    """A dashed rectangle (the registration box's outline), clipped to the image, in place."""
    rows, cols, _ = image.shape
    t, b = int(round(top)), int(round(bottom))
    left_col, right_col = int(round(left)), int(round(right))
    for c in range(max(left_col, 0), min(right_col, cols - 1) + 1):
        if (c // dash_px) % 2 == 0:
            for r in (t, b):
                if 0 <= r < rows:
                    image[r, c] = BOX_RGB
    for r in range(max(t, 0), min(b, rows - 1) + 1):
        if (r // dash_px) % 2 == 0:
            for c in (left_col, right_col):
                if 0 <= c < cols:
                    image[r, c] = BOX_RGB


def draw_scale_bar(image: Rgb, *, length_px: int, margin_px: int = 10,
                   thickness_px: int = 3) -> tuple[int, int]:
    """A horizontal bar at the bottom left, in place; returns (row, column) of its left end."""
    rows, _, _ = image.shape
    row = rows - margin_px - thickness_px
    image[row:row + thickness_px, margin_px:margin_px + length_px] = SCALE_RGB
    return row, margin_px


def _to_rgb(values01: Float32Array) -> Rgb:
    return np.asarray(np.rint(np.clip(values01, 0.0, 1.0) * 255.0), dtype=np.uint8)
