"""Anatomy variants for adversarial cases: what a CBCT shows when it is not simply the planned
patient at a couch offset.

* ``anatomy="other"``: another body under the same Patient ID: the soft tissue of another seed,
  the torso 8 % wider and 8 % flatter, the spine and everything along it 18 % longer (vertebrae
  33 mm apart instead of 28 mm), about the body centre.
* ``anatomy="mirrored"``: the planned body mirrored left-right about its midline (the spine
  still lines up; heart, liver, stomach and bowel do not).
* ``body_inset_mm``: weight loss: the body contour that much smaller on every slice (the outer
  layer of soft tissue becomes air; bones and organs are where they were).
* ``metal``: two titanium rods beside the spine (spinal fixation), 6 mm thick, 100 mm long,
  centred on the isocentre level; in the planning CT as in the CBCT when the planning set was
  written with them.

Every variant is a function of the truth image (planning coordinates, identity direction) and
is cached per arguments, like the truth itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from igrt.core.types import Float32Array as F32
from phantoms import anatomy

ANATOMIES = ("same", "other", "mirrored")
#: Another body: scale about the body centre (lateral, anterior-posterior, longitudinal).
OTHER_BODY_SCALE = (1.08, 0.92, 1.18)
OTHER_BODY_SEED_OFFSET = 1000
METAL_HU = 3071.0  # the top of the 12-bit CT range: titanium saturates it
METAL_RADIUS_MM = 3.0
METAL_HALF_LENGTH_MM = 50.0
METAL_OFFSET_X_MM = 22.0  # either side of the midline
METAL_OFFSET_Y_MM = 24.0  # posterior of the vertebral body centre
BODY_THRESHOLD_HU = -400.0


@dataclass(frozen=True)
class Variant:
    """What the imaged anatomy differs in from the planned phantom (the default: nothing)."""

    anatomy: str = "same"
    body_inset_mm: float = 0.0
    metal: bool = False

    def __post_init__(self) -> None:
        if self.anatomy not in ANATOMIES:
            raise ValueError(f"unknown anatomy {self.anatomy!r}: expected one of "
                             f"{', '.join(ANATOMIES)}")
        if not 0.0 <= self.body_inset_mm <= 40.0:
            raise ValueError(f"body_inset_mm {self.body_inset_mm} is outside 0 to 40 mm")

    @property
    def is_plain(self) -> bool:
        return self == Variant()


def apply(truth: sitk.Image, variant: Variant, *, model: anatomy.PhantomModel,
          isocenter_mm: tuple[float, float, float], other: sitk.Image | None = None
          ) -> sitk.Image:
    """The truth image of ``variant``. ``other``: the truth of another seed (``anatomy="other"``
    takes its soft tissue)."""
    image = truth
    if variant.anatomy == "other":
        if other is None:
            raise ValueError("anatomy 'other' needs the truth of another seed")
        image = _scaled(other, model.center_mm, OTHER_BODY_SCALE)
    elif variant.anatomy == "mirrored":
        image = _scaled(truth, model.center_mm, (-1.0, 1.0, 1.0))
    if variant.body_inset_mm > 0.0 or variant.metal:
        values = np.array(sitk.GetArrayFromImage(image), dtype=np.float32)
        if variant.body_inset_mm > 0.0:
            _shrink_body(values, image.GetSpacing(), variant.body_inset_mm)
        if variant.metal:
            _paint_rods(values, image, model, isocenter_mm)
        out = sitk.GetImageFromArray(values)
        out.CopyInformation(image)
        image = out
    return image


def _scaled(image: sitk.Image, center_mm: tuple[float, float, float],
            scale: tuple[float, float, float]) -> sitk.Image:
    """The image whose point ``c + S (p - c)`` shows what ``image`` shows at ``p``."""
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in np.diag([1.0 / s for s in scale]).ravel()))
    transform.SetCenter(tuple(float(v) for v in center_mm))
    return sitk.Resample(image, image, transform, sitk.sitkLinear, anatomy.AIR_HU,
                         sitk.sitkFloat32)


def _shrink_body(values: F32, spacing: tuple[float, ...], inset_mm: float) -> None:
    """Air in the outer ``inset_mm`` of the body on every slice (in place, ``[z, y, x]``)."""
    sampling = (float(spacing[1]), float(spacing[0]))
    for k in range(values.shape[0]):
        body = ndimage.binary_fill_holes(values[k] > BODY_THRESHOLD_HU)
        if body is None or not body.any():
            continue
        depth = ndimage.distance_transform_edt(body, sampling=sampling)
        values[k][body & (depth <= inset_mm)] = anatomy.AIR_HU


def _paint_rods(values: F32, image: sitk.Image, model: anatomy.PhantomModel,
                isocenter_mm: tuple[float, float, float]) -> None:
    """Two rods along z beside the spine, in place (``[z, y, x]``)."""
    origin = np.asarray(image.GetOrigin())
    spacing = np.asarray(image.GetSpacing())
    nz, ny, nx = values.shape
    x = origin[0] + spacing[0] * np.arange(nx)
    y = origin[1] + spacing[1] * np.arange(ny)
    z = origin[2] + spacing[2] * np.arange(nz)
    along = np.abs(z - isocenter_mm[2]) <= METAL_HALF_LENGTH_MM
    cy = anatomy.spine_center_y(isocenter_mm[2]) + METAL_OFFSET_Y_MM
    rods = np.zeros((ny, nx), dtype=bool)
    for side in (-1.0, 1.0):
        cx = model.center_mm[0] + side * METAL_OFFSET_X_MM
        rods |= (x[None, :] - cx) ** 2 + (y[:, None] - cy) ** 2 <= METAL_RADIUS_MM ** 2
    values[along] = np.where(rods[None], np.float32(METAL_HU), values[along])
