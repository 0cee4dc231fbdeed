"""igrt.dicom.plan_reader: RT Plan / RT Ion Plan reading (CONTRACT §3). The decisions made
with plans are tested in test_matching.py."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pytest
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ImplicitVRLittleEndian
from pydicom.uid import RTIonPlanStorage as RT_ION_PLAN_SOP_CLASS
from pydicom.uid import RTPlanStorage as RT_PLAN_SOP_CLASS

from igrt.core.errors import (
    PlanError,
)
from igrt.core.geometry import PatientPosition
from igrt.core.plan import Plan, distinct_points
from igrt.dicom.plan_reader import read_plan

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


def test_a_plan_without_a_frame_reads_and_refuses_use_until_it_has_one() -> None:
    plan = read_plan(plan_ds(FrameOfReferenceUID=None))
    assert plan.frame_of_reference_uid is None
    with pytest.raises(PlanError, match=r"no Frame of Reference UID \(0020,0052\) and its "
                                        r"referenced RT Structure Set \(none referenced\)"):
        plan.frame  # noqa: B018


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
        pytest.param(plan_ds([beam(1, ISO_A), beam(2, None)]),
                     r"beam 2 \(B2\) has no Isocenter Position \(300A,012C\)",
                     id="no-isocenter-position"),
        pytest.param(plan_ds([beam(1, (1.0, 2.0))]),
                     r"Isocenter Position \(300A,012C\) of beam 1 \(B1\) is not 3 numbers",
                     id="isocenter-with-two-values"),
        pytest.param(plan_ds(BeamSequence=DicomSequence([])), "has no beam", id="no-beams"),
        pytest.param(plan_ds([beam(1, ISO_A, delivery="SETUP")]), "only SETUP or imaging beams",
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
