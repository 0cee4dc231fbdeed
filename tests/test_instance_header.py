"""read_header: what the SCP takes from a received data set, and every refusal with its comment."""

from __future__ import annotations

from collections.abc import Callable

import dicom_factory as factory
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    EnhancedCTImageStorage,
    RLELossless,
    RTIonPlanStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    SpatialRegistrationStorage,
)

from igrt.core.kinds import InstanceKind
from igrt.dicom.header import InstanceHeader, read_header
from services.scp.status import InvalidDataSetError

KINDS = {
    "1.2.840.10008.5.1.4.1.1.2": InstanceKind.CT_IMAGE,
    EnhancedCTImageStorage: InstanceKind.ENHANCED_CT,
    RTPlanStorage: InstanceKind.RT_PLAN,
    RTIonPlanStorage: InstanceKind.RT_ION_PLAN,
    RTStructureSetStorage: InstanceKind.RT_STRUCT,
    SpatialRegistrationStorage: InstanceKind.SPATIAL_REGISTRATION,
}


def header(ds: Dataset) -> InstanceHeader:
    return read_header(
        ds,
        kind=KINDS[ds.SOPClassUID],
        sop_class_uid=ds.SOPClassUID,
        sop_instance_uid=ds.SOPInstanceUID,
    )


def item(**attrs: object) -> Dataset:
    ds = Dataset()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def ct() -> Dataset:
    return factory.ct_series(n_slices=1, rows=4, columns=6, name="hdr")[0]


def enhanced() -> Dataset:
    return factory.enhanced_ct(factory.ct_series(n_slices=3, rows=4, columns=6, name="hdr-e"))


def plan(sop_class: str = RTPlanStorage) -> Dataset:
    ds = factory.instance(sop_class, name="hdr-plan")
    ds.RTPlanLabel = "PROSTATE  "
    return ds


def rtss() -> Dataset:
    ds = factory.instance(RTStructureSetStorage, name="hdr-rtss", modality="RTSTRUCT")
    del ds.FrameOfReferenceUID
    ds.StructureSetLabel = "CTV"
    series = [item(SeriesInstanceUID="1.2.3.7"), item(SeriesInstanceUID="1.2.3.8")]
    ds.ReferencedFrameOfReferenceSequence = DicomSequence(
        [
            item(
                FrameOfReferenceUID="1.2.3.5",
                RTReferencedStudySequence=[item(RTReferencedSeriesSequence=series)],
            ),
            item(FrameOfReferenceUID="1.2.3.6"),
        ]
    )
    return ds


def sro() -> Dataset:
    ds = factory.instance(SpatialRegistrationStorage, name="hdr-sro", modality="REG")
    ds.FrameOfReferenceUID = "1.2.3.10"
    ds.RegistrationSequence = DicomSequence(
        [item(FrameOfReferenceUID="1.2.3.10"), item(FrameOfReferenceUID="1.2.3.11")]
    )
    ds.ReferencedSeriesSequence = DicomSequence([item(SeriesInstanceUID="1.2.3.12")])
    ds.StudiesContainingOtherReferencedInstancesSequence = DicomSequence(
        [
            item(
                ReferencedSeriesSequence=[
                    item(SeriesInstanceUID="1.2.3.13"),
                    item(SeriesInstanceUID="1.2.3.12"),  # named twice: kept once
                ]
            )
        ]
    )
    return ds


# --- what is read --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "label", "frame", "frames", "series"),
    [
        pytest.param(ct, None, factory.uid("hdr", "for"), (), (), id="ct"),
        pytest.param(enhanced, None, factory.uid("hdr-e", "for"), (), (), id="enhanced-ct"),
        pytest.param(plan, "PROSTATE", factory.uid("hdr-plan", "for"), (), (), id="rt-plan"),
        pytest.param(
            lambda: plan(RTIonPlanStorage),
            "PROSTATE",
            factory.uid("hdr-plan", "for"),
            (),
            (),
            id="rt-ion-plan",
        ),
        pytest.param(
            rtss, "CTV", "1.2.3.5", ("1.2.3.5", "1.2.3.6"), ("1.2.3.7", "1.2.3.8"), id="rt-struct"
        ),
        pytest.param(
            sro,
            None,
            "1.2.3.10",
            ("1.2.3.10", "1.2.3.11"),
            ("1.2.3.12", "1.2.3.13"),
            id="spatial-registration",
        ),
    ],
)
def test_header_of_each_kind(
    make: Callable[[], Dataset],
    label: str | None,
    frame: str,
    frames: tuple[str, ...],
    series: tuple[str, ...],
) -> None:
    ds = make()
    assert header(ds) == InstanceHeader(
        series_uid=ds.SeriesInstanceUID,
        study_uid=ds.StudyInstanceUID,
        patient_id="PAT-001",
        frame_of_reference_uid=frame,
        modality=ds.Modality,
        label=label,
        referenced_frame_uids=frames,
        referenced_series_uids=series,
    )


def test_patient_id_padding_is_not_part_of_the_id() -> None:
    ds = ct()
    ds.PatientID = "PAT-001 \x00"
    assert header(ds).patient_id == "PAT-001"


def test_compressed_pixel_data_is_not_length_checked() -> None:
    ds = ct()
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"  # an empty offset table, nothing more
    assert header(ds).series_uid == ds.SeriesInstanceUID


# --- refusals ------------------------------------------------------------------------------------
def _delete(*path: str) -> Callable[[Dataset], None]:
    """Delete the last keyword of ``path``; earlier ones (``Keyword[n]``) walk into sequences."""

    def change(ds: Dataset) -> None:
        target = ds
        for step in path[:-1]:
            keyword, index = step.rstrip("]").split("[")
            target = target[keyword].value[int(index)]
        delattr(target, path[-1])

    return change


def _put(keyword: str, value: object) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        setattr(ds, keyword, value)

    return change


def _bad_referenced_series(ds: Dataset) -> None:
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[1].SeriesInstanceUID = "1.2.03"


def _bad_registered_frame(ds: Dataset) -> None:
    ds.RegistrationSequence[1].FrameOfReferenceUID = "1..2"


@pytest.mark.parametrize(
    ("make", "change", "comment"),
    [
        pytest.param(
            ct,
            _delete("PatientID"),
            "Patient ID (0010,0020) is missing or empty",
            id="no-patient-id",
        ),
        pytest.param(
            ct,
            _put("PatientID", "  "),
            "Patient ID (0010,0020) is missing or empty",
            id="blank-patient-id",
        ),
        pytest.param(
            ct,
            _delete("SOPInstanceUID"),
            "SOP Instance UID (0008,0018) is missing",
            id="no-sop-instance-uid",
        ),
        pytest.param(
            ct,
            _put("SOPInstanceUID", "1.2.3.4"),
            "SOP Instance UID (0008,0018) differs from the C-STORE request",
            id="sop-instance-uid-differs",
        ),
        pytest.param(
            ct,
            _put("SOPClassUID", EnhancedCTImageStorage),
            "SOP Class UID (0008,0016) differs from the C-STORE request",
            id="sop-class-differs",
        ),
        pytest.param(
            ct,
            _delete("SeriesInstanceUID"),
            "Series Instance UID (0020,000E) is missing or empty",
            id="no-series-uid",
        ),
        pytest.param(
            ct,
            _delete("StudyInstanceUID"),
            "Study Instance UID (0020,000D) is missing or empty",
            id="no-study-uid",
        ),
        pytest.param(
            ct,
            _put("StudyInstanceUID", "1.2.x"),
            "invalid UID (0020,000D): component 3 ('x') is not made of...",
            id="invalid-study-uid",
        ),
        pytest.param(
            ct,
            _delete("FrameOfReferenceUID"),
            "Frame of Reference UID (0020,0052) is missing or empty",
            id="ct-no-frame",
        ),
        pytest.param(
            ct,
            _delete("ImagePositionPatient"),
            "Image Position (Patient) (0020,0032) missing or invalid",
            id="no-position",
        ),
        pytest.param(
            ct,
            _put("ImagePositionPatient", [1.0, 2.0]),
            "Image Position (Patient) (0020,0032) missing or invalid",
            id="position-two-values",
        ),
        pytest.param(
            ct,
            _put("ImageOrientationPatient", [1, 0, 0, 0, 1, "nan"]),
            "Image Orientation (Patient) (0020,0037) missing or invalid",
            id="orientation-not-finite",
        ),
        pytest.param(
            ct,
            _put("PixelSpacing", [0.5, 0.0]),
            "Pixel Spacing (0028,0030) missing or invalid",
            id="zero-pixel-spacing",
        ),
        pytest.param(ct, _delete("Rows"), "Rows (0028,0010) missing or invalid", id="no-rows"),
        pytest.param(
            ct, _delete("PixelData"), "Pixel Data (7FE0,0010) is missing", id="no-pixel-data"
        ),
        pytest.param(
            ct,
            _put("PixelData", b"\x00" * 46),  # 4 x 6 pixels x 2 bytes = 48
            "Pixel Data has 46 bytes, the image needs 48",
            id="truncated-pixel-data",
        ),
        pytest.param(
            enhanced,
            _put("NumberOfFrames", 4),
            "Number of Frames and per-frame groups (5200,9230) disagree",
            id="enhanced-frame-count",
        ),
        pytest.param(
            enhanced,
            _delete("PerFrameFunctionalGroupsSequence[1]", "PlanePositionSequence"),
            "frame 2: Plane Position (0020,9113) missing or invalid",
            id="enhanced-no-position-in-frame-2",
        ),
        pytest.param(
            enhanced,
            _delete("SharedFunctionalGroupsSequence[0]", "PixelMeasuresSequence"),
            "frame 1: Pixel Measures (0028,9110) missing or invalid",
            id="enhanced-no-pixel-measures",
        ),
        pytest.param(
            enhanced,
            _put("PixelData", b"\x00" * 50),  # 3 frames of 48 bytes = 144
            "Pixel Data has 50 bytes, the image needs 144",
            id="enhanced-truncated-pixel-data",
        ),
        pytest.param(
            plan,
            _delete("FrameOfReferenceUID"),
            "no Frame of Reference UID and no referenced structure set",
            id="plan-no-frame-no-structure-set",
        ),
        pytest.param(
            rtss,
            _delete("ReferencedFrameOfReferenceSequence"),
            "no Frame of Reference UID in sequence (3006,0010)",
            id="rtss-no-frame",
        ),
        pytest.param(
            rtss,
            _bad_referenced_series,
            "invalid UID (0020,000E): component 3 ('03') has a leading zero",
            id="rtss-invalid-referenced-series",
        ),
        pytest.param(
            sro,
            _bad_registered_frame,
            "invalid UID (0020,0052): component 2 is empty",
            id="sro-invalid-registered-frame",
        ),
        pytest.param(
            sro,
            _delete("RegistrationSequence"),
            "no registered frame in Registration Sequence (0070,0308)",
            id="sro-no-registration",
        ),
    ],
)
def test_what_igrt_needs_missing_or_invalid_is_refused_with_a_short_comment(
    make: Callable[[], Dataset], change: Callable[[Dataset], None], comment: str
) -> None:
    ds = make()
    request = (ds.SOPClassUID, ds.SOPInstanceUID)
    change(ds)
    with pytest.raises(InvalidDataSetError) as refused:
        read_header(
            ds, kind=KINDS[request[0]], sop_class_uid=request[0], sop_instance_uid=request[1]
        )
    assert refused.value.comment == comment
    assert refused.value.reason.startswith("invalid_data_set: ")  # the full sentence, for the log
    assert refused.value.message != comment


def test_a_plan_without_a_frame_but_with_its_structure_set_is_accepted() -> None:
    """Eclipse and Monaco leave the plan's Frame of Reference out (it is optional in the RT Plan
    IOD): the plan's frame is then its structure set's, resolved at registration."""
    ds = plan()
    del ds.FrameOfReferenceUID
    ds.ReferencedStructureSetSequence = DicomSequence([item(
        ReferencedSOPClassUID=RTStructureSetStorage, ReferencedSOPInstanceUID="1.2.3.55")])
    header = read_header(ds, kind=InstanceKind.RT_PLAN, sop_class_uid=ds.SOPClassUID,
                         sop_instance_uid=ds.SOPInstanceUID)
    assert header.frame_of_reference_uid is None
