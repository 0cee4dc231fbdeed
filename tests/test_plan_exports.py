"""RT Plans built like real planning-system exports (what Eclipse/ARIA, Monaco, RayStation and
Pinnacle put where; see the README's notes on planning systems): read through a file round
trip, each must give its one treatment isocentre, its frame (from the plan, else from the
referenced structure set), its patient position and approval status."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RTPlanStorage,
    RTStructureSetStorage,
)

from igrt.core.errors import PlanError
from igrt.core.geometry import PatientPosition
from igrt.core.plan import Plan, with_structure_set_frame
from igrt.core.structures import StructureSet
from igrt.dicom.plan_reader import read_plan
from igrt.dicom.values import dataset

FRAME = "1.2.840.113619.2.55.3.671756986.106.1316467036.462.11505.1"


@dataclass(frozen=True)
class BeamSpec:
    number: int
    name: str
    delivery: str  # TreatmentDeliveryType
    iso: tuple[str, str, str]  # as the DS strings the system writes
    meterset: str | None  # BeamMeterset in the fraction group; None = not written
    setup: int = 1


def export(beams: Sequence[BeamSpec], *, frame: str | None, structure_set: str | None,
           approval: str | None, setups: Sequence[tuple[int, str]] = ((1, "HFS"),),
           groups: Sequence[Sequence[int]] | None = None, implicit: bool = False,
           label: str | None = "PLAN") -> Plan:
    """Write the plan as a file and read it back, so values are typed as a real file's."""
    ds = Dataset()
    ds.SOPClassUID = RTPlanStorage
    ds.SOPInstanceUID = "1.2.246.352.71.5.2088656855.377401.20110920153647"
    ds.PatientID = "PHANTOM-7"
    ds.Modality = "RTPLAN"
    if frame is not None:
        ds.FrameOfReferenceUID = frame
    if label is not None:
        ds.RTPlanLabel = label
    ds.RTPlanGeometry = "PATIENT" if structure_set else "TREATMENT_DEVICE"
    if approval is not None:
        ds.ApprovalStatus = approval
        if approval == "APPROVED":
            ds.ReviewDate, ds.ReviewTime, ds.ReviewerName = "20260105", "150247.000000", "A^B"
    if structure_set is not None:
        ds.ReferencedStructureSetSequence = DicomSequence([dataset(
            ReferencedSOPClassUID=RTStructureSetStorage, ReferencedSOPInstanceUID=structure_set)])
    ds.PatientSetupSequence = DicomSequence([dataset(PatientSetupNumber=number,
                                                     PatientPosition=position)
                                             for number, position in setups])
    beam_items = []
    for spec in beams:
        b = Dataset()
        b.BeamNumber = spec.number
        b.BeamName = spec.name
        b.BeamType = "STATIC"
        b.RadiationType = "PHOTON"
        b.TreatmentDeliveryType = spec.delivery
        b.ReferencedPatientSetupNumber = spec.setup
        cp0, cp1 = Dataset(), Dataset()
        cp0.ControlPointIndex = 0
        cp0.IsocenterPosition = list(spec.iso)
        cp0.TableTopVerticalPosition = ""  # type 2, written empty
        cp1.ControlPointIndex = 1
        b.ControlPointSequence = DicomSequence([cp0, cp1])
        beam_items.append(b)
    ds.BeamSequence = DicomSequence(beam_items)
    fraction_groups = []
    for n, numbers in enumerate(groups or [[s.number for s in beams]], start=1):
        fg = Dataset()
        fg.FractionGroupNumber = n
        refs = []
        for spec in beams:
            if spec.number not in numbers:
                continue
            r = Dataset()
            r.ReferencedBeamNumber = spec.number
            if spec.meterset is not None:
                r.BeamMeterset = spec.meterset
            refs.append(r)
        fg.ReferencedBeamSequence = DicomSequence(refs)
        fraction_groups.append(fg)
    ds.FractionGroupSequence = DicomSequence(fraction_groups)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    buffer.seek(0)
    return read_plan(dcmread(buffer))


ECLIPSE_ISO = ("-1.31333e-4", "9.0895911e-1", "-3.333e-6")


def test_eclipse_8_cbct_field_as_treatment_beam_and_no_frame() -> None:
    """ARIA 8.1: no top-level frame; the "CBCT" imaging field is a TREATMENT beam with no
    meterset and its own patient setup; one setup per beam; UNAPPROVED; DS in exponent form."""
    beams = [BeamSpec(n, f"G{n}", "TREATMENT", ECLIPSE_ISO, "5.0e1", setup=n) for n in (1, 2, 3, 4)]
    beams.append(BeamSpec(5, "CBCT", "TREATMENT", ECLIPSE_ISO, None, setup=5))
    plan = export(beams, frame=None, structure_set="1.2.246.352.71.4.2088656855.2404649",
                  approval="UNAPPROVED", setups=[(n, "HFS") for n in range(1, 6)], implicit=True)
    assert plan.beam_count == 4  # the imaging field is not a treatment beam
    assert plan.isocenters_mm == ((-1.31333e-4, 0.90895911, -3.333e-6),)
    assert plan.frame_of_reference_uid is None
    assert plan.approval_status == "UNAPPROVED"
    ss = StructureSet("1.2.246.352.71.4.2088656855.2404649", FRAME, None, ())
    assert with_structure_set_frame(plan, [ss]).frame == FRAME


def test_an_imaging_field_at_another_isocentre_is_not_a_second_isocentre() -> None:
    beams = [BeamSpec(1, "ARC1", "TREATMENT", ("0", "-110", "-785.5"), "180.5"),
             BeamSpec(2, "CBCT", "TREATMENT", ("0", "-60", "-785.5"), None)]
    plan = export(beams, frame=FRAME, structure_set=None, approval="UNAPPROVED")
    assert plan.isocenters_mm == ((0.0, -110.0, -785.5),)


def test_ethos_kvcbct_setup_beam_first_and_numbers_not_in_order() -> None:
    """ARIA 16 Ethos: the kVCBCT SETUP field comes first in the sequence but has number 8; the
    treatment beams are 1 and 9; frame present; no RTPlanName; UNAPPROVED."""
    iso = ("2.0693163979e-14", "2.0693163979e-14", "0")
    beams = [BeamSpec(8, "kVCBCT", "SETUP", iso, None, setup=8),
             BeamSpec(1, "ARC1", "TREATMENT", iso, "301.2", setup=1),
             BeamSpec(9, "ARC2", "TREATMENT", iso, "298.7", setup=9)]
    plan = export(beams, frame=FRAME, structure_set="1.2.3.4", approval="UNAPPROVED",
                  setups=[(8, "HFS"), (1, "HFS"), (9, "HFS")])
    assert (plan.beam_count, len(plan.isocenters_mm)) == (2, 1)
    assert plan.frame == FRAME


def test_monaco_composite_plan_two_fraction_groups_no_frame_approved() -> None:
    """Monaco ("CMS, Inc."): no top-level frame (it is the structure set's), a structure set UID
    prefixed by its SOP class UID, one shared setup, APPROVED with review attributes, and a
    composite plan of two fraction groups over one beam list."""
    iso = ("-12.500000", "34.100000", "-5.000000")
    beams = [BeamSpec(n, f"{n}", "TREATMENT", iso, "189.572800") for n in range(1, 7)]
    ss_uid = "1.2.840.10008.5.1.4.1.1.481.3.1523415120"
    plan = export(beams, frame=None, structure_set=ss_uid, approval="APPROVED",
                  groups=[[1, 2, 3], [4, 5, 6]], label="AMC06MV")
    assert (plan.beam_count, plan.isocenters_mm) == (6, ((-12.5, 34.1, -5.0),))
    assert plan.approval_status == "APPROVED"
    assert plan.referenced_structure_set_uid == ss_uid
    assert with_structure_set_frame(plan, [StructureSet(ss_uid, FRAME, None, ())]).frame == FRAME


def test_raystation_setup_beams_are_setup() -> None:
    iso = ("1.23", "-4.56", "7.89")
    beams = [BeamSpec(1, "SetUp AP", "SETUP", iso, None),
             BeamSpec(2, "SetUp CBCT", "SETUP", iso, None),
             BeamSpec(3, "1", "TREATMENT", iso, "250.0"),
             BeamSpec(4, "2", "TREATMENT", iso, "251.0")]
    plan = export(beams, frame=FRAME, structure_set="1.2.752.243.1.1.1", approval="APPROVED")
    assert (plan.beam_count, plan.isocenters_mm) == (2, ((1.23, -4.56, 7.89),))


def test_pinnacle_spaces_in_numbers_and_no_structure_set() -> None:
    beams = [BeamSpec(1, "B1", "TREATMENT", (" 10.5", "   -3.0", " 0.0"), " 120.0")]
    plan = export(beams, frame=FRAME, structure_set=None, approval="UNAPPROVED")
    assert plan.isocenters_mm == ((10.5, -3.0, 0.0),) and plan.frame == FRAME
    assert plan.referenced_structure_set_uid is None


def test_plans_that_list_no_meterset_keep_every_beam() -> None:
    """BeamMeterset is optional: without any, no beam is taken for an imaging field."""
    beams = [BeamSpec(1, "A", "TREATMENT", ("0", "0", "0"), None),
             BeamSpec(2, "B", "TREATMENT", ("40", "0", "0"), None)]
    plan = export(beams, frame=FRAME, structure_set=None, approval=None)
    assert plan.beam_count == 2 and len(plan.isocenters_mm) == 2
    assert plan.approval_status == ""


def test_only_imaging_fields_is_not_a_treatment_plan() -> None:
    beams = [BeamSpec(1, "CBCT", "SETUP", ("0", "0", "0"), None)]
    with pytest.raises(PlanError, match="only SETUP or imaging beams"):
        export(beams, frame=FRAME, structure_set=None, approval="APPROVED")


@pytest.mark.parametrize("position", list(PatientPosition))
def test_each_position_is_read(position: PatientPosition) -> None:
    beams = [BeamSpec(1, "A", "TREATMENT", ("0", "0", "0"), "100")]
    plan = export(beams, frame=FRAME, structure_set=None, approval="APPROVED",
                  setups=[(1, position.value)])
    assert plan.patient_position is position
