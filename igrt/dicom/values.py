"""Reading element values out of pydicom datasets: the small adapters the DICOM readers share."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement


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
