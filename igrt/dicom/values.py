"""Reading element values out of pydicom datasets, and making small ones: the adapters the DICOM
readers and writers share."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset


def dataset(**attributes: Any) -> Dataset:
    """A data set (a sequence item, usually) holding the given attributes, by keyword."""
    d = Dataset()
    for keyword, value in attributes.items():
        setattr(d, keyword, value)
    return d


def text(ds: Any, keyword: str) -> str | None:
    """The element's text with trailing spaces and NULs removed; None if absent or empty."""
    value = ds.get(keyword)
    if value is None:
        return None
    out = str(value).rstrip(" \x00")
    return out or None


def floats(value: Any) -> list[float] | None:
    """The numbers of a numeric element (one value or several); None if absent or not numbers."""
    if value is None:
        return None
    items = [value] if isinstance(value, str | bytes) or not hasattr(value, "__len__") else value
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError):
        return None


def float_array(ds: Any, keyword: str) -> npt.NDArray[np.float64] | None:
    """The numbers of a decimal-string element (e.g. Contour Data) as an array; None if absent
    or not numbers. An element not yet converted is parsed straight from its bytes (ten times
    faster than pydicom's per-value conversion, which large contours make noticeable)."""
    tag = tag_for_keyword(keyword)
    raw = ds.get_item(tag) if tag is not None and tag in ds else None
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes) and raw.value.strip():
        try:
            parts = raw.value.decode("ascii").strip(" \x00").split("\\")
            return np.array(parts, dtype=np.float64)
        except (UnicodeDecodeError, ValueError):
            pass  # let pydicom convert it and report what it finds
    numbers = floats(ds.get(keyword))
    return None if numbers is None else np.asarray(numbers, dtype=np.float64)


def items(ds: Any, keyword: str) -> list[Any]:
    """The items of a sequence element; [] if absent or empty."""
    return list(ds.get(keyword) or [])


def iso_datetime(date: object, time: object = None, offset: object = None) -> str | None:
    """ISO 8601 text of a DICOM DA (``YYYYMMDD``) and TM (``HHMMSS.FFFFFF``, parts optional), with
    the ``+HHMM`` Timezone Offset From UTC when given; None when the date is absent or invalid.
    ``date`` may also be a DT (``YYYYMMDDHHMMSS.FFFFFF&ZZXX``), then ``time`` is ignored."""
    d = "" if date is None else str(date).strip()
    t = "" if time is None else str(time).strip()
    z = "" if offset is None else str(offset).strip()
    if len(d) > 8:  # a DT value: split date, time and its own offset
        for sign in "+-":
            if sign in d[8:]:
                at = d.index(sign, 8)
                d, z = d[:at], d[at:]
        d, t = d[:8], d[8:]
    if len(d) != 8 or not d.isdigit():
        return None
    out = f"{d[0:4]}-{d[4:6]}-{d[6:8]}"
    whole, _, fraction = t.partition(".")
    if whole:
        if not whole.isdigit() or len(whole) not in (2, 4, 6):
            return None
        parts = [whole[i:i + 2] for i in range(0, len(whole), 2)] + ["00"] * (3 - len(whole) // 2)
        out += "T" + ":".join(parts)
        if fraction.isdigit():
            out += "." + fraction[:3].ljust(3, "0")
        if len(z) == 5 and z[0] in "+-" and z[1:].isdigit():
            out += f"{z[:3]}:{z[3:]}"
    return out
def decimal_string(value: float) -> str:
    """The most precise decimal string of at most 16 characters (VR DS) for ``value``."""
    v = float(value) + 0.0  # no "-0"
    for digits in range(16, 0, -1):
        out = f"{v:.{digits}g}"
        if len(out) <= 16:
            return out
    raise ValueError(f"{v!r} cannot be written as a DICOM decimal string")
