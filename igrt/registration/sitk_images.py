"""Conversions between igrt Volumes / 4x4 transforms and SimpleITK objects."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from igrt.core.types import BoolArray, FloatArray
from igrt.core.volume import Volume


class _HeldBuffer:
    """A SimpleITK image's pixel buffer as NumPy's array interface, holding the image: an array
    made from it (and every view of that array) is the buffer's owner's owner, so the image
    lives as long as any of them."""

    def __init__(self, image: sitk.Image) -> None:
        self.image = image
        self.__array_interface__ = sitk.GetArrayViewFromImage(image).__array_interface__


def array_view(image: sitk.Image) -> npt.NDArray[Any]:
    """The pixels of ``image`` as a NumPy array (z, y, x) without a copy, that keeps ``image``
    alive. ``sitk.GetArrayViewFromImage`` alone does not: its view reads freed memory once the
    image is collected (a segfault, or worse, wrong values), e.g. a filter's temporary output or
    an image owned by an object the caller has let go of."""
    return np.asarray(_HeldBuffer(image))


def to_sitk(volume: Volume) -> sitk.Image:
    image = sitk.GetImageFromArray(np.asarray(volume.voxels, dtype=np.float32))
    set_geometry(image, volume)
    return image


def mask_to_sitk(mask: BoolArray, volume: Volume) -> sitk.Image:
    # read as bytes (a bool is one byte, 0 or 1), copied once by SimpleITK
    image = sitk.GetImageFromArray(np.ascontiguousarray(mask, dtype=np.bool_).view(np.uint8))
    set_geometry(image, volume)
    return image


def set_geometry(image: sitk.Image, volume: Volume) -> None:
    image.SetOrigin(tuple(float(v) for v in volume.origin_mm))
    image.SetSpacing(tuple(float(v) for v in volume.spacing_mm))
    image.SetDirection(tuple(float(v) for v in np.asarray(volume.direction).ravel()))


def euler_from_matrix(matrix: FloatArray, center_mm: FloatArray) -> sitk.Euler3DTransform:
    """An Euler3DTransform about ``center_mm`` equal to the rigid 4x4 ``matrix``."""
    t = sitk.Euler3DTransform()
    t.SetCenter(tuple(float(v) for v in center_mm))
    r = matrix[:3, :3]
    t.SetMatrix(tuple(float(v) for v in r.ravel()))
    # p' = R (p - c) + c + t  ==  R p + m  =>  t = m - c + R c
    c = np.asarray(center_mm, dtype=np.float64)
    t.SetTranslation(tuple(float(v) for v in matrix[:3, 3] - c + r @ c))
    return t


def matrix_from_transform(transform: sitk.Transform) -> FloatArray:
    """The 4x4 matrix of an affine-family SimpleITK transform (evaluated on a basis: exact)."""
    origin = np.array(transform.TransformPoint((0.0, 0.0, 0.0)))
    out = np.eye(4)
    for axis in range(3):
        e = [0.0, 0.0, 0.0]
        e[axis] = 1.0
        out[:3, axis] = np.array(transform.TransformPoint(tuple(e))) - origin
    out[:3, 3] = origin
    return out
