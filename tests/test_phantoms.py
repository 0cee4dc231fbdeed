"""Tests of the digital phantoms: DICOM content, scanner geometry per patient position, and the
known-answer geometry of the CBCT (hand-computed, independent of ``igrt.core.geometry``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from igrt.core.geometry import CouchCorrection, PatientPosition
from phantoms import anatomy
from phantoms.__main__ import main as cli_main
from phantoms.generator import (
    PlanningCase,
    read_planning_case,
    write_cbct,
    write_planning_set,
)

HFS, FFS, HFP, FFP = (PatientPosition.HFS, PatientPosition.FFS, PatientPosition.HFP,
                      PatientPosition.FFP)
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CUBE_CENTER = np.array(anatomy.CUBE_CENTER_MM)  # also the cube's plan isocentre
MARKERS = [CUBE_CENTER + np.array(m) for m in anatomy.CUBE_MARKERS_MM]


@dataclass(frozen=True)
class Loaded:
    hu: npt.NDArray[np.float64]  # [k, j, i], k increasing along the slice normal
    origin: npt.NDArray[np.float64]
    spacing: npt.NDArray[np.float64]  # column, row, slice
    direction: npt.NDArray[np.float64]  # columns: LPS directions of i, j, k
    datasets: list[pydicom.Dataset]

    def points(self, region: tuple[slice, slice, slice] | None = None) -> npt.NDArray[np.float64]:
        """LPS positions ``[k, j, i, 3]`` of the voxels (of a ``[k, j, i]`` region)."""
        nk, nj, ni = self.hu.shape
        zs, ys, xs = region or (slice(None), slice(None), slice(None))
        k, j, i = np.meshgrid(np.arange(nk)[zs], np.arange(nj)[ys], np.arange(ni)[xs],
                              indexing="ij")
        idx = np.stack([i, j, k], axis=-1) * self.spacing
        return np.asarray(self.origin + idx @ self.direction.T)

    def center(self) -> npt.NDArray[np.float64]:
        nk, nj, ni = self.hu.shape
        half = self.spacing * (np.array([ni, nj, nk]) - 1) / 2.0
        return np.asarray(self.origin + self.direction @ half)

    def sitk_image(self) -> sitk.Image:
        image = sitk.GetImageFromArray(self.hu.astype(np.float32))
        image.SetOrigin(tuple(self.origin))
        image.SetSpacing(tuple(self.spacing))
        image.SetDirection(tuple(self.direction.ravel()))
        return image


def load_series(directory: Path) -> Loaded:
    """CT image files of a directory, sorted by position along the slice normal (not by name)."""
    files = [pydicom.dcmread(p) for p in directory.iterdir()]
    datasets: list[pydicom.Dataset] = [d for d in files if d.SOPClassUID == CT_STORAGE]
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda d: float(normal @ np.array(d.ImagePositionPatient, dtype=float)))
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept)
                   for d in datasets])
    p0 = np.array(datasets[0].ImagePositionPatient, dtype=float)
    p1 = np.array(datasets[1].ImagePositionPatient, dtype=float)
    row_spacing, col_spacing = (float(v) for v in datasets[0].PixelSpacing)
    return Loaded(hu, p0, np.array([col_spacing, row_spacing, float(normal @ (p1 - p0))]),
                  np.stack([iop[:3], iop[3:], normal], axis=1), datasets)


def centroid(vol: Loaded, near: npt.ArrayLike, *, radius_mm: float = 9.0,
             threshold_hu: float = 750.0) -> npt.NDArray[np.float64]:
    """Weighted centroid of the voxels above ``threshold_hu`` within ``radius_mm`` of ``near``."""
    ijk = vol.direction.T @ (np.asarray(near) - vol.origin) / vol.spacing
    reach = radius_mm / vol.spacing + 1
    zs, ys, xs = (slice(max(int(ijk[a] - reach[a]), 0), int(ijk[a] + reach[a]) + 1)
                  for a in (2, 1, 0))
    region = (zs, ys, xs)
    pts = vol.points(region)
    inside = np.linalg.norm(pts - np.asarray(near), axis=-1) < radius_mm
    w = np.clip(vol.hu[region][inside] - threshold_hu, 0.0, None)
    assert w.sum() > 0, f"no marker voxel near {np.asarray(near)}"
    return np.asarray((pts[inside] * w[:, None]).sum(axis=0) / w.sum())


def others(directory: Path, modality: str) -> list[pydicom.Dataset]:
    return [d for d in (pydicom.dcmread(p) for p in directory.iterdir()) if d.Modality == modality]


@pytest.fixture(scope="module")
def cubes(tmp_path_factory: pytest.TempPathFactory) -> dict[PatientPosition, PlanningCase]:
    root = tmp_path_factory.mktemp("cubes")
    return {p: write_planning_set(root / p.value, phantom="cube", patient_position=p,
                                  patient_id=f"CUBE-{p.value}") for p in (HFS, FFS, HFP, FFP)}


@pytest.fixture(scope="module")
def body(tmp_path_factory: pytest.TempPathFactory) -> PlanningCase:
    return write_planning_set(tmp_path_factory.mktemp("body") / "plan", phantom="body")


# --- the planning set ----------------------------------------------------------------------------
CT_ATTRIBUTES = (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
    "FrameOfReferenceUID", "PatientID", "PatientName", "ImagePositionPatient",
    "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "Rows", "Columns",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PhotometricInterpretation",
    "InstanceNumber", "PatientPosition", "RescaleSlope", "RescaleIntercept", "Modality",
)


def test_planning_set_files_carry_the_required_attributes(body: PlanningCase) -> None:
    ct = load_series(body.directory)
    assert ct.hu.shape == (64, 192, 192)
    for d in ct.datasets:
        assert d.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        missing = [a for a in CT_ATTRIBUTES if a not in d]
        assert not missing, f"CT slice lacks {missing}"
        assert d.FrameOfReferenceUID == body.frame_of_reference_uid
        assert d.SeriesInstanceUID == body.ct_series_uid
        assert (d.PatientID, d.Modality, d.PatientPosition) == ("PHANTOM-001", "CT", "HFS")
        assert (d.BitsAllocated, d.PixelRepresentation, float(d.RescaleIntercept)) == (16, 1, -1024)
    (plan,) = others(body.directory, "RTPLAN")
    assert plan.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.5"
    assert plan.SOPInstanceUID == body.plan_uid
    assert plan.FrameOfReferenceUID == body.frame_of_reference_uid
    assert plan.PatientID == "PHANTOM-001" and plan.RTPlanLabel
    assert plan.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID == (
        body.structure_set_uid)
    assert plan.PatientSetupSequence[0].PatientPosition == "HFS"
    assert len(plan.BeamSequence) >= 2
    setup_number = plan.PatientSetupSequence[0].PatientSetupNumber
    assert all(b.ReferencedPatientSetupNumber == setup_number for b in plan.BeamSequence)
    (rs,) = others(body.directory, "RTSTRUCT")
    assert rs.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.3"
    assert rs.SOPInstanceUID == body.structure_set_uid
    names = {r.ROINumber: r.ROIName for r in rs.StructureSetROISequence}
    assert sorted(names.values()) == ["BODY", "PTV", "REG_BOX"]
    kinds = {names[o.ReferencedROINumber]: o.RTROIInterpretedType
             for o in rs.RTROIObservationsSequence}
    assert kinds["BODY"] == "EXTERNAL" and kinds["PTV"] == "PTV"
    for rc in rs.ROIContourSequence:
        assert all(c.ContourGeometricType == "CLOSED_PLANAR" for c in rc.ContourSequence)
    body_roi = next(rc for rc in rs.ROIContourSequence if names[rc.ReferencedROINumber] == "BODY")
    assert len(body_roi.ContourSequence) == 64  # the torso crosses every slice


def test_reg_box_is_100_mm_around_the_isocentre(body: PlanningCase) -> None:
    (rs,) = others(body.directory, "RTSTRUCT")
    number = next(r.ROINumber for r in rs.StructureSetROISequence if r.ROIName == "REG_BOX")
    rc = next(r for r in rs.ROIContourSequence if r.ReferencedROINumber == number)
    pts = np.concatenate([np.array(c.ContourData, dtype=float).reshape(-1, 3)
                          for c in rc.ContourSequence])
    iso = np.array(body.isocenter_mm)
    assert np.allclose(pts[:, :2].min(axis=0), iso[:2] - 50.0)
    assert np.allclose(pts[:, :2].max(axis=0), iso[:2] + 50.0)
    assert np.all(np.abs(pts[:, 2] - iso[2]) <= 50.0)
    assert pts[:, 2].max() - pts[:, 2].min() >= 90.0  # slices every 5 mm over +-50 mm


def test_slice_files_are_not_in_slice_order_by_name(body: PlanningCase) -> None:
    by_name = sorted(p for p in body.directory.iterdir() if p.name.startswith("CT."))
    z = [float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2])
         for p in by_name]
    assert z != sorted(z) and z != sorted(z, reverse=True)


@pytest.mark.parametrize(
    ("position", "iop"),
    [
        pytest.param(HFS, (1, 0, 0, 0, 1, 0), id="HFS"),
        pytest.param(FFS, (-1, 0, 0, 0, 1, 0), id="FFS"),
        pytest.param(HFP, (-1, 0, 0, 0, -1, 0), id="HFP"),
        pytest.param(FFP, (1, 0, 0, 0, -1, 0), id="FFP"),
    ],
)
def test_scanner_orientation_and_patient_position(
    cubes: dict[PatientPosition, PlanningCase], tmp_path: Path, position: PatientPosition,
    iop: tuple[int, ...],
) -> None:
    case = cubes[position]
    cbct = write_cbct(tmp_path, case, CouchCorrection.zero(), degrade=False)
    for directory in (case.directory, cbct.directory):
        for d in load_series(directory).datasets:
            assert tuple(float(v) for v in d.ImageOrientationPatient) == iop
            assert d.PatientPosition == position.value
    (plan,) = others(case.directory, "RTPLAN")
    assert plan.PatientSetupSequence[0].PatientPosition == position.value


@pytest.mark.parametrize(
    ("position", "down_y"),
    [pytest.param(HFS, 1.0, id="HFS-posterior"), pytest.param(FFS, 1.0, id="FFS-posterior"),
     pytest.param(HFP, -1.0, id="HFP-anterior"), pytest.param(FFP, -1.0, id="FFP-anterior")],
)
def test_ct_couch_lies_under_the_patient(
    cubes: dict[PatientPosition, PlanningCase], position: PatientPosition, down_y: float
) -> None:
    ct = load_series(cubes[position].directory)
    pts = ct.points()
    # Column through x = 0: the couch's carbon top (350 HU) is 2 mm beyond the cube face
    # (75 mm from its centre), on the posterior side supine and the anterior side prone.
    column = np.abs(pts[..., 0] - CUBE_CENTER[0]) < 2.0
    column &= np.abs(pts[..., 2] - CUBE_CENTER[2]) < 20.0
    depth = (pts[..., 1] - CUBE_CENTER[1]) * down_y
    below = column & (depth > 76.0) & (depth < 82.0)
    above = column & (depth < -76.0) & (depth > -82.0)
    assert ct.hu[below].max() > -300.0  # a 2 mm carbon skin in 2.6 mm voxels
    assert ct.hu[above].max() < -950.0


def test_plan_isocentres(tmp_path: Path) -> None:
    default = write_planning_set(tmp_path / "one", phantom="cube")
    (plan,) = others(default.directory, "RTPLAN")
    for beam in plan.BeamSequence:
        iso = beam.ControlPointSequence[0].IsocenterPosition
        assert tuple(float(v) for v in iso) == default.isocenter_mm == (1.5, 4.25, -398.75)
    isos = [(10.0, 5.0, -390.0), (-20.5, 5.0, -410.25)]
    multi = write_planning_set(tmp_path / "two", phantom="cube", isocenters_mm=isos)
    (plan,) = others(multi.directory, "RTPLAN")
    found = [tuple(float(v) for v in b.ControlPointSequence[0].IsocenterPosition)
             for b in plan.BeamSequence]
    assert multi.isocenter_mm == isos[0]
    assert sorted(set(found)) == sorted(isos)
    assert found[0] == isos[0]


def test_planning_case_reads_back(body: PlanningCase) -> None:
    assert read_planning_case(body.directory) == body


def test_two_directories_never_share_uids(tmp_path: Path) -> None:
    a = write_planning_set(tmp_path / "a", phantom="cube")
    b = write_planning_set(tmp_path / "b", phantom="cube")
    assert a.plan_uid != b.plan_uid and a.ct_series_uid != b.ct_series_uid
    assert a.frame_of_reference_uid != b.frame_of_reference_uid


# --- known-answer geometry -----------------------------------------------------------------------
def yaw_hfs(v: npt.NDArray[np.float64], deg: float) -> npt.NDArray[np.float64]:
    """HFS: rotate an LPS vector by ``deg`` about IEC Z (vertical up = -y), right-handed:
    IEC (X, Y) = (x, z) -> (X cos - Y sin, X sin + Y cos)."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([v[0] * c - v[2] * s, v[1], v[0] * s + v[2] * c])


def pitch_hfs(v: npt.NDArray[np.float64], deg: float) -> npt.NDArray[np.float64]:
    """HFS: rotate an LPS vector by ``deg`` about IEC X (= +x), right-handed, with IEC
    (Y, Z) = (z, -y) -> (Y cos - Z sin, Y sin + Z cos)."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    iec_y, iec_z = v[2], -v[1]
    return np.array([v[0], -(iec_y * s + iec_z * c), iec_y * c - iec_z * s])


# (position, frame, correction, where the anatomy point at offset v from the plan isocentre now
# sits in the room, hand-derived from CONTRACT §1).
KNOWN_ANSWERS = [
    pytest.param(HFS, "origin", CouchCorrection(0, -5, 0, 0, 0, 0),
                 lambda v: v + (0, 0, 5), id="HFS-long-5-is-5mm-superior"),
    pytest.param(FFS, "origin", CouchCorrection(0, -5, 0, 0, 0, 0),
                 lambda v: v + (0, 0, -5), id="FFS-long-5-is-5mm-inferior"),
    pytest.param(HFS, "planning", CouchCorrection(0, 0, 3, 0, 0, 0),
                 lambda v: v + (0, 3, 0), id="HFS-vert+3-is-3mm-posterior"),
    pytest.param(HFP, "origin", CouchCorrection(4, 0, 3, 0, 0, 0),
                 lambda v: v + (4, -3, 0), id="HFP-lat+4-vert+3"),
    pytest.param(FFP, "sro", CouchCorrection(0, 6, 0, 0, 0, 0),
                 lambda v: v + (0, 0, 6), id="FFP-long+6-sro"),
    pytest.param(HFS, "center", CouchCorrection(0, 0, 0, 0, 0, -3),
                 lambda v: yaw_hfs(v, 3.0), id="HFS-rotation-3-is-yaw+3"),
    pytest.param(HFS, "origin", CouchCorrection(2, 0, 0, 2, 0, 0),
                 lambda v: pitch_hfs(v, -2.0) + (-2, 0, 0), id="HFS-pitch+2-lat+2"),
]


def cbct_to_room(frame: str, vol: Loaded, sro_matrix: npt.NDArray[np.float64] | None,
                 iso: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """4x4 CBCT point -> room point at the nominal setup, per CONTRACT §2."""
    m = np.eye(4)
    if frame == "planning":
        m[:3, 3] = -iso
    elif frame == "center":
        m[:3, 3] = -vol.center()
    elif frame == "sro":
        assert sro_matrix is not None
        m = sro_matrix.copy()
        m[:3, 3] -= iso
    return m


def read_sro(directory: Path, cbct_frame: str, planning_frame: str) -> npt.NDArray[np.float64]:
    (sro,) = others(directory, "REG")
    assert sro.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.1"
    assert sro.FrameOfReferenceUID == planning_frame
    (item,) = [r for r in sro.RegistrationSequence if r.FrameOfReferenceUID == cbct_frame]
    matrix = item.MatrixRegistrationSequence[0].MatrixSequence[0]
    assert matrix.FrameOfReferenceTransformationMatrixType == "RIGID"
    return np.array(matrix.FrameOfReferenceTransformationMatrix, dtype=float).reshape(4, 4)


@pytest.mark.parametrize(("position", "frame", "correction", "moved"), KNOWN_ANSWERS)
def test_markers_appear_where_the_known_correction_says(
    cubes: dict[PatientPosition, PlanningCase], tmp_path: Path, position: PatientPosition,
    frame: str, correction: CouchCorrection, moved: object,
) -> None:
    case = cubes[position]
    ct = load_series(case.directory)
    for marker in MARKERS:  # the planning CT shows them where the phantom has them
        assert np.linalg.norm(centroid(ct, marker) - marker) < 0.75
    cbct_case = write_cbct(tmp_path, case, correction, frame=frame, degrade=False)
    cbct = load_series(tmp_path)
    assert (cbct_case.frame_of_reference_uid == case.frame_of_reference_uid) == (
        frame == "planning")
    sro = None
    if frame == "sro":
        sro = read_sro(tmp_path, cbct_case.frame_of_reference_uid, case.frame_of_reference_uid)
        assert np.allclose(sro[:3, :3], np.eye(3))
        # The reconstruction is centred on the machine isocentre: it maps to the plan isocentre.
        assert np.allclose(sro[:3, :3] @ cbct.center() + sro[:3, 3], case.isocenter_mm)
    iso = np.array(case.isocenter_mm)
    to_room = cbct_to_room(frame, cbct, sro, iso)
    from_room = np.linalg.inv(to_room)
    assert callable(moved)
    for marker in MARKERS:
        room = moved(marker - iso)
        expected = from_room[:3, :3] @ room + from_room[:3, 3]
        found = centroid(cbct, expected)
        assert np.linalg.norm(found - expected) < 0.75, (marker, found, expected)


def test_body_cbct_is_the_planning_ct_shifted(body: PlanningCase, tmp_path: Path) -> None:
    """HFS, longitudinal -5 in the planning frame: CBCT(c) = CT(c - 5 mm superior)."""
    write_cbct(tmp_path, body, CouchCorrection(0, -5, 0, 0, 0, 0), frame="planning",
               degrade=False)
    cbct, ct = load_series(tmp_path), load_series(body.directory)
    iso = np.array(body.isocenter_mm)
    pts = cbct.points()
    region = np.all(np.abs(pts - iso) < (90.0, 70.0, 60.0), axis=-1)  # clear of both couches

    def ct_shifted(dz_mm: float) -> npt.NDArray[np.float64]:
        t = sitk.TranslationTransform(3, (0.0, 0.0, dz_mm))
        out = sitk.Resample(ct.sitk_image(), cbct.sitk_image(), t, sitk.sitkLinear, -1000.0)
        return np.asarray(sitk.GetArrayFromImage(out), dtype=float)

    right = np.abs(cbct.hu - ct_shifted(-5.0))[region].mean()
    wrong = np.abs(cbct.hu - ct_shifted(+5.0))[region].mean()
    assert right < 1.0  # the same truth, interpolated linearly (plus 0.5 HU quantisation)
    assert wrong > 20.0


# --- the room-fixed treatment couch, FOV and degradation -----------------------------------------
@pytest.mark.parametrize(("position", "down_y"), [pytest.param(HFS, 1.0, id="HFS"),
                                                  pytest.param(HFP, -1.0, id="HFP")])
def test_treatment_couch_stays_in_the_room(
    cubes: dict[PatientPosition, PlanningCase], tmp_path: Path, position: PatientPosition,
    down_y: float,
) -> None:
    case = cubes[position]
    write_cbct(tmp_path / "a", case, CouchCorrection.zero(), degrade=False)
    write_cbct(tmp_path / "b", case, CouchCorrection(8, -6, -4, 0, 0, 2), degrade=False)
    a, b = load_series(tmp_path / "a"), load_series(tmp_path / "b")
    pts = a.points()  # frame "origin": CBCT coordinates are room coordinates
    depth = pts[..., 1] * down_y
    # The couch top is 3 mm below the cube's lowest face (75 mm below the isocentre).
    band = (depth > 70.0) & (depth < 140.0) & (np.abs(pts[..., 0]) > 100.0)
    band &= np.hypot(pts[..., 0], pts[..., 1]) < 215.0
    assert np.array_equal(a.hu[band], b.hu[band])
    # Flat top: a thin dense skin at 78 mm, foam core, and two beams at 120 mm either side.
    mid = np.abs(pts[..., 2]) < 2.0
    for x in (-150.0, 150.0):
        column = mid & (np.abs(pts[..., 0] - x) < 1.5)
        assert a.hu[column & (depth > 60.0) & (depth < 72.0)].max() < -950.0  # air above
        assert a.hu[column & (depth > 76.0) & (depth < 82.0)].max() > -800.0  # skin
        assert a.hu[column & (depth > 90.0) & (depth < 125.0)].max() < -900.0  # foam
    for x in (-120.0, 120.0):
        beam = mid & (np.abs(pts[..., 0] - x) < 1.5) & (depth > 90.0) & (depth < 125.0)
        assert a.hu[beam].mean() > 100.0
    cube = np.all(np.abs(pts) < 60.0, axis=-1)
    assert np.abs(a.hu[cube] - b.hu[cube]).max() > 500.0  # the anatomy did move


@pytest.mark.parametrize("padding_attribute", [pytest.param(True, id="PixelPaddingValue"),
                                               pytest.param(False, id="constant-air")])
def test_outside_the_field_of_view(
    cubes: dict[PatientPosition, PlanningCase], tmp_path: Path, padding_attribute: bool
) -> None:
    write_cbct(tmp_path, cubes[HFS], CouchCorrection.zero(), padding_attribute=padding_attribute)
    vol = load_series(tmp_path)
    pts = vol.points()
    outside = np.hypot(pts[..., 0], pts[..., 1]) > 224.0  # the small size's FOV radius is 222
    inside = np.hypot(pts[..., 0], pts[..., 1]) < 220.0
    stored = np.stack([d.pixel_array for d in vol.datasets])
    for d in vol.datasets:
        assert ("PixelPaddingValue" in d) == padding_attribute
    if padding_attribute:
        elem = vol.datasets[0]["PixelPaddingValue"]
        assert elem.VR == "SS" and elem.value == -2000  # -3024 HU in stored units
        assert np.all(stored[outside] == -2000)
        assert not np.any(stored[inside] == -2000)
    else:
        assert np.all(vol.hu[outside] == -1000.0)


def test_default_degradation_is_noisy_and_uncalibrated(
    cubes: dict[PatientPosition, PlanningCase], tmp_path: Path
) -> None:
    write_cbct(tmp_path, cubes[HFS], CouchCorrection.zero(), seed=5)
    vol = load_series(tmp_path)
    pts = vol.points()
    # A uniform part of the cube, 40 mm from the scanner axis (through the isocentre).
    water = np.all(np.abs(pts - (-40.0, 0.0, -30.0)) < (10.0, 10.0, 10.0), axis=-1)
    # Solid water 8 HU -> 0.9 * 8 - 60 (offset) - 40 * (1 - (40 / 222)^2) (cupping) = -91.5 HU.
    assert vol.hu[water].mean() == pytest.approx(-91.5, abs=6.0)
    assert 20.0 < vol.hu[water].std() < 40.0


def test_unknown_degradation_argument_is_refused(
    cubes: dict[PatientPosition, PlanningCase], tmp_path: Path
) -> None:
    with pytest.raises(TypeError, match="noise_sigma"):
        write_cbct(tmp_path, cubes[HFS], CouchCorrection.zero(), noise_sigma=3.0)


def test_cbct_is_deterministic_for_a_seed(body: PlanningCase, tmp_path: Path) -> None:
    shift = CouchCorrection(1, 2, 3, 0.5, 0.5, 0.5)
    write_cbct(tmp_path / "a", body, shift, seed=7, deform_mm=2.0, streaks_hu=30.0)
    write_cbct(tmp_path / "b", body, shift, seed=7, deform_mm=2.0, streaks_hu=30.0)
    write_cbct(tmp_path / "c", body, shift, seed=8, deform_mm=2.0, streaks_hu=30.0)
    a, b, c = (load_series(tmp_path / n).hu for n in "abc")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_deformation_moves_soft_tissue_but_not_bone(body: PlanningCase, tmp_path: Path) -> None:
    write_cbct(tmp_path / "rigid", body, CouchCorrection.zero(), degrade=False)
    write_cbct(tmp_path / "deformed", body, CouchCorrection.zero(), degrade=False, deform_mm=4.0)
    rigid, deformed = load_series(tmp_path / "rigid").hu, load_series(tmp_path / "deformed").hu
    from scipy import ndimage

    bone_core = ndimage.binary_erosion(rigid > 300.0, iterations=1)
    assert bone_core.sum() > 100
    assert np.abs(rigid - deformed)[bone_core].max() <= 1.0
    assert np.abs(rigid - deformed).max() > 100.0


def test_rle_lossless_holds_the_same_pixels(
    cubes: dict[PatientPosition, PlanningCase], tmp_path: Path
) -> None:
    shift = CouchCorrection(1, 0, 0, 0, 0, 0)
    write_cbct(tmp_path / "plain", cubes[HFS], shift)
    write_cbct(tmp_path / "rle", cubes[HFS], shift, transfer_syntax=RLELossless)
    plain, rle = load_series(tmp_path / "plain"), load_series(tmp_path / "rle")
    assert all(d.file_meta.TransferSyntaxUID == RLELossless for d in rle.datasets)
    assert np.array_equal(plain.hu, rle.hu)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan_dir, cbct_dir = tmp_path / "plan", tmp_path / "cbct"
    assert cli_main(["planning", "--out", str(plan_dir), "--phantom", "cube",
                     "--position", "FFS"]) == 0
    planning = json.loads(capsys.readouterr().out)
    assert planning["patient_position"] == "FFS" and planning["phantom"] == "cube"
    assert cli_main(["cbct", "--planning", str(plan_dir), "--out", str(cbct_dir),
                     "--shift", "-5,1,2,0.5,0,-1", "--frame", "sro"]) == 0
    cbct = json.loads(capsys.readouterr().out)
    assert cbct["correction"] == CouchCorrection(-5, 1, 2, 0.5, 0, -1).as_dict()
    assert cbct["sro_uid"] and len(others(cbct_dir, "REG")) == 1
    assert len(load_series(cbct_dir).datasets) == 48
