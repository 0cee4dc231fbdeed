"""Simulated CBCT acquisition of a phantom at a known couch correction.

Geometry (binding, see ``igrt.core.geometry``): the CBCT has a nominal map ``N`` (CBCT point -> room
point at the nominal setup) chosen by ``frame``; for the correction ``C`` (room-frame couch
motion) the CBCT voxel at CBCT point ``c`` shows the truth anatomy at planning point ``T(c)`` with
``T = registration_for_correction(C, N, iso)``. The treatment couch is drawn in room coordinates
``N(c)`` and does not move with the correction. Degradations are applied afterwards, seeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from scipy import ndimage

from igrt.core.geometry import PatientPosition, translation
from igrt.core.types import BoolArray
from igrt.core.types import Float32Array as F32
from igrt.core.types import FloatArray as F64
from phantoms import anatomy, artefacts, couch
from phantoms.anatomy import PhantomModel

FRAMES = ("planning", "origin", "center", "sro")

#: Scanner axes per patient position: columns are the LPS directions of the column (i), row (j)
#: and slice (k) index axes (ImageOrientationPatient as a real scanner writes it).
SCANNER_DIRECTION: dict[PatientPosition, F64] = {
    PatientPosition.HFS: np.diag([1.0, 1.0, 1.0]),
    PatientPosition.FFS: np.diag([-1.0, 1.0, -1.0]),
    PatientPosition.HFP: np.diag([-1.0, -1.0, 1.0]),
    PatientPosition.FFP: np.diag([1.0, -1.0, -1.0]),
}

#: Machine isocentre in CBCT coordinates for the frames that do not fix it by convention
#: ("center": arbitrary table coordinates, iso at the volume centre; "sro": arbitrary origin).
CENTER_FRAME_ISOCENTER_MM = (-4.2, 13.6, 1027.5)
SRO_FRAME_ISOCENTER_MM = (25.0, -110.5, -642.0)


@dataclass(frozen=True)
class CbctGridSpec:
    size_ijk: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    fov_radius_mm: float


CBCT_GRIDS: dict[str, CbctGridSpec] = {
    "full": CbctGridSpec((512, 512, 90), (0.9, 0.9, 2.0), 230.0),
    "small": CbctGridSpec((160, 160, 48), (2.8, 2.8, 3.5), 222.0),
}
CBCT_GRIDS["hires"] = CBCT_GRIDS["full"]  # a high-resolution planning CT, the same CBCT
CBCT_GRIDS["hires-small"] = CBCT_GRIDS["small"]


@dataclass(frozen=True)
class CbctGeometry:
    """The CBCT voxel grid (ITK convention) and its nominal map ``N``."""

    size_ijk: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: F64
    machine_isocenter_mm: tuple[float, float, float]  # in CBCT coordinates: N^-1(0)
    nominal: F64  # 4x4, CBCT point -> room point
    fov_radius_mm: float = 222.0  # reconstructed field of view (the grid's)

    def axis_coords(self, axis: int) -> F64:
        """LPS coordinate along ``axis`` of each index along that (diagonal) scanner axis."""
        sign = self.direction[axis, axis]
        n = self.size_ijk[axis]
        return self.origin_mm[axis] + sign * self.spacing_mm[axis] * np.arange(n, dtype=np.float64)

    def reference_image(self) -> sitk.Image:
        ref = sitk.Image(list(self.size_ijk), sitk.sitkFloat32)
        ref.SetOrigin(self.origin_mm)
        ref.SetSpacing(self.spacing_mm)
        ref.SetDirection(tuple(float(v) for v in self.direction.ravel()))
        return ref


def cbct_geometry(
    size: str, position: PatientPosition, frame: str, isocenter_mm: npt.ArrayLike,
    grid: CbctGridSpec | None = None,
) -> CbctGeometry:
    """Grid centred on the machine isocentre, oriented as the scanner writes it for ``position``.

    ``planning``: CBCT coordinates are planning coordinates, machine iso = plan iso;
    ``origin``: machine iso at (0, 0, 0); ``center`` and ``sro``: machine iso at fixed arbitrary
    coordinates (for ``center`` it is the volume centre, for ``sro`` the SRO says where it is).
    """
    if frame not in FRAMES:
        raise ValueError(f"unknown CBCT frame {frame!r}: expected one of {', '.join(FRAMES)}")
    spec = grid or CBCT_GRIDS[size]
    if frame == "planning":
        q = np.asarray(isocenter_mm, dtype=np.float64)
    elif frame == "origin":
        q = np.zeros(3)
    elif frame == "center":
        q = np.asarray(CENTER_FRAME_ISOCENTER_MM)
    else:
        q = np.asarray(SRO_FRAME_ISOCENTER_MM)
    direction = SCANNER_DIRECTION[position]
    half = np.asarray(spec.spacing_mm) * (np.asarray(spec.size_ijk) - 1) / 2.0
    origin = q - direction @ half
    return CbctGeometry(
        size_ijk=spec.size_ijk,
        spacing_mm=spec.spacing_mm,
        origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=direction,
        machine_isocenter_mm=(float(q[0]), float(q[1]), float(q[2])),
        nominal=translation(-q),
        fov_radius_mm=spec.fov_radius_mm,
    )


@dataclass(frozen=True)
class Degradation:
    """Image-quality knobs of the simulated CBCT (all HU in calibrated planning HU)."""

    noise_hu: float = 30.0  # white Gaussian noise (standard deviation)
    blur_sigma_mm: float = 0.8  # Gaussian blur
    hu_scale: float = 0.9  # uncalibrated HU: v' = hu_scale * v + hu_offset
    hu_offset: float = -60.0
    cupping_hu: float = 40.0  # darker in the centre, parabolic in the radius
    cupping_radius_mm: float | None = None  # radius where the cupping reaches 0 (None: FOV's)
    streaks_hu: float = 0.0  # amplitude of straight streaks (0: none)
    dense_streaks_hu: float = 0.0  # streaks from dense inserts (phantoms.artefacts)
    rings_hu: float = 0.0  # ring artefacts about the rotation axis (phantoms.artefacts)
    fov_radius_mm: float | None = None  # None: the size's default
    fov_length_mm: float | None = None  # None: the whole grid
    padding_hu: float = -3024.0  # outside the FOV, written as PixelPaddingValue
    outside_hu: float = -1000.0  # outside the FOV when no PixelPaddingValue is written
    treatment_couch: bool = True

    @classmethod
    def ideal(cls) -> Degradation:
        """No image degradation (the FOV cylinder and the treatment couch remain)."""
        return cls(noise_hu=0.0, blur_sigma_mm=0.0, hu_scale=1.0, hu_offset=0.0, cupping_hu=0.0)


def _affine(matrix: F64) -> sitk.AffineTransform:
    t = sitk.AffineTransform(3)
    t.SetMatrix(tuple(float(v) for v in matrix[:3, :3].ravel()))
    t.SetTranslation(tuple(float(v) for v in matrix[:3, 3]))
    return t


def _resample(truth: sitk.Image, geom: CbctGeometry, transform: sitk.Transform) -> F32:
    out = sitk.Resample(
        truth, geom.reference_image(), transform, sitk.sitkLinear, anatomy.AIR_HU, sitk.sitkFloat32
    )
    return np.asarray(sitk.GetArrayFromImage(out), dtype=np.float32)


def _deformation(
    rigid_hu: F32, geom: CbctGeometry, deform_mm: float, rng: np.random.Generator
) -> sitk.Transform:
    """Smooth displacement field (CBCT space) of peak ``deform_mm``, zero on and near bone and
    zero-mean over the anatomy, on a coarse (~4 mm) grid."""
    cell = 4.0
    ref = geom.reference_image()
    extent = np.asarray(geom.spacing_mm) * (np.asarray(geom.size_ijk) - 1)
    n = [int(math.ceil(e / cell)) + 1 for e in extent]
    coarse = sitk.Image(n, sitk.sitkFloat32)
    coarse.SetOrigin(geom.origin_mm)
    coarse.SetSpacing((cell, cell, cell))
    coarse.SetDirection(ref.GetDirection())
    fine = sitk.GetImageFromArray(rigid_hu)
    fine.CopyInformation(ref)
    bone = sitk.Resample(fine > 250.0, coarse, sitk.Transform(), sitk.sitkLinear, 0.0,
                         sitk.sitkFloat32)
    body = sitk.Resample(fine > -500.0, coarse, sitk.Transform(), sitk.sitkLinear, 0.0,
                         sitk.sitkFloat32)
    bone_mask = ndimage.binary_dilation(sitk.GetArrayFromImage(bone) > 0.0, iterations=1)
    weight = np.clip(ndimage.distance_transform_edt(~bone_mask) * cell / 10.0, 0.0, 1.0)
    shape = tuple(n[::-1])
    u = np.stack(
        [ndimage.gaussian_filter(rng.standard_normal(shape), 6.0, mode="nearest") for _ in "xyz"],
        axis=-1,
    )
    u *= deform_mm / max(float(np.linalg.norm(u, axis=-1).max()), 1e-9)
    inside = sitk.GetArrayFromImage(body) > 0.5
    w = weight * inside
    mean = (w[..., None] * u).sum(axis=(0, 1, 2)) / max(float(w.sum()), 1e-9)
    disp = weight[..., None] * (u - mean)
    field_image = sitk.GetImageFromArray(disp.astype(np.float64), isVector=True)
    field_image.CopyInformation(coarse)
    return sitk.DisplacementFieldTransform(field_image)


def _streaks(geom: CbctGeometry, amplitude_hu: float, rng: np.random.Generator) -> F32:
    x = geom.axis_coords(0)[None, :] - geom.machine_isocenter_mm[0]
    y = geom.axis_coords(1)[:, None] - geom.machine_isocenter_mm[1]
    pattern = np.zeros((y.shape[0], x.shape[1]))
    for n in range(8):
        px, py = rng.uniform(-60.0, 60.0, size=2)
        angle = rng.uniform(0.0, math.pi)
        dist = np.abs((x - px) * math.sin(angle) - (y - py) * math.cos(angle))
        pattern += (-1.0) ** n * np.exp(-0.5 * (dist / 1.5) ** 2)
    per_slice = rng.uniform(0.3, 1.0, size=geom.size_ijk[2])
    return (amplitude_hu * per_slice[:, None, None] * pattern[None]).astype(np.float32)


def simulate(
    truth: sitk.Image,
    geom: CbctGeometry,
    registration: F64,
    *,
    model: PhantomModel,
    position: PatientPosition,
    isocenter_mm: npt.ArrayLike,
    degradation: Degradation,
    size: str,
    seed: int,
    deform_mm: float = 0.0,
) -> tuple[F32, BoolArray]:
    """CBCT HU voxels ``[k, j, i]`` and the outside-FOV mask.

    ``registration`` is ``T`` (CBCT point -> planning point); ``truth`` is the anatomy (no couch)
    in planning coordinates.
    """
    if not np.allclose(geom.nominal[:3, :3], np.eye(3)):
        raise ValueError("the simulated CBCT frames have translation-only nominal maps")
    rng = np.random.default_rng([seed, 1001])
    rigid = _affine(registration)
    hu = _resample(truth, geom, rigid)
    if deform_mm > 0.0:
        deformed = sitk.CompositeTransform([rigid, _deformation(hu, geom, deform_mm, rng)])
        hu = _resample(truth, geom, deformed)  # composite applies the displacement first
    iso_cbct = np.asarray(geom.machine_isocenter_mm)
    x_room = geom.axis_coords(0)[None, :] - iso_cbct[0]  # room = N(c) = c - iso_cbct
    y_room = geom.axis_coords(1)[:, None] - iso_cbct[1]
    z_room = geom.axis_coords(2) - iso_cbct[2]
    if degradation.treatment_couch:
        down = couch.down_lps(position)
        top = float((np.asarray(model.center_mm) - np.asarray(isocenter_mm)) @ down)
        top += model.half_height_mm + couch.TREATMENT_COUCH_GAP_MM
        alpha, couch_hu = couch.treatment_couch(
            x_room, y_room * down[1], top, edge_mm=min(geom.spacing_mm[:2])
        )
        couch.composite_over_air(hu, alpha, couch_hu)
    radius = degradation.fov_radius_mm or geom.fov_radius_mm
    rho = np.hypot(x_room, y_room)
    streaks = None
    if degradation.dense_streaks_hu:
        streaks = artefacts.dense_streaks(hu, x_room, y_room, degradation.dense_streaks_hu, rng)
    if degradation.blur_sigma_mm > 0.0:
        image = sitk.GetImageFromArray(hu)
        image.CopyInformation(geom.reference_image())
        variance = [degradation.blur_sigma_mm**2] * 3
        image = sitk.DiscreteGaussian(image, variance, 32, 0.01, True)
        hu = np.asarray(sitk.GetArrayFromImage(image), dtype=np.float32)
    hu *= np.float32(degradation.hu_scale)
    hu += np.float32(degradation.hu_offset)
    if degradation.cupping_hu:
        cup_radius = degradation.cupping_radius_mm or radius
        cup = degradation.cupping_hu * np.clip(1.0 - (rho / cup_radius) ** 2, 0.0, 1.0)
        hu -= cup.astype(np.float32)[None]
    if streaks is not None:
        hu += streaks
    if degradation.rings_hu:
        hu += artefacts.rings(rho, degradation.rings_hu, rng)[None]
    if degradation.streaks_hu:
        hu += _streaks(geom, degradation.streaks_hu, rng)
    if degradation.noise_hu > 0.0:
        hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(degradation.noise_hu)
    outside = np.broadcast_to(rho[None] > radius, hu.shape).copy()
    if degradation.fov_length_mm is not None:
        outside |= (np.abs(z_room) > degradation.fov_length_mm / 2.0)[:, None, None]
    return hu, outside
