"""What igrt uses of an RT (Ion) Plan (the DICOM adapter is ``igrt.dicom.plan_reader``; the
decisions made with plans are in ``igrt.core.matching``). Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from igrt.core.errors import PlanError
from igrt.core.geometry import PatientPosition
from igrt.core.structures import StructureSet
from igrt.core.types import Point


@dataclass(frozen=True)
class Plan:
    """What igrt uses of an RT (Ion) Plan. ``isocenters_mm`` are the distinct isocentres (LPS,
    planning frame) in the order the treatment beams list them; ``beam_count`` counts the
    treatment beams (setup beams excluded)."""

    sop_instance_uid: str
    sop_class_uid: str
    patient_id: str
    #: None when the plan does not carry one (optional in the RT Plan IOD): the frame is then the
    #: referenced RT Structure Set's (:func:`with_structure_set_frame`)
    frame_of_reference_uid: str | None
    label: str
    patient_position: PatientPosition
    isocenters_mm: tuple[Point, ...]
    referenced_structure_set_uid: str | None
    beam_count: int
    approval_status: str = ""  # APPROVED, UNAPPROVED, REJECTED, or "" when not given

    @property
    def frame(self) -> str:
        """The Frame of Reference UID, once known (:class:`PlanError` otherwise)."""
        if self.frame_of_reference_uid is None:
            raise PlanError(
                f"RT Plan {self.sop_instance_uid} has no Frame of Reference UID (0020,0052) and "
                "its referenced RT Structure Set "
                f"{self.referenced_structure_set_uid or '(none referenced)'} has not been "
                "received or names no frame; send the structure set or a plan with a frame")
        return self.frame_of_reference_uid



def normalise_patient_id(value: object) -> str:
    """A Patient ID as compared by igrt: the text with trailing spaces and NULs removed."""
    return "" if value is None else str(value).rstrip(" \x00")


def with_structure_set_frame(plan: Plan, structure_sets: Sequence[StructureSet]) -> Plan:
    """The plan with its frame taken from the RT Structure Set it references, when the plan has
    none of its own (an Eclipse export); unchanged otherwise."""
    if plan.frame_of_reference_uid is not None:
        return plan
    frame = next((s.frame_of_reference_uid for s in structure_sets
                  if s.sop_instance_uid == plan.referenced_structure_set_uid), None)
    return plan if frame is None else replace(plan, frame_of_reference_uid=frame)


def distinct_points(points: Sequence[Point], *, tolerance_mm: float = 0.5) -> tuple[Point, ...]:
    """The points with those closer than ``tolerance_mm`` to an earlier kept one dropped, in
    order (the first of each group is kept)."""
    kept: list[Point] = []
    for p in points:
        if all(math.dist(p, q) > tolerance_mm for q in kept):
            kept.append(p)
    return tuple(kept)
