"""QA phantom ``sphere_cube``: a 160 mm solid-water cube with embedded high-contrast spheres, as
clinics use for daily IGRT checks (IsoCube, Penta-Guide). The plan isocentre is the cube centre.

* the body: water-equivalent plastic (20 HU), edges chamfered 2 mm;
* a 4 mm ceramic ball at the centre (the isocentre marker, 2500 HU);
* eight 10 mm spheres in an asymmetric pattern (no rotation or mirror of the cube maps the set
  onto itself), five air-filled (-1000 HU) as in a Penta-Guide and three dense (1600 HU);
* laser-alignment grooves: 1 mm air lines across the middle of each face.
"""

from __future__ import annotations

import numpy as np

from igrt.core.types import FloatArray as F64
from phantoms import shapes
from phantoms.anatomy import AIR_HU, PhantomModel
from phantoms.shapes import Canvas, ellipsoid, paint

CENTER_MM = (1.5, 4.25, -398.75)
SIDE_MM = 160.0
BODY_HU = 20.0
CENTRE_BALL_RADIUS_MM = 2.0
CENTRE_BALL_HU = 2500.0
SPHERE_RADIUS_MM = 5.0
#: (offset from the centre in LPS mm, HU): air spheres and dense spheres.
SPHERES: tuple[tuple[tuple[float, float, float], float], ...] = (
    ((-45.0, -40.0, -35.0), AIR_HU),
    ((50.0, -30.0, 40.0), AIR_HU),
    ((-30.0, 45.0, 50.0), AIR_HU),
    ((40.0, 50.0, -45.0), AIR_HU),
    ((10.0, -55.0, 10.0), AIR_HU),
    ((-55.0, 15.0, -5.0), 1600.0),
    ((25.0, 20.0, -60.0), 1600.0),
    ((-15.0, -20.0, 58.0), 1600.0),
)
GROOVE_MM = 1.0


class SphereCubeModel(PhantomModel):
    def outline_mm(self, z_mm: float, *, n_points: int = 72) -> F64 | None:
        cx, cy, cz = self.center_mm
        h = SIDE_MM / 2.0
        if abs(z_mm - cz) > h:
            return None
        return np.array([[cx - h, cy - h], [cx + h, cy - h], [cx + h, cy + h], [cx - h, cy + h]])


def model() -> PhantomModel:
    return SphereCubeModel("sphere_cube", CENTER_MM, CENTER_MM, SIDE_MM / 2.0)


def render(canvas: Canvas, seed: int) -> None:
    c = np.asarray(CENTER_MM)
    h = SIDE_MM / 2.0
    paint(canvas, shapes.box(canvas, c, (h, h, h), corner_radius_mm=2.0), BODY_HU)
    g = GROOVE_MM / 2.0
    depth = 1.0
    for axis in range(3):  # a cross of grooves on both faces normal to each axis
        for sign in (-1.0, 1.0):
            face = c.copy()
            face[axis] += sign * (h - depth / 2.0)
            for along in range(3):
                if along == axis:
                    continue
                half = np.full(3, g)
                half[axis] = depth / 2.0
                half[along] = h
                paint(canvas, shapes.box(canvas, face, half), AIR_HU)
    for offset, hu in SPHERES:
        r = SPHERE_RADIUS_MM
        paint(canvas, ellipsoid(canvas, c + np.asarray(offset), (r, r, r)), hu)
    r = CENTRE_BALL_RADIUS_MM
    paint(canvas, ellipsoid(canvas, c, (r, r, r)), CENTRE_BALL_HU)
