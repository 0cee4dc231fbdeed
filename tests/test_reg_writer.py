"""igrt.dicom.reg_writer: the DICOM record of an approved correction passes dciodvfy, says what
the contract says (CBCT frame -> planning frame, both series, the operator, igrt and the seq) and
reads back through igrt's own Spatial Registration reader to the very matrix written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom3tools import dciodvfy_errors
from phantom_cases import planning_set

from igrt.core import geometry
from igrt.core.errors import RecordError
from igrt.core.geometry import CouchCorrection
from igrt.core.spatial_registration import nominal_matrix
from igrt.dicom.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, new_uid
from igrt.dicom.reg_writer import (
    RecordContent,
    SeriesReference,
    content_label,
    patient_study_of,
    spatial_registration,
)
from igrt.dicom.registration_reader import read_spatial_registration
from igrt.dicom.values import decimal_string
from phantoms.generator import PlanningCase, expected_registration, write_cbct

APPROVED = datetime(2026, 11, 21, 18, 31, 5, 250000, tzinfo=UTC)
KNOWN = CouchCorrection(3.0, -5.0, 2.0, 1.0, -0.5, 1.5)


def _series(directory: Path) -> tuple[pydicom.Dataset, SeriesReference]:
    files = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(directory.glob("CT*"))]
    first = files[0]
    return first, SeriesReference(
        str(first.StudyInstanceUID), str(first.SeriesInstanceUID),
        str(first.FrameOfReferenceUID),
        tuple((str(f.SOPClassUID), str(f.SOPInstanceUID)) for f in files))


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[PlanningCase, Path]:
    root = tmp_path_factory.mktemp("reg")
    plan = planning_set(root)
    cbct = write_cbct(root / "cbct", plan, KNOWN, frame="origin", degrade=False)
    return plan, cbct.directory


def _content(case: tuple[PlanningCase, Path], *, same_frame: bool = False,
             operator: str = "Zoë Smith", matrix: np.ndarray | None = None) -> RecordContent:
    plan, cbct_dir = case
    header, cbct = _series(cbct_dir)
    _, planning = _series(plan.directory)
    if same_frame:
        cbct = SeriesReference(cbct.study_uid, cbct.series_uid, planning.frame_of_reference_uid,
                               cbct.instances)
    t = expected_registration(plan, KNOWN, "origin") if matrix is None else matrix
    return RecordContent(
        sop_instance_uid=str(new_uid()), series_uid=str(new_uid()), seq=17, room="TB1",
        operator=operator, approved_at=APPROVED, cbct=cbct, planning_ct=planning,
        cbct_to_planning=t, patient_study=patient_study_of(header), software_version="0.1.0",
        couch_dof=4)


@pytest.mark.parametrize("same_frame", [False, True], ids=["own-frame", "planning-frame"])
def test_record_passes_dciodvfy(case: tuple[PlanningCase, Path], tmp_path: Path,
                                same_frame: bool) -> None:
    path = tmp_path / "reg.dcm"
    spatial_registration(_content(case, same_frame=same_frame)).save_as(
        path, enforce_file_format=True)
    assert dciodvfy_errors(path) == []


def test_record_says_what_the_contract_says(case: tuple[PlanningCase, Path],
                                            tmp_path: Path) -> None:
    content = _content(case)
    path = tmp_path / "reg.dcm"
    spatial_registration(content).save_as(path, enforce_file_format=True)
    d = pydicom.dcmread(path)
    assert d.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert d.file_meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    assert d.Modality == "REG"
    assert d.ContentLabel == "IGRT_SEQ_17"
    assert "igrt" in d.ContentDescription and "seq 17" in d.ContentDescription
    assert str(d.ContentCreatorName) == str(d.OperatorsName) == "Zoë Smith"
    assert (d.ContentDate, d.ContentTime) == ("20261121", "183105.250000"[:13])
    assert d.PatientID == "PHANTOM-001"
    assert d.StudyInstanceUID == content.cbct.study_uid  # the treatment session's study
    assert d.FrameOfReferenceUID == content.planning_ct.frame_of_reference_uid
    refs = {s.SeriesInstanceUID: [i.ReferencedSOPInstanceUID for i in s.ReferencedInstanceSequence]
            for s in d.ReferencedSeriesSequence}
    for study in d.get("StudiesContainingOtherReferencedInstancesSequence", []):
        refs |= {s.SeriesInstanceUID: [i.ReferencedSOPInstanceUID
                                       for i in s.ReferencedInstanceSequence]
                 for s in study.ReferencedSeriesSequence}
    for series in (content.cbct, content.planning_ct):
        assert refs[series.series_uid] == [uid for _, uid in series.instances]
    cbct_item = d.RegistrationSequence[1]
    assert cbct_item.FrameOfReferenceUID == content.cbct.frame_of_reference_uid
    assert [r.ReferencedSOPInstanceUID for r in cbct_item.ReferencedImageSequence] == \
        [uid for _, uid in content.cbct.instances]


def test_matrix_reads_back_through_igrts_reader(case: tuple[PlanningCase, Path],
                                                tmp_path: Path) -> None:
    content = _content(case)
    path = tmp_path / "reg.dcm"
    spatial_registration(content).save_as(path, enforce_file_format=True)
    sro = read_spatial_registration(pydicom.dcmread(path))
    back = nominal_matrix(sro, cbct_frame_uid=content.cbct.frame_of_reference_uid,
                          planning_frame_uid=content.planning_ct.frame_of_reference_uid)
    np.testing.assert_allclose(back, content.cbct_to_planning, atol=1e-9)
    # the CBCT origin maps to where that point lies in planning coordinates
    np.testing.assert_allclose(geometry.apply(back, [0.0, 0.0, 0.0]),
                               content.cbct_to_planning[:3, 3], atol=1e-9)


def test_shared_frame_names_the_cbct_images_only(case: tuple[PlanningCase, Path]) -> None:
    d = spatial_registration(_content(case, same_frame=True))
    item = d.RegistrationSequence[1]
    assert "FrameOfReferenceUID" not in item
    assert len(item.ReferencedImageSequence) > 0
    assert d.RegistrationSequence[0].FrameOfReferenceUID == d.FrameOfReferenceUID


@pytest.mark.parametrize("operator", ["", "   ", "A\\B", "tab\there", "x" * 65])
def test_unrecordable_operator_is_refused(case: tuple[PlanningCase, Path], operator: str) -> None:
    with pytest.raises(RecordError, match="operator"):
        spatial_registration(_content(case, operator=operator))


def test_non_rigid_matrix_is_refused(case: tuple[PlanningCase, Path]) -> None:
    scaled = np.diag([1.1, 1.0, 1.0, 1.0])
    with pytest.raises(RecordError, match="rigid"):
        spatial_registration(_content(case, matrix=scaled))


@pytest.mark.parametrize(("seq", "label"), [(1, "IGRT_SEQ_1"), (1234567, "IGRT_SEQ_1234567"),
                                            (12345678901, "IGRT_12345678901")])
def test_content_label_fits_cs(seq: int, label: str) -> None:
    assert content_label(seq) == label
    assert len(label) <= 16


@pytest.mark.parametrize("value", [0.0, -0.0, 1.0, -785.123456789012, 1e-17, 0.999999999999999,
                                   -123456789.123456])
def test_decimal_string_is_at_most_16_characters_and_closest(value: float) -> None:
    text = decimal_string(value)
    assert len(text) <= 16
    assert text != "-0"
    assert abs(float(text) - value) <= 1e-10 * max(1.0, abs(value))
