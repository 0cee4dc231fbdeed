"""QA phantom ``iq_cylinder``: a 200 mm diameter cylindrical image-quality phantom with modules
along its axis, like a CatPhan 504. The plan isocentre is the phantom centre, in the middle of
the HU-insert module (where such a phantom is aligned to the lasers).

Modules (z from the centre, mm; the phantom axis is the patient's superior-inferior axis):

* ``[-80, -52]`` low contrast: 15 discs of 2–15 mm diameter, +10 HU over the background;
* ``[-52, -17]`` uniform: water-equivalent (10 HU) only, for uniformity and noise;
* ``[-17, +17]`` HU inserts (sensitometry): eight 12 mm rods at 58 mm radius (air, PMP, LDPE,
  polystyrene, acrylic, bone 20 %, Delrin, Teflon), four 3 mm air holes on a 50 mm square
  (geometry), two tungsten wire ramps at 23° to the slice plane (slice position);
* ``[+17, +52]`` line pairs: aluminium bar groups of 2 to 11 line pairs per cm on a ring;
* ``[+52, +80]`` end cap (uniform).
"""

from __future__ import annotations

import math

import numpy as np

from igrt.core.geometry import rot_x, rot_z
from igrt.core.types import FloatArray as F64
from phantoms import shapes
from phantoms.anatomy import AIR_HU, PhantomModel
from phantoms.shapes import Canvas, paint, tube_z

CENTER_MM = (-2.0, 3.5, -401.25)
RADIUS_MM = 100.0
HALF_LENGTH_MM = 80.0
BACKGROUND_HU = 10.0
SHELL_HU = 120.0  # acrylic housing, 3 mm
#: HU inserts: (angle in degrees from anterior, HU), at INSERT_RING_MM from the axis.
INSERTS: tuple[tuple[float, float], ...] = (
    (0.0, AIR_HU), (45.0, -200.0), (90.0, -100.0), (135.0, -35.0), (180.0, 120.0),
    (225.0, 700.0), (270.0, 340.0), (315.0, 950.0),
)
INSERT_RING_MM = 58.0
INSERT_RADIUS_MM = 6.0
HU_MODULE_MM = (-17.0, 17.0)
LINE_PAIR_MODULE_MM = (17.0, 52.0)
LOW_CONTRAST_MODULE_MM = (-80.0, -52.0)
ALUMINIUM_HU = 1900.0
LINE_PAIRS_PER_CM = tuple(range(2, 12))  # 4 aluminium bars per group
LINE_PAIR_RING_MM = 50.0
TUNGSTEN_HU = 3000.0


class CylinderModel(PhantomModel):
    def outline_mm(self, z_mm: float, *, n_points: int = 72) -> F64 | None:
        cx, cy, cz = self.center_mm
        if abs(z_mm - cz) > HALF_LENGTH_MM:
            return None
        t = np.linspace(0.0, 2.0 * math.pi, n_points, endpoint=False)
        return np.stack([cx + RADIUS_MM * np.cos(t), cy + RADIUS_MM * np.sin(t)], axis=1)


def model() -> PhantomModel:
    return CylinderModel("iq_cylinder", CENTER_MM, CENTER_MM, RADIUS_MM)


def _rod(canvas: Canvas, c: F64, x: float, y: float, z: tuple[float, float], r: float,
         hu: float) -> None:
    paint(canvas, tube_z(canvas, z_range_mm=(c[2] + z[0], c[2] + z[1]), center_x=c[0] + x,
                         center_y=c[1] + y, radius_x=r, radius_y=r), hu)


def render(canvas: Canvas, seed: int) -> None:
    c = np.asarray(CENTER_MM)
    z = (-HALF_LENGTH_MM, HALF_LENGTH_MM)
    _rod(canvas, c, 0.0, 0.0, z, RADIUS_MM, SHELL_HU)
    _rod(canvas, c, 0.0, 0.0, (z[0] + 3.0, z[1] - 3.0), RADIUS_MM - 3.0, BACKGROUND_HU)
    _hu_module(canvas, c)
    _line_pair_module(canvas, c)
    _low_contrast_module(canvas, c)


def _hu_module(canvas: Canvas, c: F64) -> None:
    for angle, hu in INSERTS:
        a = math.radians(angle)  # anterior is -y in LPS
        _rod(canvas, c, INSERT_RING_MM * math.sin(a), -INSERT_RING_MM * math.cos(a),
             HU_MODULE_MM, INSERT_RADIUS_MM, hu)
    for sx in (-25.0, 25.0):
        for sy in (-25.0, 25.0):
            _rod(canvas, c, sx, sy, HU_MODULE_MM, 1.5, AIR_HU)
    for side in (-1.0, 1.0):  # wire ramps: thin dense bars at 23° to the slice plane
        centre = c + (side * 35.0, side * 5.0, 0.0)
        rotation = rot_x(side * (90.0 - 23.0))
        paint(canvas, shapes.box(canvas, centre, (0.6, 0.6, 30.0), rotation), TUNGSTEN_HU)


def _line_pair_module(canvas: Canvas, c: F64) -> None:
    zc = c[2] + sum(LINE_PAIR_MODULE_MM) / 2.0
    half_z = (LINE_PAIR_MODULE_MM[1] - LINE_PAIR_MODULE_MM[0]) / 2.0 - 4.0
    for k, lp_per_cm in enumerate(LINE_PAIRS_PER_CM):
        width = 5.0 / lp_per_cm  # bar width = gap width (mm)
        rot = rot_z(360.0 * k / len(LINE_PAIRS_PER_CM))
        radial = rot @ np.array([0.0, -1.0, 0.0])
        along = rot @ np.array([1.0, 0.0, 0.0])
        for n in range(4):
            offset = (n - 1.5) * 2.0 * width
            centre = np.array([c[0], c[1], zc]) + radial * LINE_PAIR_RING_MM + along * offset
            paint(canvas, shapes.box(canvas, centre, (width / 2.0, 6.0, half_z), rot),
                  ALUMINIUM_HU)


def _low_contrast_module(canvas: Canvas, c: F64) -> None:
    lo, hi = LOW_CONTRAST_MODULE_MM
    for k, diameter in enumerate((15, 9, 8, 7, 6, 5, 4, 3, 2, 15, 9, 7, 5, 3, 2)):
        a = math.radians(24.0 * k)
        ring = 60.0 if k < 9 else 35.0
        _rod(canvas, c, ring * math.sin(a), -ring * math.cos(a), (lo + 6.0, hi - 3.0),
             diameter / 2.0, BACKGROUND_HU + 10.0)
