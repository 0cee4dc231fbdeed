"""The CBCT side of a registration problem: the CBCT cropped to the box around the isocentre and
masked to its field of view, its masks near edges and its level pixels. It needs nothing of the
planning side but the nominal start, so ``igrt register`` makes it while the planning reference
is still being built (:func:`cbct_side`, on the otherwise idle core) and
:func:`igrt.registration.runner.prepare` takes it when it was made from the same CBCT, start
and box (:meth:`CbctSide.serves`); else, and in the service, ``prepare`` makes it itself.

Made ahead or not, it is the same: the same functions of the same inputs. Only a QA phantom's
cupping (known from the planning side) changes the CBCT region after it is made: the side is
then made again from the flattened region (:meth:`CbctSide.flattened`).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from igrt.core import geometry
from igrt.core.errors import NoOverlapError
from igrt.core.types import BoolArray, FloatArray
from igrt.core.volume import Volume
from igrt.registration import cbct_levels, region, structure
from igrt.registration.once import Once
from igrt.registration.problem import DEFAULT_LEVELS, Level
from igrt.registration.reference import fixed_factors

_T = TypeVar("_T")

#: The box must hold at least this fraction of real CBCT data.
MIN_FOV_FRACTION = 0.25


@dataclass(frozen=True, eq=False)
class CbctSide:
    """The CBCT region ``fixed`` around ``center_mm`` (the isocentre in CBCT coordinates) and
    the part of it the metric may use (``fixed_mask``: the box within the field of view, a
    ``fov_fraction`` of the box's volume), with the level pixels made for it (``shared``) and
    its masks near edges (``edge_masks``: made on a thread of their own from when the side is
    made; the call waits for them). ``source``: what it was made from."""

    source: tuple[Volume, BoolArray | None, FloatArray, tuple[float, float, float]]
    fixed: Volume
    fixed_mask: BoolArray
    center_mm: FloatArray
    fov_fraction: float
    shared: Once
    edge_masks: Callable[[], tuple[BoolArray | None, BoolArray | None]]

    def serves(self, cbct: Volume, padding: BoolArray | None, nominal: FloatArray,
               box_size_mm: tuple[float, float, float]) -> bool:
        """Whether this side was made from this CBCT (the same arrays), nominal start and box."""
        volume, made_padding, made_nominal, made_box = self.source
        return (volume is cbct and made_padding is padding
                and np.array_equal(made_nominal, nominal) and made_box == tuple(box_size_mm))

    def check_overlap(self) -> None:
        """Refuse a box holding too little real CBCT data."""
        if self.fov_fraction < MIN_FOV_FRACTION:
            box = self.source[3]
            raise NoOverlapError(
                f"only {100 * self.fov_fraction:.0f}% of the {box[0]:g}x{box[1]:g}x{box[2]:g} mm"
                f" registration box around the isocentre lies in the CBCT's field of view "
                f"(at least {100 * MIN_FOV_FRACTION:.0f}% needed)")

    def flattened(self, fixed: Volume, *, native_pixels: bool) -> CbctSide:
        """The side for the region ``fixed`` (the cupping taken out of this side's, or this
        side's own): the same mask, the level pixels and masks near edges made anew for it
        (started now for a side made without them)."""
        if fixed is self.fixed and self.edge_masks is not _not_started:
            return self
        return _made(self.source, fixed, self.fixed_mask, self.center_mm, self.fov_fraction,
                     native_pixels=native_pixels)


def cbct_side(cbct: Volume, padding: BoolArray | None, nominal: FloatArray,
              box_size_mm: tuple[float, float, float], *, native_pixels: bool = True,
              levels_now: bool = False, masks_beside: bool = True) -> CbctSide:
    """Crop and mask the CBCT around the isocentre the nominal start ``nominal`` (CBCT point ->
    room point) puts at the room's origin. ``native_pixels``: the native level's CBCT pixels
    are made after the masks near edges, on their thread (SimpleITK's; elastix smooths its
    native level itself); ``levels_now`` (a side made ahead): the first level's pixels are made
    before this returns, the middle level's first on the thread of the masks near edges (the
    first runs ask for them in that order; the masks are asked for after the middle level's
    run over the whole box). ``masks_beside`` False: neither the masks near edges nor any level
    is started (a QA phantom's region, flattened first: :meth:`CbctSide.flattened`), nor for a
    box holding too little CBCT (:meth:`CbctSide.check_overlap` refuses it)."""
    box_size = np.asarray(box_size_mm, dtype=np.float64)
    center = geometry.apply(geometry.invert_rigid(nominal), np.zeros(3))
    box = region.index_box(cbct, center, box_size)
    fixed = region.crop(cbct, box)
    fov = region.field_of_view(cbct, region.detect_padding(cbct) if padding is None else padding,
                               within=box)
    fixed_mask = np.ascontiguousarray(fov & region.inside_box(fixed, center, box_size))
    # the share of the box's volume holding real CBCT data (parts of the box beyond the CBCT's
    # slices or columns count as outside)
    voxel_mm3 = float(np.prod(cbct.spacing_mm))
    fraction = min(1.0, float(fixed_mask.sum()) * voxel_mm3 / float(np.prod(box_size)))
    source = (cbct, padding, np.array(nominal, dtype=np.float64),
              (float(box_size[0]), float(box_size[1]), float(box_size[2])))
    if not masks_beside or fraction < MIN_FOV_FRACTION:  # (too little: refused where used)
        return CbctSide(source=source, fixed=fixed, fixed_mask=fixed_mask, center_mm=center,
                        fov_fraction=fraction, shared=Once(), edge_masks=_not_started)
    made = _made(source, fixed, fixed_mask, center, fraction, native_pixels=native_pixels,
                 middle_first=levels_now)
    if levels_now:
        _level_pixels(made.shared, fixed, DEFAULT_LEVELS[0])
    return made


def _made(source: tuple[Volume, BoolArray | None, FloatArray, tuple[float, float, float]],
          fixed: Volume, fixed_mask: BoolArray, center: FloatArray, fraction: float, *,
          native_pixels: bool, middle_first: bool = False) -> CbctSide:
    shared = Once()
    first = functools.partial(_level_pixels, shared, fixed, DEFAULT_LEVELS[1]) \
        if middle_first else None
    then = functools.partial(_level_pixels, shared, fixed, DEFAULT_LEVELS[-1]) \
        if native_pixels else None
    masks = _beside(functools.partial(_edge_masks, fixed, fixed_mask, center,
                                      np.asarray(source[3], dtype=np.float64)),
                    first=first, then=then)
    return CbctSide(source=source, fixed=fixed, fixed_mask=fixed_mask, center_mm=center,
                    fov_fraction=fraction, shared=shared, edge_masks=masks)


def _not_started() -> tuple[BoolArray | None, BoolArray | None]:
    raise RuntimeError("the masks near edges of this CBCT side were not started")


def _level_pixels(shared: Once, fixed: Volume, level: Level) -> object:
    return cbct_levels.level_pixels(shared, fixed, fixed_factors(fixed.spacing_mm, level),
                                    level.smoothing_mm)


def _edge_masks(fixed: Volume, fixed_mask: BoolArray, center_mm: FloatArray,
                box_size_mm: FloatArray) -> tuple[BoolArray | None, BoolArray | None]:
    """The problem's masks near the CBCT's edges: ``sample_mask`` (edges wholly inside the
    usable region, both sides) and ``refine_mask`` (the edge bands kept away from the box's
    faces)."""
    inner = region.inside_box(fixed, center_mm, box_size_mm - 2 * structure.BOX_INSET_MM)
    edges = structure.strong_edges(fixed)
    return (structure.near_edges(edges, fixed_mask),
            structure.near_edges(edges, fixed_mask & inner, both_sides=False))


def _beside(make: Callable[[], _T], *, first: Callable[[], object] | None = None,
            then: Callable[[], object] | None = None) -> Callable[[], _T]:
    """``make`` run on a thread of its own from now; the call returned waits for its result
    (and raises its error). The CBCT's masks near edges (a tenth to a fifth of a second of
    ITK filters and distance maps, outside Python's lock) are made while the first levels run:
    they do not use them. ``then``, on that thread once ``make`` has succeeded: what a later
    level will ask for (the native level's CBCT pixels, a tenth of a second more); ``first``,
    on that thread before ``make``: what an earlier level will ask for (a side made ahead: the
    middle level's pixels). An error in either is kept where it is asked for, and met there."""
    done: Future[_T] = Future()

    def run() -> None:
        if first is not None:
            with contextlib.suppress(Exception):  # kept in the problem's Once, raised there
                first()
        try:
            done.set_result(make())
        except BaseException as exc:  # noqa: BLE001 - raised where the masks are used
            done.set_exception(exc)
            return  # the registration fails where it asks for them: nothing more is needed
        if then is not None:
            with contextlib.suppress(Exception):  # kept in the problem's Once, raised there
                then()

    threading.Thread(target=run, name="igrt-edge-masks", daemon=True).start()
    return done.result
