"""igrt.core.matching: the decisions that tie a CBCT to its planning reference (CONTRACT §3),
table-tested on hand-built plans, series and structure sets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from pydicom.uid import RTPlanStorage

from igrt.core import errors
from igrt.core.geometry import PatientPosition
from igrt.core.image_series import ImageSeries, SeriesInfo
from igrt.core.matching import (
    CtCandidate,
    check_planning_ct,
    check_same_patient,
    choose_plan,
    choose_planning_ct,
    choose_structure_set,
    pick_plan,
    preferred_planning_ct,
    select_isocenter,
    unapproved_reason,
)
from igrt.core.plan import Plan
from igrt.core.structures import StructureSet
from igrt.core.volume import Volume

FRAME = "1.2.826.0.1.3680043.8.498.1"
OTHER_FRAME = "1.9.9"
ISO_A = (0.0, -110.0, -785.5)
ISO_B = (40.0, -110.0, -785.5)


def make_plan(uid: str, patient_id: str = "PAT-001", label: str = "P", **kw: Any) -> Plan:
    base = Plan(
        sop_instance_uid=uid,
        sop_class_uid=RTPlanStorage,
        patient_id=patient_id,
        frame_of_reference_uid=FRAME,
        label=label,
        patient_position=PatientPosition.HFS,
        isocenters_mm=(ISO_A,),
        referenced_structure_set_uid=None,
        beam_count=1,
    )
    return replace(base, **kw)


def structure_set(uid: str, frame: str = FRAME, series: str | None = None) -> StructureSet:
    return StructureSet(sop_instance_uid=uid, frame_of_reference_uid=frame,
                        referenced_series_uid=series, rois=())


def ct_series(series_uid: str, patient_id: str = "PAT-001", frame: str = FRAME) -> ImageSeries:
    info = SeriesInfo(patient_id=patient_id, study_uid="3.1", series_uid=series_uid,
                      frame_of_reference_uid=frame, modality="CT",
                      sop_class_uid="1.2.840.10008.5.1.4.1.1.2", patient_position="HFS",
                      series_description="", n_instances=2, instance_uids=("4.1", "4.2"))
    volume = Volume(np.zeros((2, 2, 2), dtype=np.float32), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    return ImageSeries(info=info, volume=volume, padding_mask=None)


# --- select_isocenter ----------------------------------------------------------------------------
def test_select_single_isocentre() -> None:
    assert select_isocenter(make_plan("1")) == ISO_A
    assert select_isocenter(make_plan("1"), index=0) == ISO_A


def test_several_isocentres_need_a_choice() -> None:
    plan = make_plan("1", isocenters_mm=(ISO_A, ISO_B))
    with pytest.raises(errors.MultipleIsocentresError,
                       match=r"2 distinct isocentres.*0: \(0.0, -110.0, -785.5\).*1: \(40.0"):
        select_isocenter(plan)
    assert select_isocenter(plan, index=1) == ISO_B


@pytest.mark.parametrize("index", [2, -1])
def test_isocentre_index_out_of_range(index: int) -> None:
    plan = make_plan("1", isocenters_mm=(ISO_A, ISO_B))
    with pytest.raises(errors.PlanError, match=f"isocentre {index} was selected but .* has 2"):
        select_isocenter(plan, index=index)


# --- choose_plan ---------------------------------------------------------------------------------
P1 = make_plan("1.1", label="ARC")
P2 = make_plan("1.2", label="BOOST")
OTHER = make_plan("9.9", patient_id="PAT-002", label="OTHER")


@pytest.mark.parametrize(
    ("plans", "selected", "expected"),
    [
        pytest.param([P1, OTHER], None, P1, id="only-plan-of-patient"),
        pytest.param([P1, P1], None, P1, id="same-plan-twice"),
        pytest.param([P1, P2, OTHER], "1.2", P2, id="selected"),
        pytest.param([make_plan("1.1", patient_id="PAT-001 ")], None,
                     make_plan("1.1", patient_id="PAT-001 "), id="trailing-space"),
    ],
)
def test_choose_plan(plans: list[Plan], selected: str | None, expected: Plan) -> None:
    assert choose_plan(plans, patient_id="PAT-001", selected_uid=selected) == expected


@pytest.mark.parametrize(
    ("plans", "patient", "selected", "error", "match"),
    [
        pytest.param([], "PAT-001", None, errors.NoPlanError, "no RT Plan .* patient PAT-001",
                     id="none"),
        pytest.param([OTHER], "PAT-001", None, errors.NoPlanError, "no RT Plan",
                     id="only-other-patient"),
        pytest.param([P1, P2], "PAT-001", None, errors.AmbiguousPlanError,
                     r"2 plans and none is selected: 'ARC' 1\.1; 'BOOST' 1\.2", id="ambiguous"),
        pytest.param([P1, P2], "PAT-001", "1.3", errors.NoPlanError, "1.3, has not been received",
                     id="selected-unknown"),
        pytest.param([P1, OTHER], "PAT-001", "9.9", errors.NoPlanError,
                     "belongs to another patient",
                     id="selected-of-other-patient"),
        pytest.param([P1], "", None, errors.NoPlanError, "empty Patient ID", id="empty-patient-id"),
        pytest.param([P1], "pat-001", None, errors.NoPlanError, "no RT Plan", id="case-matters"),
    ],
)
def test_choose_plan_refusals(
    plans: list[Plan], patient: str, selected: str | None, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        choose_plan(plans, patient_id=patient, selected_uid=selected)


# --- check_same_patient --------------------------------------------------------------------------
@pytest.mark.parametrize("cbct_id", ["PAT-001", "PAT-001 ", "PAT-001\x00"])
def test_same_patient(cbct_id: str) -> None:
    check_same_patient(cbct_id, P1)


@pytest.mark.parametrize("cbct_id", ["PAT-002", "pat-001", " PAT-001", "", None])
def test_patient_mismatch(cbct_id: str | None) -> None:
    with pytest.raises(errors.PatientMismatchError,
                       match="is not the Patient ID 'PAT-001' of plan 1.1"):
        check_same_patient(cbct_id, P1)


# --- pick_plan: the contract's choice with a wrong-patient refusal -------------------------------
@pytest.mark.parametrize(
    ("plans", "patient", "selected", "expected"),
    [
        pytest.param([P1], "PAT-001", None, P1, id="the-only-plan"),
        pytest.param([P1, P2], "PAT-001", "1.2", P2, id="the-selected-plan"),
        pytest.param([P1, OTHER], "PAT-001 ", None, P1, id="trailing-space-in-the-cbct-id"),
    ],
)
def test_pick_plan(plans: list[Plan], patient: str, selected: str | None, expected: Plan) -> None:
    assert pick_plan(plans, patient_id=patient, selected_uid=selected) == expected


@pytest.mark.parametrize(
    ("plans", "patient", "error", "match"),
    [
        pytest.param([], "PAT-001", errors.NoPlanError,
                     "no RT Plan is available for Patient ID 'PAT-001'",
                     id="no-plan-at-all"),
        pytest.param([OTHER], "PAT-001", errors.PatientMismatchError,
                     "the CBCT's Patient ID 'PAT-001' is not the Patient ID 'PAT-002' of plan 9.9",
                     id="plans-of-one-other-patient"),
        pytest.param([OTHER, make_plan("9.8", patient_id="PAT-003")], "PAT-001",
                     errors.PatientMismatchError, "the plans available are for 2 other patients",
                     id="plans-of-two-other-patients"),
        pytest.param([P1, P2], "PAT-001", errors.AmbiguousPlanError, "2 plans and none is selected",
                     id="two-plans-none-selected"),
    ],
)
def test_pick_plan_refusals(plans: list[Plan], patient: str, error: type[Exception],
                            match: str) -> None:
    with pytest.raises(error, match=match):
        pick_plan(plans, patient_id=patient, selected_uid=None)


# --- choose_planning_ct --------------------------------------------------------------------------
A = CtCandidate("2.1", FRAME)
B = CtCandidate("2.2", FRAME)
ELSEWHERE = CtCandidate("2.9", OTHER_FRAME)


@pytest.mark.parametrize(
    ("candidates", "preferred", "newest_last", "expected"),
    [
        pytest.param([ELSEWHERE, B], None, False, "2.2", id="the-one-in-the-plan-frame"),
        pytest.param([A, A], None, False, "2.1", id="the-same-series-twice"),
        pytest.param([A, B], "2.1", False, "2.1", id="the-structure-set-series"),
        pytest.param([A, B], "2.1", True, "2.1", id="the-structure-set-series-over-the-newest"),
        pytest.param([A, B], None, True, "2.2", id="the-newest-when-ordered"),
        pytest.param([B, A], None, True, "2.1", id="the-newest-is-the-last-not-the-largest"),
        pytest.param([A, B], "2.3", True, "2.2", id="unknown-preference-then-the-newest"),
        pytest.param([B], "2.3", False, "2.2", id="one-candidate-whatever-the-preference"),
    ],
)
def test_choose_planning_ct(candidates: list[CtCandidate], preferred: str | None,
                            newest_last: bool, expected: str) -> None:
    assert choose_planning_ct(candidates, P1, preferred_series_uid=preferred,
                              newest_last=newest_last) == expected


@pytest.mark.parametrize(
    ("candidates", "preferred", "error", "match"),
    [
        pytest.param([], None, errors.NoPlanningCtError, f"Frame of Reference {FRAME} of plan 1.1",
                     id="none"),
        pytest.param([ELSEWHERE], None, errors.NoPlanningCtError, "no CT series is in the Frame",
                     id="only-another-frame"),
        pytest.param([B, A], None, errors.PlanError,
                     "2 CT series share .* none is preferred: 2.1, 2.2",
                     id="two-unordered"),
        pytest.param([A, B], "2.3", errors.PlanError, "none is preferred", id="unknown-preference"),
    ],
)
def test_choose_planning_ct_refusals(candidates: list[CtCandidate], preferred: str | None,
                                     error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        choose_planning_ct(candidates, P1, preferred_series_uid=preferred)


@pytest.mark.parametrize(
    ("plan_reference", "sets", "expected"),
    [
        pytest.param("5.1", [structure_set("5.1", series="2.1")], "2.1", id="referenced"),
        pytest.param("5.1", [structure_set("5.2", series="2.2")], None, id="not-the-plans"),
        pytest.param(None, [structure_set("5.1", series="2.1")], None, id="plan-references-none"),
        pytest.param("5.1", [structure_set("5.1")], None, id="set-names-no-series"),
    ],
)
def test_preferred_planning_ct(plan_reference: str | None, sets: list[StructureSet],
                               expected: str | None) -> None:
    plan = make_plan("1.1", referenced_structure_set_uid=plan_reference)
    assert preferred_planning_ct(plan, sets) == expected


# --- check_planning_ct ---------------------------------------------------------------------------
def test_planning_ct_of_the_plan_passes() -> None:
    check_planning_ct(ct_series("2.1", patient_id="PAT-001 "), P1)


@pytest.mark.parametrize(
    ("ct", "match"),
    [
        pytest.param(ct_series("2.1", patient_id="PAT-002"), "has Patient ID 'PAT-002', plan 1.1",
                     id="other-patient"),
        pytest.param(ct_series("2.1", frame=OTHER_FRAME), f"not the plan's {FRAME}",
                     id="other-frame"),
    ],
)
def test_planning_ct_refusals(ct: ImageSeries, match: str) -> None:
    with pytest.raises(errors.MatchError, match=match):
        check_planning_ct(ct, P1)


# --- choose_structure_set ------------------------------------------------------------------------
S1, S2 = structure_set("5.1"), structure_set("5.2")
ELSEWHERE_SET = structure_set("5.9", OTHER_FRAME)


@pytest.mark.parametrize(
    ("plan_reference", "sets", "expected"),
    [
        pytest.param(None, [ELSEWHERE_SET, S1], S1, id="the-one-in-the-frame"),
        pytest.param("5.2", [S1, S2], S2, id="the-plans-own"),
    ],
)
def test_choose_structure_set(plan_reference: str | None, sets: list[StructureSet],
                              expected: StructureSet) -> None:
    plan = make_plan("1.1", referenced_structure_set_uid=plan_reference)
    assert choose_structure_set(plan, sets, "REG_BOX") is expected


@pytest.mark.parametrize(
    ("sets", "match"),
    [
        pytest.param([ELSEWHERE_SET], "'REG_BOX' is configured but no RT Structure Set",
                     id="none-in-the-frame"),
        pytest.param([S1, S2], "2 RT Structure Sets .* references none of them: 5.1, 5.2",
                     id="two-unreferenced"),
    ],
)
def test_choose_structure_set_refusals(sets: list[StructureSet], match: str) -> None:
    with pytest.raises(errors.StructureError, match=match):
        choose_structure_set(P1, sets, "REG_BOX")


# --- approval status (CONTRACT §3) ---------------------------------------------------------------
REJECTED_P = make_plan("1.7", label="OLD", approval_status="REJECTED")
UNAPPROVED_P = make_plan("1.8", label="DRAFT", approval_status="UNAPPROVED")


@pytest.mark.parametrize(
    ("plans", "selected", "expected"),
    [
        pytest.param([REJECTED_P, P1], None, P1, id="a-rejected-plan-is-no-candidate"),
        pytest.param([UNAPPROVED_P], None, UNAPPROVED_P, id="an-unapproved-plan-is-used"),
    ],
)
def test_choose_plan_by_approval(plans: list[Plan], selected: str | None,
                                 expected: Plan) -> None:
    assert choose_plan(plans, patient_id="PAT-001", selected_uid=selected) == expected


@pytest.mark.parametrize(
    ("plans", "selected"),
    [
        pytest.param([REJECTED_P], None, id="the-only-plan-is-rejected"),
        pytest.param([REJECTED_P, P1], "1.7", id="the-selected-plan-is-rejected"),
    ],
)
def test_a_rejected_plan_is_never_used(plans: list[Plan], selected: str | None) -> None:
    with pytest.raises(errors.RejectedPlanError,
                       match=r"plan 1.7 \(OLD\) has Approval Status REJECTED"):
        choose_plan(plans, patient_id="PAT-001", selected_uid=selected)


@pytest.mark.parametrize(
    ("plan", "flagged"),
    [
        pytest.param(UNAPPROVED_P, True, id="unapproved"),
        pytest.param(make_plan("1.9", approval_status="APPROVED"), False, id="approved"),
        pytest.param(make_plan("1.9", approval_status=""), False, id="not-given"),
    ],
)
def test_unapproved_gives_a_review_reason(plan: Plan, flagged: bool) -> None:
    why = unapproved_reason(plan)
    assert (why is not None) == flagged
    if why is not None:
        assert why.startswith("unapproved_plan: plan 1.8 (DRAFT) has Approval Status UNAPPROVED")
