"""The three review planes as the patient lies on the couch (room view, IEC 61217 table-top
axes), and the anatomical letters at their edges.

* axial: seen from the foot of the couch toward the gantry: right = IEC +X, up = IEC +Z;
* coronal: seen from above: right = IEC +X, up = IEC +Y (toward the gantry);
* sagittal: seen from the patient's IEC +X side: right = IEC -Z, up = IEC +Y.

For a head-first supine patient these are the usual radiological views (axial: patient's right
on the image's left, anterior up; coronal: superior up; sagittal: anterior left, superior up).
For other positions the image shows the patient as they lie, and the letters say which
anatomical direction each edge is. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from igrt.core.geometry import LPS_TO_IEC, PatientPosition
from igrt.core.types import FloatArray

#: (name, right, up) in IEC table-top axes.
_IEC_VIEWS: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float]], ...] = (
    ("axial", (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    ("coronal", (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    ("sagittal", (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
)
#: LPS axis letters: (negative, positive) direction.
_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))


@dataclass(frozen=True, eq=False)
class View:
    """One review plane: its in-plane directions as LPS unit vectors (the room frame is
    LPS-aligned for the patient on the couch, CONTRACT §1)."""

    name: str
    right_lps: FloatArray
    up_lps: FloatArray

    @property
    def edge_letters(self) -> dict[str, str]:
        """The anatomical letter at each edge: ``left``, ``right``, ``top``, ``bottom``."""
        return {"left": letter(-self.right_lps), "right": letter(self.right_lps),
                "top": letter(self.up_lps), "bottom": letter(-self.up_lps)}


def views(position: PatientPosition) -> tuple[View, ...]:
    """The axial, coronal and sagittal views for the patient position."""
    m = LPS_TO_IEC[position]
    return tuple(View(name, m.T @ np.asarray(right), m.T @ np.asarray(up))
                 for name, right, up in _IEC_VIEWS)


def letter(direction_lps: FloatArray) -> str:
    """The anatomical letter (L, R, A, P, S, I) of an axis-aligned LPS direction."""
    axis = int(np.argmax(np.abs(direction_lps)))
    return _LETTERS[axis][1 if direction_lps[axis] > 0 else 0]
