"""DICOM adapter for series assembly: decoded instances -> ``igrt.core.series`` -> ``Volume``.

Each instance is parsed and decoded once (:mod:`igrt.dicom.instance_decoder`), offline when a
directory is read, in the service as each instance arrives; :func:`assemble` checks that the
instances form one series and a regular volume (the geometry decision is the pure
:func:`igrt.core.series.stack_geometry`) and rescales the stored values into it. Supported: CT
Image Storage (one slice per instance) and Enhanced CT Image Storage (multi-frame, geometry and
rescale in the per-frame or shared functional groups), in any transfer syntax pydicom can decode
with the installed plugins (JPEG lossless, JPEG-LS and JPEG 2000 via pylibjpeg, RLE natively).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from os import PathLike
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from igrt.core.errors import (
    DuplicateSliceError,
    InvalidAttributeError,
    MixedSeriesError,
    SeriesError,
)
from igrt.core.image_series import ImageSeries, SeriesInfo
from igrt.core.series import StackGeometry, stack_geometry
from igrt.core.volume import Volume, index_box
from igrt.dicom.instance_decoder import (
    SERIES_WIDE,
    DecodedInstance,
    Frame,
    decode_instance,
    read_file,
)

__all__ = ["ImageSeries", "InvalidAttributeError", "assemble", "load_series",
           "load_series_files"]

logger = logging.getLogger(__name__)


#: An LPS-aligned box (centre, size in mm): the part of a series' volume that is wanted.
Around = tuple[npt.ArrayLike, npt.ArrayLike]
#: Where the assembled arrays are written: given the volume's shape (k, j, i) and whether a
#: padding mask is needed, an empty float32 array of that shape and a bool one of zeros (or
#: None).
Allocate = Callable[[tuple[int, int, int], bool],
                    tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_] | None]]


def load_series_files(paths: Iterable[str | PathLike[str]], *,
                      around_mm: Around | None = None) -> ImageSeries:
    """Read the files (each parsed once, pixels included) and :func:`assemble` them."""
    return assemble([decode_instance(read_file(path), n) for n, path in enumerate(paths)],
                    around_mm=around_mm)


def load_series(datasets: Sequence[Dataset], *, around_mm: Around | None = None) -> ImageSeries:
    """Assemble CT (single-frame) or Enhanced CT (multi-frame) instances of one series.

    Raises the specific ``igrt.core.errors.SeriesError`` subclass: NotCtError, MissingAttributeError
    (or :class:`InvalidAttributeError`), MixedSeriesError, DuplicateSliceError, MissingSliceError,
    IrregularSpacingError, GantryTiltError, UnreadableError, or those of ``igrt.core.series``.
    """
    return assemble([decode_instance(ds, n) for n, ds in enumerate(datasets)],
                    around_mm=around_mm)


def assemble(instances: Sequence[DecodedInstance], *, around_mm: Around | None = None,
             allocate: Allocate | None = None) -> ImageSeries:
    """The volume of decoded instances (see :func:`load_series` for what it refuses). With
    ``around_mm`` only the voxels of that box are rescaled and returned (the whole series is
    checked all the same): a planning CT is only ever used around its isocentre. ``allocate``
    gives the arrays to write into (default: new ones), once every check has passed."""
    if not instances:
        raise SeriesError("no instances were given: a series needs at least two CT slices")
    for instance in instances:
        if instance.header_error is not None:
            raise instance.header_error
    _check_one_series(instances)
    for instance in instances:
        if instance.frames_error is not None:
            raise instance.frames_error
    slices = [(n, frame) for n, instance in enumerate(instances) for frame in instance.frames]
    stack = stack_geometry([frame.geometry for _, frame in slices])
    for instance in instances:
        if instance.padding_error is not None:
            raise instance.padding_error
    for instance in instances:
        if instance.pixel_error is not None:
            raise instance.pixel_error
    ni, nj, nk = stack.size_ijk
    box = ((slice(0, nk), slice(0, nj), slice(0, ni)) if around_mm is None else
           index_box(stack.origin_mm, stack.spacing_mm, stack.direction, stack.size_ijk,
                     around_mm[0], around_mm[1]))
    if any(b.stop - b.start < 1 for b in box):
        raise SeriesError(f"series {instances[0].series_uid} does not reach the region around "
                          f"{np.round(np.asarray(around_mm[0] if around_mm else 0), 1)} mm")
    voxels, mask = _pixels(instances, slices, stack, box, allocate or _new_arrays)
    start = (box[2].start, box[1].start, box[0].start)
    origin = np.asarray(stack.origin_mm) + stack.direction @ (np.asarray(start) *
                                                              np.asarray(stack.spacing_mm))

    identity = instances[0].identity
    instance_uids = tuple(dict.fromkeys(instances[slices[k][0]].sop_instance_uid
                                        for k in stack.order))
    position = identity["PatientPosition"].strip() or None
    info = SeriesInfo(
        patient_id=identity["PatientID"],
        study_uid=identity["StudyInstanceUID"],
        series_uid=identity["SeriesInstanceUID"],
        frame_of_reference_uid=identity["FrameOfReferenceUID"],
        modality=identity["Modality"],
        sop_class_uid=identity["SOPClassUID"],
        patient_position=position,
        series_description=identity["SeriesDescription"],
        n_instances=len(instances),
        instance_uids=instance_uids,
        patient_name=identity["PatientName"],
        acquisition_datetime=min((i.acquired for i in instances if i.acquired is not None),
                                 default=None),
    )
    volume = Volume(
        voxels=voxels,
        origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
        spacing_mm=stack.spacing_mm,
        direction=stack.direction,
    )
    logger.info(
        "assembled series %s: %d instances, %d x %d x %d voxels, spacing %s mm%s",
        info.series_uid,
        info.n_instances,
        *stack.size_ijk,
        tuple(round(s, 4) for s in stack.spacing_mm),
        "" if around_mm is None else f" (kept {volume.shape_ijk} around the isocentre)",
    )
    return ImageSeries(info=info, volume=volume, padding_mask=mask)


def _instances(n: int) -> str:
    return f"{n} instance{'' if n == 1 else 's'}"


def _check_one_series(instances: Sequence[DecodedInstance]) -> None:
    series = Counter(i.series_uid for i in instances)
    if len(series) > 1:
        listed = ", ".join(f"{uid} ({_instances(n)})" for uid, n in series.most_common())
        raise MixedSeriesError(f"the instances belong to {len(series)} series: {listed}")
    uid = next(iter(series))
    for position, (_, what) in enumerate(SERIES_WIDE):
        values = Counter(i.series_wide[position] for i in instances)
        if len(values) > 1:
            listed = ", ".join(
                f"{v or '(empty)'} ({_instances(n)})" for v, n in values.most_common()
            )
            raise MixedSeriesError(f"series {uid} mixes {len(values)} {what}: {listed}")
    sops = Counter(i.sop_instance_uid for i in instances)
    twice = [sop for sop, n in sops.items() if n > 1]
    if twice:
        raise DuplicateSliceError(
            f"series {uid}: instance {twice[0]} was given {sops[twice[0]]} times"
            + (f" ({len(twice)} instances given more than once)" if len(twice) > 1 else "")
        )


def _new_arrays(shape: tuple[int, int, int], padded: bool
                ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_] | None]:
    return np.empty(shape, dtype=np.float32), np.zeros(shape, dtype=bool) if padded else None


def _pixels(
    instances: Sequence[DecodedInstance],
    slices: Sequence[tuple[int, Frame]],
    stack: StackGeometry,
    box: tuple[slice, slice, slice],
    allocate: Allocate,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_] | None]:
    rows, columns = box[1], box[2]
    shape = (box[0].stop - box[0].start, box[1].stop - box[1].start, box[2].stop - box[2].start)
    padded = any(i.padding is not None for i in instances)
    voxels, mask = allocate(shape, padded)
    if voxels.shape != shape or voxels.dtype != np.float32 or (mask is None) == padded or (
            mask is not None and (mask.shape != shape or mask.dtype != np.bool_)):
        raise TypeError(f"arrays given for a {shape} volume (padding mask: {padded}): "
                        f"{voxels.dtype} {voxels.shape}, "
                        f"{'none' if mask is None else f'{mask.dtype} {mask.shape}'}")
    # one instance's values at a time (a file left mapped: this one's and the last one's only)
    held: tuple[int, npt.NDArray[Any]] | None = None
    for k, n in enumerate(stack.order[box[0]]):
        number, frame = slices[n]
        instance = instances[number]
        if held is None or held[0] != number:
            held = (number, instance.stored_values())
        stored = held[1][frame.frame][rows, columns]
        # float32 throughout: stored CT values (<= 16 bits) are exact in float32.
        if frame.slope == 1.0:
            np.add(stored, np.float32(frame.intercept), out=voxels[k], dtype=np.float32)
        else:
            np.multiply(stored, np.float32(frame.slope), out=voxels[k], dtype=np.float32)
            voxels[k] += np.float32(frame.intercept)
        pad = instance.padding
        if mask is not None and pad is not None:
            if pad[0] == pad[1]:
                np.equal(stored, pad[0], out=mask[k])
            else:
                np.logical_and(stored >= pad[0], stored <= pad[1], out=mask[k])
    return voxels, mask

