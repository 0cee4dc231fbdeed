"""Reading element values out of pydicom datasets: the small adapters the DICOM readers share."""

from __future__ import annotations

from typing import Any


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


def items(ds: Any, keyword: str) -> list[Any]:
    """The items of a sequence element; [] if absent or empty."""
    return list(ds.get(keyword) or [])


def decimal_string(value: float) -> str:
    """The most precise decimal string of at most 16 characters (VR DS) for ``value``."""
    v = float(value) + 0.0  # no "-0"
    for digits in range(16, 0, -1):
        out = f"{v:.{digits}g}"
        if len(out) <= 16:
            return out
    raise ValueError(f"{v!r} cannot be written as a DICOM decimal string")
