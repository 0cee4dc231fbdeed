"""Native pixel data left in its file by the read (``pydicom.dcmread(..., defer_size=)``), read
when a series is assembled, one file at a time, from the page cache's pages (a read-only memory
map, not a copy).

Between the read of a file's header and the read of its pixels the file could change: each read
checks that it is the file whose header was read (its modification time, the Pixel Data
element's tag and length at the place the header gave) and refuses otherwise, naming the file,
rather than pairing one version's header with another's pixels.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from igrt.core.errors import UnreadableError

#: (7FE0,0010) Pixel Data, and as the first four bytes of its element (little endian)
PIXEL_DATA = 0x7FE00010
_TAG = struct.pack("<HH", PIXEL_DATA >> 16, PIXEL_DATA & 0xFFFF)
_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class FilePixels:
    """Where an instance's stored pixel values lie in its file, and what they are."""

    path: str
    offset: int
    length: int  # the element's value length, as the header gave it
    implicit_vr: bool
    mtime: float  # the file's modification time when its header was read
    dtype: np.dtype[Any]
    shape: tuple[int, int, int]  # frames, rows, columns
    stored_bits: int
    label: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def array(self) -> npt.NDArray[Any]:
        """The stored values (unused high bits masked, or sign-extended), mapped from the file;
        :class:`UnreadableError` when the file is no longer the one whose header was read."""
        try:
            with open(self.path, "rb") as fh:
                self._check(fh)
                arr: npt.NDArray[Any] = np.memmap(fh, dtype=self.dtype, mode="r",
                                                  offset=self.offset, shape=self.shape)
        except OSError as exc:
            raise UnreadableError(f"the pixel data of {self.label} cannot be read from "
                                  f"{self.path}: {type(exc).__name__}: {exc}") from exc
        bits = 8 * self.dtype.itemsize
        if self.stored_bits < bits:  # unused high bits: masked (unsigned) or sign-extended
            shift = bits - self.stored_bits
            arr = np.right_shift(np.left_shift(arr, shift), shift)
        return arr

    def _check(self, fh: Any) -> None:
        status = os.fstat(fh.fileno())
        header = 8 if self.implicit_vr else 12  # tag, (VR, reserved,) length
        changed = status.st_mtime != self.mtime or status.st_size < self.offset + self.nbytes
        if not changed:
            fh.seek(self.offset - header)
            element = fh.read(header)
            changed = (len(element) != header or element[:4] != _TAG
                       or struct.unpack("<I", element[-4:])[0] != self.length)
        if changed:
            raise UnreadableError(f"{self.path} changed after its header was read (the pixel "
                                  f"data of {self.label}); read the series again")


def file_pixels(ds: Dataset, dtype: np.dtype[Any], shape: tuple[int, int, int], stored_bits: int,
                label: str) -> FilePixels | None:
    """The pixel data of ``ds`` left in its file, checked as :meth:`FilePixels.array` will, or
    None when it was read with the data set (or cannot be mapped: encapsulated, short; then it
    is read through pydicom, which names any problem). :class:`UnreadableError` when the file
    changed since its header was read."""
    element = ds.get_item(PIXEL_DATA, keep_deferred=True)
    path = getattr(ds, "filename", None)
    mtime = getattr(ds, "timestamp", None)
    if not isinstance(element, RawDataElement) or element.value is not None or \
            not isinstance(path, str) or element.value_tell is None or mtime is None:
        return None
    size = math.prod(shape) * dtype.itemsize
    if element.length in (None, _UNDEFINED_LENGTH) or element.length < size:
        return None
    if element.value_tell < (8 if element.is_implicit_VR else 12):
        return None
    found = FilePixels(path=path, offset=int(element.value_tell), length=int(element.length),
                       implicit_vr=bool(element.is_implicit_VR), mtime=float(mtime),
                       dtype=dtype, shape=shape, stored_bits=stored_bits, label=label)
    try:
        with open(path, "rb") as fh:
            found._check(fh)
    except OSError:
        return None  # pydicom's read names it
    return found
