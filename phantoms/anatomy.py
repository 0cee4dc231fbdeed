"""The phantoms' "truth" anatomy in planning patient coordinates (LPS, mm).

Two phantoms:

* ``cube``: a 150 mm QA cube (solid-water-like) with inserts (lung, bone and fat equivalents,
  air holes, a wedge, two oblique bars) and eight high-contrast spherical markers in an
  asymmetric pattern (:data:`CUBE_MARKERS_MM`, relative to the cube centre).
* ``body``: an anthropomorphic torso (skin, subcutaneous fat, muscle wall, spine with vertebral
  bodies, discs and processes, ribs, sternum, lungs with vessels, heart, liver, spleen, kidneys,
  stomach, bowel gas, pelvic bones) with a smooth random soft-tissue texture. Deterministic for a
  seed.

The anatomy is the same in LPS for every patient position: only the scanner geometry and the side
the couch is on change. Couches are drawn separately (``phantoms.couch``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from igrt.core.geometry import rot_x, rot_y, rot_z
from igrt.core.types import Float32Array as F32
from igrt.core.types import FloatArray as F64
from phantoms import shapes
from phantoms.shapes import Canvas, ellipsoid, paint, shell, tube_z

AIR_HU = -1000.0

#: Cube phantom: centre, side, markers (relative to the centre, mm; no symmetry maps one set of
#: marker positions onto itself), marker radius and HU.
CUBE_CENTER_MM = (1.5, 4.25, -398.75)
CUBE_SIDE_MM = 150.0
CUBE_MARKERS_MM: tuple[tuple[float, float, float], ...] = (
    (-50.0, -45.0, -40.0),
    (48.0, -38.0, -55.0),
    (-42.0, 52.0, -20.0),
    (55.0, 47.0, 10.0),
    (-25.0, -55.0, 45.0),
    (30.0, 20.0, 58.0),
    (-58.0, 10.0, 35.0),
    (12.0, -15.0, -62.0),
)
CUBE_MARKER_RADIUS_MM = 4.5
CUBE_MARKER_HU = 2500.0

#: Body phantom: centre of the torso; the plan isocentre sits just anterior of the spine.
BODY_CENTER_MM = (1.5, 12.0, -395.0)
BODY_ISOCENTER_MM = (-0.85, 20.6, -387.15)
BODY_POWER = 2.4  # super-ellipse exponent of the torso cross-section

@dataclass(frozen=True)
class PhantomModel:
    """What the generator needs to know of a phantom besides its voxels."""

    name: str
    center_mm: tuple[float, float, float]
    default_isocenter_mm: tuple[float, float, float]
    half_height_mm: float  # largest half extent along y (anterior-posterior)

    def outline_mm(self, z_mm: float, *, n_points: int = 72) -> F64 | None:
        """External outline (closed polygon of (x, y)) on the plane ``z``, or None if none."""
        cx, cy, cz = self.center_mm
        if self.name == "cube":
            h = CUBE_SIDE_MM / 2.0
            if abs(z_mm - cz) > h:
                return None
            corners = [(-h, -h), (h, -h), (h, h), (-h, h)]
            return np.array([[cx + dx, cy + dy] for dx, dy in corners])
        a, b = _body_a(np.array([z_mm - cz]))[0], _body_b(np.array([z_mm - cz]))[0]
        t = np.linspace(0.0, 2.0 * math.pi, n_points, endpoint=False)
        e = 2.0 / BODY_POWER
        x = cx + a * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** e
        y = cy + b * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** e
        return np.stack([x, y], axis=1)


def model(name: str) -> PhantomModel:
    if name == "cube":
        return PhantomModel("cube", CUBE_CENTER_MM, CUBE_CENTER_MM, CUBE_SIDE_MM / 2.0)
    if name == "body":
        return PhantomModel("body", BODY_CENTER_MM, BODY_ISOCENTER_MM, float(_B_MAX))
    raise ValueError(f"unknown phantom {name!r}: expected 'cube' or 'body'")


def render(name: str, canvas: Canvas, seed: int) -> None:
    """Paint the anatomy of phantom ``name`` into ``canvas`` (which must hold air)."""
    if name == "cube":
        _render_cube(canvas)
    elif name == "body":
        _render_body(canvas, seed)
    else:
        raise ValueError(f"unknown phantom {name!r}: expected 'cube' or 'body'")


# --- cube ----------------------------------------------------------------------------------------
def _render_cube(canvas: Canvas) -> None:
    c = np.asarray(CUBE_CENTER_MM)
    h = CUBE_SIDE_MM / 2.0
    paint(canvas, shapes.box(canvas, c, (h, h, h), corner_radius_mm=3.0), 8.0)
    # Inserts: lung-like rod, bone-like rod (not full length), fat sphere, air hole, acrylic wedge.
    paint(
        canvas,
        tube_z(canvas, z_range_mm=(c[2] - 60, c[2] + 60), center_x=c[0] - 35, center_y=c[1] - 30,
               radius_x=14.0, radius_y=14.0),
        -750.0,
    )
    paint(
        canvas,
        tube_z(canvas, z_range_mm=(c[2] - 40, c[2] + 70), center_x=c[0] + 35, center_y=c[1] - 30,
               radius_x=9.0, radius_y=9.0),
        700.0,
    )
    paint(canvas, ellipsoid(canvas, c + (30, 35, 20), (18, 18, 18)), -100.0)
    paint(canvas, ellipsoid(canvas, c + (-40, 38, -35), (9, 9, 9)), AIR_HU)
    paint(canvas, shapes.box(canvas, c + (0, 45, -45), (40, 10, 15), rot_z(20.0)), 120.0)
    # Two oblique bars and two air bubbles near the centre (the region a registration box of
    # +-50 mm sees): oblique edges pin pitch, roll and rotation.
    paint(canvas, shapes.box(canvas, c + (10, 0, 0), (6, 6, 60), rot_x(35.0)), 300.0)
    paint(canvas, shapes.box(canvas, c + (0, 15, 5), (5, 5, 55), rot_y(-40.0)), 200.0)
    paint(canvas, ellipsoid(canvas, c + (15, -10, 30), (6, 6, 6)), AIR_HU)
    paint(canvas, ellipsoid(canvas, c + (-20, 22, -15), (7, 7, 7)), AIR_HU)
    for m in CUBE_MARKERS_MM:
        r = CUBE_MARKER_RADIUS_MM
        paint(canvas, ellipsoid(canvas, c + np.asarray(m), (r, r, r)), CUBE_MARKER_HU)


# --- body ----------------------------------------------------------------------------------------
_B_MAX = 113.0


def _body_a(u: F64) -> F64:
    """Lateral half width of the torso at height ``u`` (mm from the body centre along z)."""
    return 163.0 + 7.0 * np.cos(u / 120.0)


def _body_b(u: F64) -> F64:
    """Anterior-posterior half height of the torso (max :data:`_B_MAX`)."""
    return 108.0 + 5.0 * np.sin(u / 90.0)


def _spine_y(u: F64) -> F64:
    """Vertebral body centre (y, relative to the body centre): a gentle lordosis."""
    return 45.0 - 6.0 * np.sin(math.pi * u / 380.0)


def spine_center_y(z_mm: float) -> float:
    """The body phantom's vertebral body centre (LPS y, mm) at the plane ``z``."""
    return BODY_CENTER_MM[1] + float(_spine_y(np.array([z_mm - BODY_CENTER_MM[2]]))[0])


def _render_body(canvas: Canvas, seed: int) -> None:
    c = np.asarray(BODY_CENTER_MM)
    zc = canvas.axis_coords(2)
    z_lo, z_hi = float(zc[0]) - 10.0, float(zc[-1]) + 10.0
    ext = (c[0] - 175.0, c[0] + 175.0, c[1] - 120.0, c[1] + 120.0)

    def torso(inset_a: float, inset_b: float) -> tuple[shapes.Region, F32] | None:
        return tube_z(
            canvas,
            z_range_mm=(z_lo, z_hi),
            center_x=c[0],
            center_y=c[1],
            radius_x=lambda z: _body_a(z - c[2]) - inset_a,
            radius_y=lambda z: _body_b(z - c[2]) - inset_b,
            power=BODY_POWER,
            max_extent_mm=ext,
        )

    paint(canvas, torso(0.0, 0.0), 30.0)  # skin
    paint(canvas, torso(2.5, 2.5), -100.0)  # subcutaneous fat
    paint(canvas, torso(14.0, 11.0), 48.0)  # muscle wall
    paint(canvas, torso(26.0, 22.0), 28.0)  # visceral cavity (mesentery, bowel)
    _paint_muscles(canvas, c, z_lo, z_hi)
    _paint_abdomen(canvas, c, seed)
    _paint_thorax(canvas, c, seed, z_hi)
    _paint_great_vessels(canvas, c)
    _paint_spine(canvas, c, z_lo, z_hi)
    _paint_ribs(canvas, c)
    _paint_pelvis(canvas, c)
    _add_texture(canvas, c, seed)
    _paint_bowel_gas(canvas, c, seed)


def _paint_muscles(canvas: Canvas, c: F64, z_lo: float, z_hi: float) -> None:
    for side in (-1.0, 1.0):
        paint(
            canvas,
            tube_z(canvas, z_range_mm=(z_lo, z_hi), center_x=c[0] + side * 40.0,
                   center_y=c[1] + 82.0, radius_x=24.0, radius_y=17.0),
            55.0,
        )  # paraspinal (erector spinae)
        paint(
            canvas,
            tube_z(
                canvas,
                z_range_mm=(z_lo, c[2] - 10.0),
                center_x=c[0] + side * 36.0,
                center_y=c[1] + 50.0,
                radius_x=lambda z: 10.0 + 0.1 * np.maximum(0.0, c[2] - 10.0 - z),
                radius_y=14.0,
                max_extent_mm=(c[0] + side * 36.0 - 32, c[0] + side * 36.0 + 32,
                               c[1] + 36.0, c[1] + 64.0),
            ),
            52.0,
        )  # psoas


def _paint_abdomen(canvas: Canvas, c: F64, seed: int) -> None:
    rng = np.random.default_rng([seed, 11])
    for _ in range(26):  # mesenteric fat patches
        centre = c + (rng.uniform(-95, 95), rng.uniform(-75, 15), rng.uniform(-175, -20))
        radii = rng.uniform(8.0, 22.0, size=3)
        paint(canvas, ellipsoid(canvas, centre, radii, rot_z(rng.uniform(0, 180))), -90.0)
    paint(canvas, ellipsoid(canvas, c + (-50, -5, -20), (82, 75, 72), rot_z(15.0)), 62.0)  # liver
    paint(canvas, ellipsoid(canvas, c + (88, 35, -5), (28, 45, 50), rot_z(-25.0)), 47.0)  # spleen
    paint(canvas, ellipsoid(canvas, c + (40, -45, -5), (48, 32, 45), rot_z(10.0)), 20.0)  # stomach
    paint(canvas, ellipsoid(canvas, c + (40, -64, 8), (30, 12, 26)), AIR_HU)  # gastric gas cap
    for side, z_k in ((-1.0, -55.0), (1.0, -42.0)):  # kidneys with renal sinus fat
        centre = c + (side * 72.0, 51.0, z_k)
        rot = rot_z(side * 20.0)
        paint(canvas, ellipsoid(canvas, centre, (27, 21, 52), rot), 34.0)
        paint(canvas, ellipsoid(canvas, centre + (-side * 10, 0, 0), (9, 7, 24), rot), -60.0)


def _paint_great_vessels(canvas: Canvas, c: F64) -> None:
    paint(
        canvas,
        tube_z(canvas, z_range_mm=(c[2] - 130, c[2] + 125), center_x=c[0] + 15,
               center_y=lambda z: c[1] + _spine_y(z - c[2]) - 29.0, radius_x=11.0, radius_y=11.0,
               max_extent_mm=(c[0] + 4, c[0] + 26, c[1] - 2, c[1] + 34)),
        42.0,
    )  # aorta
    paint(
        canvas,
        tube_z(canvas, z_range_mm=(c[2] - 130, c[2] + 25), center_x=c[0] - 21, center_y=c[1] + 14,
               radius_x=12.0, radius_y=10.0),
        38.0,
    )  # inferior vena cava


def _diaphragm(c: F64, side: float) -> tuple[float, float]:
    """(base, dome) of the lung base surface on one side: right dome higher (liver)."""
    return (-10.0, 45.0) if side < 0 else (-15.0, 35.0)


def _paint_thorax(canvas: Canvas, c: F64, seed: int, z_hi: float) -> None:
    lung_hu = -830.0
    lx, ly, lrx, lry = 78.0, 5.0, 58.0, 70.0
    union = canvas.region(
        c + (-lx - lrx, ly - lry, -30.0), (c[0] + lx + lrx, c[1] + ly + lry, z_hi)
    )
    if union is None:
        return
    lung_alpha = np.zeros(
        tuple(s.stop - s.start for s in union), dtype=np.float32
    )
    for side in (-1.0, 1.0):
        base, dome = _diaphragm(c, side)
        region = canvas.region(
            c + (side * lx - lrx, ly - lry, base), (c[0] + side * lx + lrx, c[1] + ly + lry, z_hi)
        )
        if region is None:
            continue
        x, y, z = canvas.grid(region)
        qx, qy = (x - c[0] - side * lx) / lrx, (y - c[1] - ly) / lry
        g = np.abs(qx) ** 2.2 + np.abs(qy) ** 2.2  # (1, ny, nx)
        d_xy = ((g - 1.0) * 0.5 * min(lrx, lry)).astype(np.float32)
        # Dome apex antero-medial: the lung reaches lowest in the posterior recess.
        apex = (qx + side * 0.25) ** 2 + ((qy + 0.35) / 1.35) ** 2
        surface = (c[2] + base + dome * (1.0 - np.clip(apex, 0.0, 1.0))).astype(np.float32)
        alpha = canvas.alpha(np.maximum(d_xy, (surface - z) * np.float32(canvas.z_scale)))
        canvas.paint(region, alpha, lung_hu)
        offs = tuple(
            slice(r.start - u.start, r.stop - u.start) for r, u in zip(region, union, strict=True)
        )
        lung_alpha[offs] = np.maximum(lung_alpha[offs], alpha)
    # Vessels: where two smooth random fields are both near zero (a network of tubes).
    rng = np.random.default_rng([seed, 21])
    f1 = shapes.region_field(canvas, union, cell_mm=7.0, rng=rng)
    f2 = shapes.region_field(canvas, union, cell_mm=7.0, rng=rng)
    x, _, _ = canvas.grid(union)
    hilum = np.clip(1.0 - (np.abs(x - c[0]) - 15.0) / 100.0, 0.0, 1.0)
    width = (0.13 + 0.2 * hilum).astype(np.float32)  # larger vessels toward the hilum
    tube = np.clip(0.5 - (np.abs(f1) - width) / 0.08, 0, 1) * np.clip(
        0.5 - (np.abs(f2) - width) / 0.08, 0, 1
    )
    canvas.add(union, (lung_alpha * tube * 760.0).astype(np.float32))
    # Mediastinum: pericardial fat, heart (myocardium and blood), sternum.
    rot = rot_z(30.0) @ rot_x(-15.0)
    heart = c + (22, -25, 72)
    paint(canvas, ellipsoid(canvas, heart, (67, 55, 63), rot), -80.0)
    paint(canvas, ellipsoid(canvas, heart, (62, 50, 58), rot), 52.0)
    paint(canvas, ellipsoid(canvas, heart + (-6, 4, 4), (42, 33, 40), rot), 38.0)
    shell(
        canvas,
        tube_z(canvas, z_range_mm=(c[2] + 45, z_hi), center_x=c[0], center_y=c[1] - 89,
               radius_x=16.0, radius_y=7.0),
        tube_z(canvas, z_range_mm=(c[2] + 47, z_hi), center_x=c[0], center_y=c[1] - 89,
               radius_x=13.5, radius_y=4.5),
        600.0,
        190.0,
    )


def _paint_spine(canvas: Canvas, c: F64, z_lo: float, z_hi: float) -> None:
    period = 28.0
    n_lo = math.floor((z_lo - c[2] - 8.0) / period) - 1
    n_hi = math.ceil((z_hi - c[2] - 8.0) / period) + 1
    for n in range(n_lo, n_hi + 1):
        u = 8.0 + period * n  # a vertebra at the level of the isocentre
        s = 1.0 + 0.15 * float(np.clip(-u / 150.0, 0.0, 1.0))  # lumbar vertebrae are larger
        yv = c[1] + float(_spine_y(np.array([u]))[0])
        zv = c[2] + u

        def prism(cy: float, rx: float, ry: float, z0: float, z1: float, cx: float = c[0]) -> (
            tuple[shapes.Region, F32] | None
        ):
            return tube_z(canvas, z_range_mm=(z0, z1), center_x=cx, center_y=cy, radius_x=rx,
                          radius_y=ry)

        shell(
            canvas,
            prism(yv, 20 * s, 15 * s, zv - 10.5, zv + 10.5),
            prism(yv, 20 * s - 2.2, 15 * s - 2.2, zv - 8.8, zv + 8.8),
            650.0,
            170.0,
        )  # vertebral body: cortical shell and trabecular interior
        paint(canvas, prism(yv, 19 * s, 14 * s, zv + 10.5, zv + period - 10.5), 85.0)  # disc
        paint(canvas, prism(yv + 27 * s, 15 * s, 12 * s, zv - 7, zv + 7), 560.0)  # neural arch
        spinous = c + (0.0, yv - c[1] + 44 * s, u - 6.0)
        paint(canvas, shapes.box(canvas, spinous, (3.5, 12 * s, 5.0), rot_x(-25.0)), 580.0)
        for side in (-1.0, 1.0):
            tp = (c[0] + side * 27 * s, yv + 21 * s, zv)
            paint(canvas, shapes.box(canvas, tp, (12 * s, 4.0, 4.5), rot_z(side * 15.0)), 560.0)
        paint(canvas, prism(yv + 27 * s, 8.5, 7.5, zv - period / 2, zv + period / 2), 25.0)


def _paint_ribs(canvas: Canvas, c: F64) -> None:
    a_c, b_c, y_c = 136.0, 88.0, 2.0
    region2d = canvas.region(c + (-a_c - 8, y_c - b_c - 8, 0.0), c + (a_c + 8, y_c + b_c + 8, 0.0))
    if region2d is None:
        return
    _, ys, xs = region2d
    x = canvas.axis_coords(0, xs)[None, :] - c[0]
    y = canvas.axis_coords(1, ys)[:, None] - c[1] - y_c
    ax = np.abs(x)
    theta = np.arctan2(ax, y)  # 0 posterior, pi anterior
    rho = np.hypot(ax, y)
    r_e = 1.0 / np.sqrt((np.sin(theta) / a_c) ** 2 + (np.cos(theta) / b_c) ** 2)
    d_rho = rho - r_e
    theta0, drop, radius = math.radians(24.0), 42.0, 5.5
    zc = canvas.axis_coords(2)
    for n in range(-1, 8):
        z_post = c[2] + 8.0 + 28.0 * n
        theta_max = math.radians({-1: 80.0, 0: 112.0, 1: 130.0}.get(n, 145.0))
        ring = (np.abs(d_rho) < radius + canvas.edge_mm) & (theta > theta0 - 0.1) & (
            theta < theta_max + 0.1
        )
        jj, ii = np.nonzero(ring)
        if jj.size == 0:
            continue
        th = theta[jj, ii]
        z_rib = z_post - drop * (th - theta0) / math.pi
        kk = np.nonzero((zc > z_rib.min() - radius - 3) & (zc < z_rib.max() + radius + 3))[0]
        if kk.size == 0:
            continue
        dz = zc[kk][:, None] - z_rib[None, :]
        dist = np.sqrt(d_rho[jj, ii][None, :] ** 2 + dz * dz)
        d_end = (np.maximum(theta0 - th, th - theta_max) * r_e[jj, ii])[None, :]
        rows, cols = jj + ys.start, ii + xs.start
        block = canvas.values[kk[0] : kk[-1] + 1, rows, cols]
        for r, hu in ((radius, 640.0), (radius - 2.0, 220.0)):
            alpha = canvas.alpha(np.maximum(dist - r, d_end))
            block += alpha * (np.float32(hu) - block)
        canvas.values[kk[0] : kk[-1] + 1, rows, cols] = block


def _paint_pelvis(canvas: Canvas, c: F64) -> None:
    for side in (-1.0, 1.0):  # iliac wings: flat, tilted shells
        rot = rot_z(side * 35.0) @ rot_y(side * 10.0)
        centre = c + (side * 88.0, 30.0, -168.0)
        shell(
            canvas,
            ellipsoid(canvas, centre, (10, 50, 50), rot),
            ellipsoid(canvas, centre, (7, 47, 47), rot),
            680.0,
            210.0,
        )
    rot = rot_x(25.0)
    shell(
        canvas,
        ellipsoid(canvas, c + (0, 75, -172), (40, 15, 42), rot),
        ellipsoid(canvas, c + (0, 75, -172), (37, 12, 39), rot),
        620.0,
        200.0,
    )  # sacrum


def _add_texture(canvas: Canvas, c: F64, seed: int) -> None:
    """Smooth random texture in soft tissue and fat (anatomy is never flat)."""
    region = canvas.region(c - (180.0, 125.0, 1e4), c + (180.0, 125.0, 1e4))
    if region is None:
        return
    rng = np.random.default_rng([seed, 31])
    fine = shapes.region_field(canvas, region, cell_mm=4.0, rng=rng)
    coarse = shapes.region_field(canvas, region, cell_mm=12.0, rng=rng)
    block = canvas.values[region]
    weight = np.clip(1.0 - (np.abs(block) - 150.0) / 100.0, 0.0, 1.0)
    block += weight * (10.0 * fine + 7.0 * coarse)


def _paint_bowel_gas(canvas: Canvas, c: F64, seed: int) -> None:
    rng = np.random.default_rng([seed, 41])
    for _ in range(16):
        centre = c + (rng.uniform(-85, 85), rng.uniform(-72, 5), rng.uniform(-165, -30))
        radii = rng.uniform(4.0, 13.0, size=3)
        rot = rot_z(rng.uniform(0, 180)) @ rot_x(rng.uniform(-40, 40))
        paint(canvas, ellipsoid(canvas, centre, radii, rot), AIR_HU)
