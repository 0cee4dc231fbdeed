"""The review images of one registration: for each view (axial, coronal, sagittal through the
plan isocentre), before and after the correction, a blend and a checkerboard, in each window
preset, with the isocentre cross, the registration box, a scale bar and the edge letters.

Geometry (``igrt.core.geometry``): a room point ``r`` (machine isocentre at 0) shows the
planning CT at ``p = r + iso`` (plan isocentre at machine isocentre); the CBCT *before* the
correction is the one at the nominal setup, sampled at ``initial⁻¹(p)``; *after* the correction
it is sampled at ``transform⁻¹(p)``, where it lines up with the planning CT if the registration
is right. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from igrt.core import geometry
from igrt.core.case import Registered
from igrt.core.types import Float32Array, FloatArray
from igrt.review.compose import (
    PRESETS,
    Rgb,
    blend,
    checkerboard,
    draw_cross,
    draw_rectangle,
    draw_scale_bar,
    windowed,
)
from igrt.review.sample import sample
from igrt.review.views import View, views

PIXEL_MM = 0.6
FIELD_MARGIN = 1.3  # the panel shows this much more than the registration box
SQUARE_MM = 15.0
CROSS_HALF_MM = 12.0
SCALE_BAR_MM = 50.0
STAGES = ("before", "after")
MODES = ("blend", "checker")


@dataclass(frozen=True)
class Label:
    """Text drawn at the PNG edge: ``anchor`` is Pillow's (e.g. ``"lm"`` left-middle)."""

    text: str
    x: float
    y: float
    anchor: str


@dataclass(frozen=True, eq=False)
class Panel:
    """One review image: ``name`` is ``<view>_<stage>_<mode>_<preset>``."""

    name: str
    rgb: Rgb
    labels: tuple[Label, ...]


@dataclass(frozen=True, eq=False)
class _Planes:
    view: View
    extent_mm: tuple[float, float]  # width (right), height (up)
    planning: Float32Array
    cbct: dict[str, Float32Array]  # by stage


def render(registered: Registered) -> list[Panel]:
    """Every review panel of a registration. The CBCT's values are first mapped linearly onto
    the planning CT's (fitted where both have data after the correction): CBCT HU are biased
    and cupped, and without the fit a correct match would look tinted in the blend."""
    panels: list[Panel] = []
    sampled = _sample_planes(registered)
    gain, offset = hu_fit([p.planning for p in sampled], [p.cbct["after"] for p in sampled])
    for planes in sampled:
        planes = _Planes(planes.view, planes.extent_mm, planes.planning,
                         {s: gain * v + offset for s, v in planes.cbct.items()})
        for stage in STAGES:
            for window in PRESETS:
                ct = windowed(planes.planning, window)
                cb = windowed(planes.cbct[stage], window)
                square = max(4, int(round(SQUARE_MM / PIXEL_MM)))
                images = {"blend": blend(ct, cb),
                          "checker": checkerboard(ct, cb, square_px=square)}
                for mode in MODES:
                    image = images[mode]
                    labels = _overlay(image, planes, registered, stage, window.name)
                    panels.append(Panel(f"{planes.view.name}_{stage}_{mode}_{window.name}",
                                        image, labels))
    return panels


def hu_fit(planning: list[Float32Array], cbct: list[Float32Array], *,
           lo_hu: float = -900.0, hi_hu: float = 2500.0) -> tuple[float, float]:
    """``(gain, offset)`` of the least-squares line ``planning ≈ gain * cbct + offset`` over the
    pixels where both hold tissue; identity when too few pixels or an implausible gain."""
    ct = np.concatenate([a.ravel() for a in planning])
    cb = np.concatenate([a.ravel() for a in cbct])
    use = np.isfinite(ct) & np.isfinite(cb) & (ct > lo_hu) & (ct < hi_hu) & (cb > lo_hu)
    if use.sum() < 100 or float(np.std(cb[use])) < 1.0:
        return 1.0, 0.0
    gain, offset = np.polyfit(cb[use].astype(np.float64), ct[use].astype(np.float64), 1)
    if not 0.5 <= gain <= 2.0:
        return 1.0, 0.0
    return float(gain), float(offset)


def _sample_planes(registered: Registered) -> list[_Planes]:
    case = registered.case
    iso = np.asarray(case.isocenter_mm, dtype=np.float64)
    half_box = np.asarray(registered.box_size_mm, dtype=np.float64) / 2.0
    to_cbct = {"before": geometry.invert_rigid(registered.initial),
               "after": geometry.invert_rigid(registered.transform)}
    out = []
    for view in views(case.position):
        width = FIELD_MARGIN * 2.0 * float(np.abs(view.right_lps) @ half_box)
        height = FIELD_MARGIN * 2.0 * float(np.abs(view.up_lps) @ half_box)
        room = _grid(view, width, height)
        planning_points = room + iso
        planning = sample(registered.ct, planning_points)
        cbct = {stage: sample(case.cbct, geometry.apply(m, planning_points),
                              outside=case.cbct_padding)
                for stage, m in to_cbct.items()}
        out.append(_Planes(view, (width, height), planning, cbct))
    return out


def _grid(view: View, width_mm: float, height_mm: float) -> FloatArray:
    """Room points of the panel's pixel centres, ``(rows, columns, 3)``; row 0 at the top."""
    cols = max(2, int(round(width_mm / PIXEL_MM)))
    rows = max(2, int(round(height_mm / PIXEL_MM)))
    u = (np.arange(cols) - (cols - 1) / 2.0) * PIXEL_MM
    v = ((rows - 1) / 2.0 - np.arange(rows)) * PIXEL_MM
    return (u[None, :, None] * view.right_lps[None, None, :]
            + v[:, None, None] * view.up_lps[None, None, :])


def _overlay(image: Rgb, planes: _Planes, registered: Registered, stage: str,
             preset: str) -> tuple[Label, ...]:
    rows, cols, _ = image.shape
    centre_row, centre_col = (rows - 1) / 2.0, (cols - 1) / 2.0
    half_box = np.asarray(registered.box_size_mm, dtype=np.float64) / 2.0
    box_w = float(np.abs(planes.view.right_lps) @ half_box) / PIXEL_MM
    box_h = float(np.abs(planes.view.up_lps) @ half_box) / PIXEL_MM
    draw_rectangle(image, centre_row - box_h, centre_col - box_w, centre_row + box_h,
                   centre_col + box_w)
    draw_cross(image, centre_row, centre_col, half_px=int(round(CROSS_HALF_MM / PIXEL_MM)))
    bar_row, bar_col = draw_scale_bar(image, length_px=int(round(SCALE_BAR_MM / PIXEL_MM)))
    letters = planes.view.edge_letters
    return (
        Label(letters["left"], 4, centre_row, "lm"),
        Label(letters["right"], cols - 4, centre_row, "rm"),
        Label(letters["top"], centre_col, 4, "mt"),
        Label(letters["bottom"], centre_col, rows - 4, "mb"),
        Label(f"{SCALE_BAR_MM:g} mm", bar_col, bar_row - 3, "lb"),
        Label(f"{planes.view.name} {stage} ({preset})", 4, 4, "lt"),
    )
