"""Matching: the pure decisions that tie a CBCT to its planning reference (CONTRACT §3).

Which plan a CBCT is set up against (:func:`pick_plan`, :func:`choose_plan`), whether the CBCT
and the planning CT belong to the plan's patient and frame (:func:`check_same_patient`,
:func:`check_planning_ct`), which isocentre (:func:`select_isocenter`), which planning CT
(:func:`choose_planning_ct`) and which structure set holds the registration structure
(:func:`choose_structure_set`). Each refusal is the specific ``igrt.core.errors`` class with a
sentence naming the UIDs involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from igrt.core.errors import (
    AmbiguousPlanError,
    MatchError,
    MultipleIsocentresError,
    NoPlanError,
    NoPlanningCtError,
    PatientMismatchError,
    PlanError,
    RejectedPlanError,
    StructureError,
)
from igrt.core.image_series import ImageSeries, SeriesInfo
from igrt.core.plan import Plan, normalise_patient_id
from igrt.core.reasons import ReasonCode, reason
from igrt.core.structures import StructureSet
from igrt.core.types import Point

REJECTED = "REJECTED"
UNAPPROVED = "UNAPPROVED"


@dataclass(frozen=True)
class CtCandidate:
    """A CT series that could be a plan's planning CT: its UID and Frame of Reference."""

    series_uid: str
    frame_of_reference_uid: str


def pick_plan(plans: Sequence[Plan], *, patient_id: str, selected_uid: str | None) -> Plan:
    """CONTRACT §3 plan choice, with a wrong-patient refusal when plans exist only for others."""
    pid = normalise_patient_id(patient_id)
    if plans and not any(normalise_patient_id(p.patient_id) == pid for p in plans):
        others = sorted({normalise_patient_id(p.patient_id) for p in plans})
        if len(others) == 1:
            check_same_patient(pid, plans[0])  # raises PatientMismatchError naming both IDs
        raise PatientMismatchError(
            f"no plan is for the CBCT's Patient ID {pid!r}; the plans available are for "
            f"{len(others)} other patients")
    if not plans:
        raise NoPlanError(f"no RT Plan is available for Patient ID {pid!r}")
    return choose_plan(plans, patient_id=pid, selected_uid=selected_uid)


def _format_point(p: Point) -> str:
    return "(" + ", ".join(f"{c:.1f}" for c in p) + ")"


def select_isocenter(plan: Plan, *, index: int | None = None) -> Point:
    """The isocentre to set up: the only distinct one, or the ``index``-th (0-based) if chosen."""
    isos = plan.isocenters_mm
    listed = ", ".join(f"{n}: {_format_point(p)} mm" for n, p in enumerate(isos))
    if index is None:
        if len(isos) == 1:
            return isos[0]
        raise MultipleIsocentresError(
            f"plan {plan.sop_instance_uid} ({plan.label}) has {len(isos)} distinct isocentres "
            f"and none is selected: {listed}"
        )
    if not 0 <= index < len(isos):
        raise PlanError(
            f"isocentre {index} was selected but plan {plan.sop_instance_uid} has "
            f"{len(isos)} (0 to {len(isos) - 1}): {listed}"
        )
    return isos[index]


def choose_plan(plans: Sequence[Plan], *, patient_id: str, selected_uid: str | None) -> Plan:
    """The plan a CBCT of ``patient_id`` is set up against (CONTRACT §3): the plan selected for
    that patient, else the patient's only plan. Plans are compared by SOP Instance UID (the same
    plan received twice counts once). A plan whose Approval Status is REJECTED is never used:
    selected, it is refused (:class:`RejectedPlanError`); otherwise it is not a candidate."""
    wanted = normalise_patient_id(patient_id)
    if not wanted:
        raise NoPlanError("the CBCT has an empty Patient ID, no plan can be matched to it")
    own: dict[str, Plan] = {}
    for plan in plans:
        if normalise_patient_id(plan.patient_id) == wanted:
            own.setdefault(plan.sop_instance_uid, plan)
    if selected_uid is not None:
        if selected_uid in own:
            return _not_rejected(own[selected_uid])
        elsewhere = any(p.sop_instance_uid == selected_uid for p in plans)
        detail = "belongs to another patient" if elsewhere else "has not been received"
        raise NoPlanError(
            f"the plan selected for patient {wanted}, {selected_uid}, {detail}"
        )
    if not own:
        raise NoPlanError(f"no RT Plan has been received for patient {wanted}")
    usable = {uid: p for uid, p in own.items() if p.approval_status != REJECTED}
    if not usable:
        _not_rejected(next(iter(own.values())))
    own = usable
    if len(own) > 1:
        listed = "; ".join(f"{p.label!r} {uid}" for uid, p in own.items())
        raise AmbiguousPlanError(
            f"patient {wanted} has {len(own)} plans and none is selected: {listed}"
        )
    return next(iter(own.values()))


def _not_rejected(plan: Plan) -> Plan:
    if plan.approval_status == REJECTED:
        raise RejectedPlanError(
            f"plan {plan.sop_instance_uid} ({plan.label}) has Approval Status REJECTED "
            "(300E,0002); a rejected plan is never used for setup")
    return plan


def unapproved_reason(plan: Plan) -> str | None:
    """The review reason of a plan that is not approved (CONTRACT §3: at most ``review``)."""
    if plan.approval_status != UNAPPROVED:
        return None
    return reason(ReasonCode.UNAPPROVED_PLAN,
                  f"plan {plan.sop_instance_uid} ({plan.label}) has Approval Status UNAPPROVED "
                  "(300E,0002): it was not approved for treatment")


def check_same_patient(cbct_patient_id: str | None, plan: Plan) -> None:
    """Refuse (:class:`PatientMismatchError`) unless the CBCT's Patient ID equals the plan's
    (exact comparison after removing trailing spaces and NULs; an empty ID never matches)."""
    cbct = normalise_patient_id(cbct_patient_id)
    planned = normalise_patient_id(plan.patient_id)
    if not cbct or cbct != planned:
        raise PatientMismatchError(
            f"the CBCT's Patient ID {cbct!r} is not the Patient ID {planned!r} of plan "
            f"{plan.sop_instance_uid}"
        )


def choose_planning_ct(
    candidates: Sequence[CtCandidate], plan: Plan, *, preferred_series_uid: str | None = None,
    newest_last: bool = False,
) -> str:
    """The Series Instance UID of the plan's planning CT among ``candidates``: the one in the
    plan's Frame of Reference. Several → the preferred one (the series the plan's structure set
    references) if it is among them; else, when ``newest_last`` (the candidates are in arrival
    order, as the service's store lists them), the most recently received; else
    :class:`PlanError`. None → :class:`NoPlanningCtError`."""
    in_frame = [c.series_uid for c in candidates
                if c.frame_of_reference_uid == plan.frame]
    in_frame = list(dict.fromkeys(in_frame))
    if not in_frame:
        raise NoPlanningCtError(
            f"no CT series is in the Frame of Reference {plan.frame} of plan "
            f"{plan.sop_instance_uid}"
        )
    if len(in_frame) == 1:
        return in_frame[0]
    if preferred_series_uid is not None and preferred_series_uid in in_frame:
        return preferred_series_uid
    if newest_last:
        return in_frame[-1]
    raise PlanError(
        f"{len(in_frame)} CT series share the Frame of Reference "
        f"{plan.frame} of plan {plan.sop_instance_uid} and none is preferred: "
        + ", ".join(sorted(in_frame))
    )


def preferred_planning_ct(plan: Plan, structure_sets: Sequence[StructureSet]) -> str | None:
    """The CT series the plan's own structure set was drawn on, if that structure set is known."""
    return next((s.referenced_series_uid for s in structure_sets
                 if s.sop_instance_uid == plan.referenced_structure_set_uid), None)


def check_planning_ct(ct: SeriesInfo | ImageSeries, plan: Plan) -> None:
    """The planning CT must be the plan's patient and frame."""
    info = ct.info if isinstance(ct, ImageSeries) else ct
    if normalise_patient_id(info.patient_id) != normalise_patient_id(plan.patient_id):
        raise MatchError(
            f"planning CT series {info.series_uid} has Patient ID "
            f"{normalise_patient_id(info.patient_id)!r}, plan {plan.sop_instance_uid} has "
            f"{normalise_patient_id(plan.patient_id)!r}")
    if info.frame_of_reference_uid != plan.frame:
        raise MatchError(
            f"planning CT series {info.series_uid} is in Frame of Reference "
            f"{info.frame_of_reference_uid}, not the plan's {plan.frame}")


def choose_structure_set(plan: Plan, structure_sets: Sequence[StructureSet],
                         roi_name: str) -> StructureSet:
    """The structure set holding the configured registration structure: in the plan's frame, the
    one the plan references if several."""
    candidates = [s for s in structure_sets
                  if s.frame_of_reference_uid == plan.frame]
    preferred = [s for s in candidates
                 if s.sop_instance_uid == plan.referenced_structure_set_uid]
    chosen = (preferred or candidates)
    if not chosen:
        raise StructureError(
            f"the registration structure {roi_name!r} is configured but no RT Structure Set is "
            f"in the plan's Frame of Reference {plan.frame}")
    if len(chosen) > 1:
        raise StructureError(
            f"{len(chosen)} RT Structure Sets are in the plan's Frame of Reference and the plan "
            f"references none of them: " + ", ".join(s.sop_instance_uid for s in chosen))
    return chosen[0]
