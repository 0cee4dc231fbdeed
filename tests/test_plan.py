"""RT Plan / RT Ion Plan reading and the plan decisions (CONTRACT §3)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ImplicitVRLittleEndian

from igrt.errors import (
    AmbiguousPlanError,
    MultipleIsocentresError,
    NoPlanError,
    NoPlanningCtError,
    PatientMismatchError,
    PlanError,
)
from igrt.geometry import PatientPosition
from igrt.plan import (
    RT_ION_PLAN_SOP_CLASS,
    RT_PLAN_SOP_CLASS,
    Plan,
    check_same_patient,
    choose_plan,
    choose_planning_ct,
    distinct_points,
    read_plan,
    select_isocenter,
)

FRAME = "1.2.826.0.1.3680043.8.498.1"
ISO_A = (0.0, -110.0, -785.5)
ISO_B = (40.0, -110.0, -785.5)


def beam(
    number: int,
    iso: Sequence[float] | None,
    *,
    delivery: str | None = "TREATMENT",
    setup: int | None = 1,
    ion: bool = False,
) -> Dataset:
    b = Dataset()
    b.BeamNumber = number
    b.BeamName = f"B{number}"
    if delivery is not None:
        b.TreatmentDeliveryType = delivery
    if setup is not None:
        b.ReferencedPatientSetupNumber = setup
    cp0 = Dataset()
    cp0.ControlPointIndex = 0
    if iso is not None:
        cp0.IsocenterPosition = list(iso)
    cp1 = Dataset()
    cp1.ControlPointIndex = 1
    if ion:
        b.IonControlPointSequence = DicomSequence([cp0, cp1])
    else:
        b.ControlPointSequence = DicomSequence([cp0, cp1])
    return b


def setup_item(number: int, position: str | None, additional: str | None = None) -> Dataset:
    s = Dataset()
    s.PatientSetupNumber = number
    if position is not None:
        s.PatientPosition = position
    if additional is not None:
        s.PatientAdditionalPosition = additional
    return s


def plan_ds(
    beams: Sequence[Dataset] = (),
    *,
    ion: bool = False,
    setups: Sequence[Dataset] | None = None,
    **attributes: Any,
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = RT_ION_PLAN_SOP_CLASS if ion else RT_PLAN_SOP_CLASS
    ds.SOPInstanceUID = "1.2.3.100"
    ds.PatientID = "PAT-001"
    ds.FrameOfReferenceUID = FRAME
    ds.RTPlanLabel = "PROSTATE"
    ds.PatientSetupSequence = DicomSequence(
        list(setups) if setups is not None else [setup_item(1, "HFS")]
    )
    beams = list(beams) or [beam(1, ISO_A, ion=ion)]
    if ion:
        ds.IonBeamSequence = DicomSequence(beams)
    else:
        ds.BeamSequence = DicomSequence(beams)
    for keyword, value in attributes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def make_plan(uid: str, patient_id: str = "PAT-001", label: str = "P", **kw: Any) -> Plan:
    base = Plan(
        sop_instance_uid=uid,
        sop_class_uid=RT_PLAN_SOP_CLASS,
        patient_id=patient_id,
        frame_of_reference_uid=FRAME,
        label=label,
        patient_position=PatientPosition.HFS,
        isocenters_mm=(ISO_A,),
        referenced_structure_set_uid=None,
        beam_count=1,
    )
    return replace(base, **kw)


# --- read_plan -----------------------------------------------------------------------------------
def test_reads_rt_plan() -> None:
    ds = plan_ds([beam(1, ISO_A), beam(2, ISO_A)])
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ref.ReferencedSOPInstanceUID = "1.2.3.200"
    ds.ReferencedStructureSetSequence = DicomSequence([ref])
    plan = read_plan(ds)
    assert plan == Plan(
        sop_instance_uid="1.2.3.100",
        sop_class_uid=RT_PLAN_SOP_CLASS,
        patient_id="PAT-001",
        frame_of_reference_uid=FRAME,
        label="PROSTATE",
        patient_position=PatientPosition.HFS,
        isocenters_mm=(ISO_A,),
        referenced_structure_set_uid="1.2.3.200",
        beam_count=2,
    )


def test_reads_plan_from_an_implicit_vr_file() -> None:
    # Values then come back typed from the data dictionary (DS, IS multi-values).
    ds = plan_ds([beam(1, ISO_A), beam(2, ISO_B)], setups=[setup_item(1, "FFS")])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    buffer.seek(0)
    plan = read_plan(dcmread(buffer))
    assert plan.isocenters_mm == (ISO_A, ISO_B)
    assert plan.patient_position is PatientPosition.FFS


def test_reads_rt_ion_plan() -> None:
    ds = plan_ds([beam(1, ISO_B, ion=True), beam(2, ISO_B, ion=True)], ion=True,
                 setups=[setup_item(1, "FFP")])
    plan = read_plan(ds)
    assert plan.sop_class_uid == RT_ION_PLAN_SOP_CLASS
    assert plan.isocenters_mm == (ISO_B,)
    assert plan.patient_position is PatientPosition.FFP
    assert plan.beam_count == 2
    assert plan.referenced_structure_set_uid is None


def test_ion_plan_with_photon_beam_sequence_is_refused() -> None:
    ds = plan_ds([beam(1, ISO_A)])  # photon beams ...
    ds.SOPClassUID = RT_ION_PLAN_SOP_CLASS  # ... in an ion plan
    with pytest.raises(PlanError, match="no beam .IonBeamSequence"):
        read_plan(ds)


@pytest.mark.parametrize(
    ("isos", "tolerance_mm", "expected"),
    [
        pytest.param([ISO_A, ISO_A, ISO_A], 0.5, (ISO_A,), id="three-beams-one-iso"),
        pytest.param([ISO_A, (0.3, -110.2, -785.5)], 0.5, (ISO_A,), id="0.36mm-apart-same"),
        pytest.param(
            [ISO_A, (0.3, -110.2, -785.5)], 0.1, (ISO_A, (0.3, -110.2, -785.5)),
            id="0.36mm-apart-distinct-at-0.1",
        ),
        pytest.param([ISO_B, ISO_A, ISO_B], 0.5, (ISO_B, ISO_A), id="two-isos-in-beam-order"),
    ],
)
def test_distinct_isocentres(
    isos: list[tuple[float, float, float]], tolerance_mm: float,
    expected: tuple[tuple[float, float, float], ...],
) -> None:
    ds = plan_ds([beam(n + 1, iso) for n, iso in enumerate(isos)])
    plan = read_plan(ds, isocenter_tolerance_mm=tolerance_mm)
    assert plan.isocenters_mm == expected
    assert plan.beam_count == len(isos)


def test_setup_beams_are_left_out() -> None:
    # A kV setup field placed elsewhere does not make a second isocentre, nor counts as a beam.
    ds = plan_ds([beam(1, ISO_B, delivery="SETUP"), beam(2, ISO_A), beam(3, ISO_A, delivery=None)])
    plan = read_plan(ds)
    assert plan.isocenters_mm == (ISO_A,)
    assert plan.beam_count == 2


def test_first_control_point_is_index_zero_not_first_item() -> None:
    b = beam(1, None)
    cp1, cp0 = Dataset(), Dataset()
    cp1.ControlPointIndex = 1
    cp1.IsocenterPosition = list(ISO_B)
    cp0.ControlPointIndex = 0
    cp0.IsocenterPosition = list(ISO_A)
    b.ControlPointSequence = DicomSequence([cp1, cp0])
    assert read_plan(plan_ds([b])).isocenters_mm == (ISO_A,)


@pytest.mark.parametrize(
    ("setups", "beam_setups", "expected"),
    [
        pytest.param([setup_item(1, "HFS")], [1], PatientPosition.HFS, id="HFS"),
        pytest.param([setup_item(1, "FFS")], [1], PatientPosition.FFS, id="FFS"),
        pytest.param([setup_item(1, "HFP")], [1], PatientPosition.HFP, id="HFP"),
        pytest.param([setup_item(1, "FFP")], [1], PatientPosition.FFP, id="FFP"),
        pytest.param(
            [setup_item(1, "HFS"), setup_item(2, "FFS")], [2, 2], PatientPosition.FFS,
            id="referenced-setup-wins",
        ),
        pytest.param(
            [setup_item(7, "HFP")], [None, None], PatientPosition.HFP, id="unreferenced-setup",
        ),
    ],
)
def test_patient_position(
    setups: list[Dataset], beam_setups: list[int | None], expected: PatientPosition
) -> None:
    beams = [beam(n + 1, ISO_A, setup=s) for n, s in enumerate(beam_setups)]
    assert read_plan(plan_ds(beams, setups=setups)).patient_position is expected


@pytest.mark.parametrize(
    ("ds", "match"),
    [
        pytest.param(plan_ds(SOPClassUID="1.2.840.10008.5.1.4.1.1.2"), "neither RT Plan",
                     id="ct-sop-class"),
        pytest.param(plan_ds(SOPInstanceUID=None), r"SOP Instance UID \(0008,0018\)",
                     id="no-sop-instance-uid"),
        pytest.param(plan_ds(PatientID=None), r"no Patient ID \(0010,0020\)", id="no-patient-id"),
        pytest.param(plan_ds(PatientID=""), r"no Patient ID \(0010,0020\)",
                     id="empty-patient-id"),
        pytest.param(plan_ds(FrameOfReferenceUID=None), r"no Frame of Reference UID \(0020,0052\)",
                     id="no-frame-of-reference"),
        pytest.param(plan_ds([beam(1, ISO_A), beam(2, None)]),
                     r"beam 2 \(B2\) has no Isocenter Position \(300A,012C\)",
                     id="no-isocenter-position"),
        pytest.param(plan_ds([beam(1, (1.0, 2.0))]),
                     r"Isocenter Position \(300A,012C\) of beam 1 \(B1\) is not 3 numbers",
                     id="isocenter-with-two-values"),
        pytest.param(plan_ds(BeamSequence=DicomSequence([])), "has no beam", id="no-beams"),
        pytest.param(plan_ds([beam(1, ISO_A, delivery="SETUP")]), "only SETUP beams",
                     id="only-setup-beams"),
        pytest.param(plan_ds(PatientSetupSequence=None), r"no Patient Setup Sequence",
                     id="no-patient-setup"),
        pytest.param(plan_ds(setups=[setup_item(1, "HFDL")]), "'HFDL' is not supported",
                     id="decubitus"),
        pytest.param(plan_ds(setups=[setup_item(1, None, "SITTING")]),
                     "'SITTING' is not supported", id="sitting"),
        pytest.param(plan_ds(setups=[setup_item(1, None)]),
                     r"Patient Setup 1 has no Patient Position \(0018,5100\)",
                     id="setup-without-position"),
        pytest.param(
            plan_ds([beam(1, ISO_A, setup=1), beam(2, ISO_A, setup=2)],
                    setups=[setup_item(1, "HFS"), setup_item(2, "FFS")]),
            r"several patient positions: \['HFS', 'FFS'\]", id="two-positions",
        ),
        pytest.param(plan_ds([beam(1, ISO_A, setup=3)]), "references Patient Setup Number 3",
                     id="dangling-setup-reference"),
    ],
)
def test_refusals(ds: Dataset, match: str) -> None:
    with pytest.raises(PlanError, match=match):
        read_plan(ds)


def test_beam_without_control_points_is_refused() -> None:
    b = beam(4, ISO_A)
    del b.ControlPointSequence
    with pytest.raises(PlanError, match=r"beam 4 \(B4\) has no control point"):
        read_plan(plan_ds([b]))


def test_distinct_points_keeps_first_of_each_group() -> None:
    assert distinct_points([(0, 0, 0), (0.3, 0, 0), (0.6, 0, 0)], tolerance_mm=0.5) == (
        (0, 0, 0),
        (0.6, 0, 0),
    )


# --- select_isocenter ----------------------------------------------------------------------------
def test_select_single_isocentre() -> None:
    assert select_isocenter(make_plan("1")) == ISO_A
    assert select_isocenter(make_plan("1"), index=0) == ISO_A


def test_several_isocentres_need_a_choice() -> None:
    plan = make_plan("1", isocenters_mm=(ISO_A, ISO_B))
    with pytest.raises(MultipleIsocentresError,
                       match=r"2 distinct isocentres.*0: \(0.0, -110.0, -785.5\).*1: \(40.0"):
        select_isocenter(plan)
    assert select_isocenter(plan, index=1) == ISO_B


@pytest.mark.parametrize("index", [2, -1])
def test_isocentre_index_out_of_range(index: int) -> None:
    plan = make_plan("1", isocenters_mm=(ISO_A, ISO_B))
    with pytest.raises(PlanError, match=f"isocentre {index} was selected but .* has 2"):
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
        pytest.param([], "PAT-001", None, NoPlanError, "no RT Plan .* patient PAT-001",
                     id="none"),
        pytest.param([OTHER], "PAT-001", None, NoPlanError, "no RT Plan", id="only-other-patient"),
        pytest.param([P1, P2], "PAT-001", None, AmbiguousPlanError,
                     r"2 plans and none is selected: 'ARC' 1\.1; 'BOOST' 1\.2", id="ambiguous"),
        pytest.param([P1, P2], "PAT-001", "1.3", NoPlanError, "1.3, has not been received",
                     id="selected-unknown"),
        pytest.param([P1, OTHER], "PAT-001", "9.9", NoPlanError, "belongs to another patient",
                     id="selected-of-other-patient"),
        pytest.param([P1], "", None, NoPlanError, "empty Patient ID", id="empty-patient-id"),
        pytest.param([P1], "pat-001", None, NoPlanError, "no RT Plan", id="case-matters"),
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
    with pytest.raises(PatientMismatchError, match="is not the Patient ID 'PAT-001' of plan 1.1"):
        check_same_patient(cbct_id, P1)


# --- choose_planning_ct --------------------------------------------------------------------------
def test_planning_ct_by_frame_of_reference() -> None:
    series = {"2.1": "1.9.9", "2.2": FRAME}
    assert choose_planning_ct(series, P1) == "2.2"


def test_planning_ct_refusals() -> None:
    with pytest.raises(NoPlanningCtError, match=f"Frame of Reference {FRAME} of plan 1.1"):
        choose_planning_ct({"2.1": "1.9.9"}, P1)
    two = {"2.1": FRAME, "2.2": FRAME}
    with pytest.raises(PlanError, match="2 CT series share .* none is preferred: 2.1, 2.2"):
        choose_planning_ct(two, P1)
    with pytest.raises(PlanError, match="none is preferred"):
        choose_planning_ct(two, P1, preferred_series_uid="2.3")
    assert choose_planning_ct(two, P1, preferred_series_uid="2.2") == "2.2"
