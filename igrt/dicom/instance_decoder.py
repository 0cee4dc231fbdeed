"""One image instance parsed and decoded once: its header checked, the geometry and rescale of
each frame, and its stored pixels (decompressed). :func:`igrt.dicom.series_loader.assemble`
turns a series' worth of these into a volume.

Nothing raises here: a problem is kept in the :class:`DecodedInstance` and raised by the
assembly, in the order a whole-series check would meet it (all headers first, then the series'
consistency, the geometry, the padding values, the pixels), so the error named is the same
whether the instances were decoded as they arrived (service) or all at once (offline).

Uncompressed little-endian pixel data is read straight from the buffer (with the unused high
bits masked or sign-extended as pydicom does); every other transfer syntax goes through
pydicom's decoders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from igrt.core.errors import (
    IgrtError,
    InvalidAttributeError,
    MissingAttributeError,
    NotCtError,
    UnreadableError,
)
from igrt.core.series import SliceGeometry
from igrt.dicom.file_pixels import PIXEL_DATA, FilePixels, file_pixels
from igrt.dicom.sop import IMAGE_SOP_CLASSES
from igrt.dicom.values import float_array, iso_datetime

#: Attributes every instance must carry, whatever its SOP class (checked in this order).
_REQUIRED_HEADER = (
    "SOPClassUID",
    "SOPInstanceUID",
    "Modality",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
)
#: Attributes that must be the same in every instance of one series.
SERIES_WIDE = (
    ("StudyInstanceUID", "Study Instance UIDs"),
    ("FrameOfReferenceUID", "Frame of Reference UIDs"),
    ("PatientID", "Patient IDs"),
    ("PatientPosition", "Patient Positions"),
    ("SOPClassUID", "SOP Classes"),
)
#: What a series' identity is read from (its first instance).
_IDENTITY = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
             "Modality", "SOPClassUID", "PatientPosition", "SeriesDescription", "PatientName")
#: Transfer syntaxes whose pixel data is the plain little-endian buffer once parsed.
_NATIVE_SYNTAXES = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian,
                              DeflatedExplicitVRLittleEndian})


@dataclass(frozen=True)
class Frame:
    """One slice: which frame of its instance, its geometry and rescale."""

    frame: int
    geometry: SliceGeometry
    slope: float
    intercept: float


@dataclass(frozen=True)
class DecodedInstance:
    """What the assembly of a series needs from one instance, read once.

    ``stored`` is ``(frames, rows, columns)`` of stored values; ``padding`` the inclusive range
    of stored values that mean "outside the reconstruction" (Pixel Padding Value/Range Limit),
    None when not declared. The ``*_error`` fields hold the first problem of each phase."""

    label: str
    sop_instance_uid: str
    series_uid: str
    series_wide: tuple[str, ...]
    identity: dict[str, str]
    acquired: str | None = None  # acquisition (else content) date and time, ISO 8601
    header_error: IgrtError | None = None
    frames: tuple[Frame, ...] = ()
    frames_error: IgrtError | None = None
    padding: tuple[int, int] | None = None
    padding_error: IgrtError | None = None
    stored: npt.NDArray[Any] | FilePixels | None = None  # FilePixels: still in the file
    pixel_error: IgrtError | None = None

    @property
    def nbytes(self) -> int:
        return int(self.stored.nbytes) if self.stored is not None else 0

    def stored_values(self) -> npt.NDArray[Any]:
        """``stored`` as an array (read from the file now when it was left there)."""
        if self.stored is None:
            raise ValueError(f"{self.label} has no decoded pixels")
        return self.stored.array() if isinstance(self.stored, FilePixels) else self.stored


def read_file(path: str | PathLike[str]) -> Dataset:
    """The whole data set of a file, or :class:`UnreadableError`."""
    try:
        return pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is "unreadable"
        raise UnreadableError(
            f"{path} is not a readable DICOM file: {type(exc).__name__}: {exc}"
        ) from exc


def decode_instance(ds: Dataset, n: int = 0) -> DecodedInstance:
    """Parse what the assembly needs out of ``ds`` (the ``n``-th instance given, which only
    names an instance that has no SOP Instance UID) and decode its pixels."""
    label = _label(ds, n)
    identity = {k: str(ds.get(k) or "") for k in _IDENTITY}
    base: dict[str, Any] = {
        "label": label,
        "sop_instance_uid": str(ds.get("SOPInstanceUID") or ""),
        "series_uid": str(ds.get("SeriesInstanceUID") or ""),
        "series_wide": tuple(str(ds.get(k) or "").strip() for k, _ in SERIES_WIDE),
        "identity": identity,
        "acquired": _acquired(ds),
    }
    try:
        _check_header(ds, label)
    except IgrtError as exc:
        return DecodedInstance(**base, header_error=exc)
    try:
        frames = _frames(ds, label)
    except IgrtError as exc:
        return DecodedInstance(**base, frames_error=exc)
    padding: tuple[int, int] | None = None
    padding_error: IgrtError | None = None
    try:
        padding = _padding_range(ds, label)
    except IgrtError as exc:
        padding_error = exc
    try:
        stored = _decode(ds, label, len(frames))
    except IgrtError as exc:
        return DecodedInstance(**base, frames=frames, padding=padding,
                               padding_error=padding_error, pixel_error=exc)
    return DecodedInstance(**base, frames=frames, padding=padding, padding_error=padding_error,
                           stored=stored)


# --- headers -------------------------------------------------------------------------------------
def _acquired(ds: Dataset) -> str | None:
    """The instance's acquisition (else content) date and time, ISO 8601."""
    offset = ds.get("TimezoneOffsetFromUTC")
    return (iso_datetime(ds.get("AcquisitionDateTime"), None, offset)
            or iso_datetime(ds.get("AcquisitionDate"), ds.get("AcquisitionTime"), offset)
            or iso_datetime(ds.get("ContentDate"), ds.get("ContentTime"), offset))


def _label(ds: Dataset, n: int) -> str:
    uid = str(ds.get("SOPInstanceUID") or "").strip()
    name = f"instance {uid}" if uid else f"instance #{n + 1} (no SOPInstanceUID)"
    number = ds.get("InstanceNumber")
    return f"{name} (InstanceNumber {number})" if number not in (None, "") else name


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() != ""
    if hasattr(value, "__len__"):  # bytes, MultiValue, Sequence
        return len(value) > 0
    return True


def _require(ds: Dataset, keyword: str, where: str) -> Any:
    value = ds.get(keyword)
    if not _present(value):
        raise MissingAttributeError(f"{keyword} is missing or empty in {where}")
    return value


def _has_pixel_data(ds: Dataset) -> bool:
    """Whether the data set has non-empty Pixel Data, without reading a deferred value."""
    element = ds.get_item(PIXEL_DATA, keep_deferred=True)
    if element is None:
        return False
    if element.value is None and isinstance(element, RawDataElement):
        return element.length not in (0, None)  # deferred: left in the file, length known
    return _present(element.value)


def _check_header(ds: Dataset, label: str) -> None:
    sop_class = ds.get("SOPClassUID")
    if _present(sop_class) and str(sop_class) not in IMAGE_SOP_CLASSES:
        name = UID(str(sop_class)).name
        raise NotCtError(
            f"{label} is a {name} ({sop_class}), not CT Image Storage or Enhanced CT Image Storage"
        )
    for keyword in _REQUIRED_HEADER:
        _require(ds, keyword, label)
    if str(ds.Modality).strip() != "CT":
        raise NotCtError(f"{label} has Modality {ds.Modality!r}; only CT images are accepted")
    for keyword in ("Rows", "Columns"):
        _require(ds, keyword, label)
    if not _has_pixel_data(ds):
        raise MissingAttributeError(f"PixelData is missing or empty in {label}")
    spp = int(ds.get("SamplesPerPixel") or 1)
    if spp != 1:
        raise InvalidAttributeError(f"{label} has SamplesPerPixel {spp}; CT must be greyscale (1)")


# --- geometry ------------------------------------------------------------------------------------
def _floats(value: Any, count: int, keyword: str, where: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in (value if hasattr(value, "__iter__") else [value]))
    except (TypeError, ValueError) as exc:
        raise InvalidAttributeError(f"{keyword} in {where} is not numeric: {value!r}") from exc
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise InvalidAttributeError(
            f"{keyword} in {where} must be {count} finite numbers, got {value!r}"
        )
    return values


def _numbers(src: Dataset, keyword: str, count: int, where: str) -> tuple[float, ...]:
    """``count`` finite decimal numbers of ``keyword``: parsed straight from the element's
    bytes when it is still raw (once per instance, the common case), else, or when anything
    is unusual, through pydicom (which then names the problem)."""
    fast = float_array(src, keyword)
    if fast is not None and len(fast) == count and bool(np.all(np.isfinite(fast))):
        return tuple(float(v) for v in fast)
    return _floats(_require(src, keyword, where), count, keyword, where)


def _slice_geometry(
    ipp_src: Dataset, iop_src: Dataset, ps_src: Dataset, ds: Dataset, where: str
) -> SliceGeometry:
    ipp = _numbers(ipp_src, "ImagePositionPatient", 3, where)
    iop = _numbers(iop_src, "ImageOrientationPatient", 6, where)
    ps = _numbers(ps_src, "PixelSpacing", 2, where)
    return SliceGeometry(
        position_mm=(ipp[0], ipp[1], ipp[2]),
        row_cosine=(iop[0], iop[1], iop[2]),
        column_cosine=(iop[3], iop[4], iop[5]),
        pixel_spacing_mm=(ps[0], ps[1]),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        instance_id=where,
    )


def _rescale(src: Dataset, where: str) -> tuple[float, float]:
    slope = _numbers(src, "RescaleSlope", 1, where)[0]
    intercept = _numbers(src, "RescaleIntercept", 1, where)[0]
    if slope == 0:
        raise InvalidAttributeError(f"RescaleSlope in {where} is 0")
    return slope, intercept


def _frames(ds: Dataset, label: str) -> tuple[Frame, ...]:
    if str(ds.SOPClassUID) == CTImageStorage:
        geometry = _slice_geometry(ds, ds, ds, ds, label)
        slope, intercept = _rescale(ds, label)
        return (Frame(0, geometry, slope, intercept),)
    n_frames = int(_require(ds, "NumberOfFrames", label))
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else Dataset()
    per_frame = _require(ds, "PerFrameFunctionalGroupsSequence", label)
    if len(per_frame) != n_frames:
        raise InvalidAttributeError(
            f"{label} has NumberOfFrames {n_frames} but {len(per_frame)} items in "
            "PerFrameFunctionalGroupsSequence"
        )
    out = []
    for f, item in enumerate(per_frame):
        where = f"frame {f + 1} of {label}"

        def group(keyword: str, item: Dataset = item, where: str = where) -> Dataset:
            for source in (item, shared):
                seq = source.get(keyword)
                if seq:
                    return seq[0]
            raise MissingAttributeError(
                f"{keyword} is missing from both the per-frame and the shared functional groups "
                f"of {where}"
            )

        geometry = _slice_geometry(
            group("PlanePositionSequence"),
            group("PlaneOrientationSequence"),
            group("PixelMeasuresSequence"),
            ds,
            where,
        )
        slope, intercept = _rescale(group("PixelValueTransformationSequence"), where)
        out.append(Frame(f, geometry, slope, intercept))
    return tuple(out)


# --- pixels --------------------------------------------------------------------------------------
def _decode(ds: Dataset, label: str, n_frames: int) -> npt.NDArray[Any] | FilePixels:
    shape = (n_frames, int(ds.Rows), int(ds.Columns))
    arr = _native(ds, shape, label)
    if arr is not None:
        return arr
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        decoded = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - missing plugin, corrupt stream, wrong length
        name = UID(str(syntax)).name if syntax else "unknown transfer syntax"
        raise UnreadableError(
            f"the pixel data of {label} ({name}) cannot be decoded: {type(exc).__name__}: {exc}"
        ) from exc
    if decoded.size != math.prod(shape):
        raise UnreadableError(
            f"the pixel data of {label} decodes to shape {decoded.shape}, expected {shape} "
            "(frames, rows, columns)"
        )
    return np.asarray(decoded).reshape(shape)


def _native(ds: Dataset, shape: tuple[int, int, int], label: str
            ) -> npt.NDArray[Any] | FilePixels | None:
    """Uncompressed little-endian greyscale pixels straight from the buffer (or where they lie
    in the file, when the read left them there: :mod:`igrt.dicom.file_pixels`), or None when the
    data set needs pydicom's decoders (or is malformed: they name the problem)."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    bits = ds.get("BitsAllocated")
    stored_bits = ds.get("BitsStored")
    representation = ds.get("PixelRepresentation")
    if (syntax not in _NATIVE_SYNTAXES or bits not in (8, 16, 32)
            or not isinstance(stored_bits, int) or not 0 < stored_bits <= bits
            or representation not in (0, 1)):
        return None
    count = math.prod(shape)
    dtype = np.dtype(f"<{'i' if representation == 1 else 'u'}{bits // 8}")
    in_file = file_pixels(ds, dtype, shape, stored_bits, label)
    if in_file is not None:
        return in_file
    data = _pixel_data(ds)
    if not isinstance(data, bytes) or len(data) < count * bits // 8:
        return None
    arr = np.frombuffer(data, dtype=dtype, count=count).reshape(shape)
    if stored_bits < bits:  # unused high bits: masked (unsigned) or sign-extended (signed)
        shift = bits - stored_bits
        arr = np.right_shift(np.left_shift(arr, shift), shift)
    return arr


def _pixel_data(ds: Dataset) -> Any:
    """The Pixel Data value (a deferred value is read now); None when it cannot be read."""
    try:
        return ds.PixelData
    except Exception:  # noqa: BLE001 - the decoders' read then names the problem
        return None


def _padding_range(ds: Dataset, label: str) -> tuple[int, int] | None:
    value = ds.get("PixelPaddingValue")
    if not _present(value):
        return None
    lo = _stored_int(ds, value, "PixelPaddingValue", label)
    limit = ds.get("PixelPaddingRangeLimit")
    hi = lo if not _present(limit) else _stored_int(ds, limit, "PixelPaddingRangeLimit", label)
    return (min(lo, hi), max(lo, hi))


def _stored_int(ds: Dataset, value: Any, keyword: str, label: str) -> int:
    """A padding value as a stored pixel value, reinterpreting a US-encoded negative."""
    if isinstance(value, bytes):  # unresolved "US or SS" read without Pixel Representation
        signed = int(ds.get("PixelRepresentation") or 0) == 1
        return int.from_bytes(value[:2], "little", signed=signed)
    number = int(_floats(value, 1, keyword, label)[0])
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation") or 0) == 1 and 2 ** (bits - 1) <= number < 2**bits:
        number -= 2**bits  # two's complement written with VR US
    return number
