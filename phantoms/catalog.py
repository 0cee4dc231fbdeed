"""Which phantoms the generator offers, and what each needs: its model and painter, its
planning CT and CBCT grids, and the CBCT degradation it is acquired with by default.

* ``cube`` and ``body`` (``phantoms.anatomy``): the generator's first QA cube and the
  anthropomorphic torso, on the default grids;
* ``sphere_cube`` (``phantoms.sphere_cube``) and ``iq_cylinder`` (``phantoms.iq_cylinder``): the
  QA phantoms of physics QA, scanned as a QA planning CT is (fine slices over the whole phantom)
  and acquired with the artefacts such phantoms show on CBCT: strong cupping, rings, streaks
  from the dense inserts, noise, 2.5 mm slices (full size) and truncated ends.
"""

from __future__ import annotations

from phantoms import anatomy, iq_cylinder, sphere_cube
from phantoms.anatomy import PhantomModel
from phantoms.cbct import CBCT_GRIDS, CbctGridSpec, Degradation
from phantoms.shapes import Canvas

PHANTOMS = ("cube", "body", "sphere_cube", "iq_cylinder")
QA_PHANTOMS = ("sphere_cube", "iq_cylinder")

Grid = tuple[tuple[int, int, int], tuple[float, float, float]]

#: Sizes: ``small`` (the tests'), ``full``; for the anatomy phantoms also ``hires`` and
#: ``hires-small`` (below).
SIZES = ("small", "full", "hires", "hires-small")
#: Only the anatomy phantoms have a high-resolution planning CT.
QA_SIZES = ("small", "full")

#: Planning CT grids: (columns, rows, slices) and (column, row, slice) spacing in mm.
#: ``hires``: a high-resolution planning CT (0.45 mm pixels, 1 mm slices, 230 mm field of view,
#: which cuts the torso at the sides and the back as a small reconstruction circle would) with
#: the ``full`` CBCT; ``hires-small`` the same ratio of planning to CBCT voxels at test size.
PLANNING_GRIDS: dict[str, Grid] = {
    "full": ((512, 512, 150), (0.9765625, 0.9765625, 2.5)),
    "small": ((192, 192, 64), (2.6, 2.6, 5.0)),
    "hires": ((512, 512, 140), (0.45, 0.45, 1.0)),
    "hires-small": ((192, 192, 64), (1.3, 1.3, 2.5)),
}
QA_PLANNING_GRIDS: dict[str, Grid] = {
    "full": ((384, 384, 128), (0.7, 0.7, 1.5)),
    "small": ((128, 128, 96), (2.0, 2.0, 2.0)),
}
QA_CBCT_GRIDS: dict[str, CbctGridSpec] = {
    "full": CbctGridSpec((512, 512, 72), (0.6, 0.6, 2.5), 150.0),
    "small": CbctGridSpec((128, 128, 64), (2.2, 2.2, 2.5), 140.0),
}
#: The QA phantoms' CBCT: 150 mm reconstructed length (the phantom ends are truncated).
QA_DEGRADATION = Degradation(noise_hu=25.0, blur_sigma_mm=0.7, hu_scale=0.92, hu_offset=-40.0,
                             cupping_hu=70.0, cupping_radius_mm=120.0, dense_streaks_hu=60.0,
                             rings_hu=18.0, fov_length_mm=150.0)


def _check(name: str) -> None:
    if name not in PHANTOMS:
        raise ValueError(f"unknown phantom {name!r}: expected one of {', '.join(PHANTOMS)}")


def check_size(name: str, size: str) -> None:
    """A size the phantom is made in (ValueError naming the choices otherwise)."""
    sizes = QA_SIZES if name in QA_PHANTOMS else SIZES
    if size not in sizes:
        raise ValueError(f"unknown size {size!r} for the {name} phantom: expected one of "
                         f"{', '.join(sizes)}")


def model(name: str) -> PhantomModel:
    _check(name)
    if name == "sphere_cube":
        return sphere_cube.model()
    if name == "iq_cylinder":
        return iq_cylinder.model()
    return anatomy.model(name)


def render(name: str, canvas: Canvas, seed: int) -> None:
    _check(name)
    if name == "sphere_cube":
        sphere_cube.render(canvas, seed)
    elif name == "iq_cylinder":
        iq_cylinder.render(canvas, seed)
    else:
        anatomy.render(name, canvas, seed)


def planning_grid(name: str, size: str) -> Grid:
    return (QA_PLANNING_GRIDS if name in QA_PHANTOMS else PLANNING_GRIDS)[size]


def cbct_grid(name: str, size: str) -> CbctGridSpec:
    return (QA_CBCT_GRIDS if name in QA_PHANTOMS else CBCT_GRIDS)[size]


def degradation(name: str) -> Degradation:
    """The default CBCT degradation of a phantom."""
    return QA_DEGRADATION if name in QA_PHANTOMS else Degradation()
