"""What igrt uses of an RT (Ion) Plan (the DICOM adapter is ``igrt.dicom.plan_reader``; the
decisions made with plans are in ``igrt.core.matching``). Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from igrt.core.geometry import PatientPosition
from igrt.core.types import Point


@dataclass(frozen=True)
class Plan:
    """What igrt uses of an RT (Ion) Plan. ``isocenters_mm`` are the distinct isocentres (LPS,
    planning frame) in the order the treatment beams list them; ``beam_count`` counts the
    treatment beams (setup beams excluded)."""

    sop_instance_uid: str
    sop_class_uid: str
    patient_id: str
    frame_of_reference_uid: str
    label: str
    patient_position: PatientPosition
    isocenters_mm: tuple[Point, ...]
    referenced_structure_set_uid: str | None
    beam_count: int



def normalise_patient_id(value: object) -> str:
    """A Patient ID as compared by igrt: the text with trailing spaces and NULs removed."""
    return "" if value is None else str(value).rstrip(" \x00")


def distinct_points(points: Sequence[Point], *, tolerance_mm: float = 0.5) -> tuple[Point, ...]:
    """The points with those closer than ``tolerance_mm`` to an earlier kept one dropped, in
    order (the first of each group is kept)."""
    kept: list[Point] = []
    for p in points:
        if all(math.dist(p, q) > tolerance_mm for q in kept):
            kept.append(p)
    return tuple(kept)
