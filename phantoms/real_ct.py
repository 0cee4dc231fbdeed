"""Planning sets and CBCTs made from real CT scans (``tests/data/real_ct``): real anatomy, real
scanner texture, with the answer known by construction.

The real CT is the truth: the planning set is that CT (DICOM slices, an RT Structure Set with a
PTV around the isocentre, an RT Plan), and a CBCT of it is simulated exactly as for the digital
phantoms (``phantoms.cbct.simulate``: the CBCT voxel at ``c`` shows the truth at ``T(c)``,
degraded). A CBCT may also be made from *another* scan under the planning set's Patient ID:
another body, whose right answer does not exist.

The scans are small public test volumes (see ``tests/data/real_ct/README.md``); they carry no
couch (``treatment_couch`` is off) and are resampled to LPS axes on their own voxel spacing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from igrt.core import geometry
from igrt.core.geometry import CouchCorrection, PatientPosition
from phantoms import cbct
from phantoms import dicom_writer as dw
from phantoms.anatomy import PhantomModel

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "real_ct"
PREFIX = "igrt-real-ct"
BODY_HU = -400.0
PTV_RADIUS_MM = 30.0
#: The CBCT grid of the real-CT cases: the full-size phantom grid, optionally shorter.
GRID = cbct.CBCT_GRIDS["full"]


@dataclass(frozen=True)
class RealPlanning:
    directory: Path
    scan: str  # file name under DATA
    patient_id: str
    frame_of_reference_uid: str
    plan_uid: str
    isocenter_mm: tuple[float, float, float]
    patient_position: PatientPosition = PatientPosition.HFS


@lru_cache(maxsize=4)
def scan(name: str) -> sitk.Image:
    """The scan ``name`` (a file under :data:`DATA`) in HU, float32, on LPS axes."""
    image = sitk.ReadImage(str(DATA / name))
    image = sitk.DICOMOrient(sitk.Cast(image, sitk.sitkFloat32), "LPS")
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))  # DICOMOrient made it so
    return sitk.Clamp(image, sitk.sitkFloat32, -1024.0, 3071.0)


def body_center_mm(name: str) -> tuple[float, float, float]:
    """The centre of the body's bounding box in the scan (LPS mm)."""
    image = scan(name)
    body = np.asarray(sitk.GetArrayViewFromImage(image)) > BODY_HU
    k, j, i = (np.nonzero(body.any(axis=axes))[0] for axes in ((1, 2), (0, 2), (0, 1)))
    index = [(float(a[0]) + float(a[-1])) / 2.0 for a in (i, j, k)]
    point = image.TransformContinuousIndexToPhysicalPoint(index)
    return (float(point[0]), float(point[1]), float(point[2]))


def write_planning(directory: Path, name: str, *, patient_id: str = "REAL-001",
                   isocenter_mm: tuple[float, float, float] | None = None) -> RealPlanning:
    """The planning set of scan ``name`` (HFS) with its isocentre (default: the body centre)."""
    directory = Path(directory)
    image = scan(name)
    iso = isocenter_mm or body_center_mm(name)
    iso = (float(dw.ds(iso[0])), float(dw.ds(iso[1])), float(dw.ds(iso[2])))
    uids = dw.UidSource(PREFIX, "planning", directory.resolve(), name, patient_id, iso)
    subject = dw.Subject(patient_id, "REAL^CT", uids.uid("study"), "Planning")
    frame_uid = uids.uid("frame")
    series = dw.ImageSeries(
        series_uid=uids.uid("ct-series"), frame_of_reference_uid=frame_uid, series_number=1,
        series_description=f"Planning CT {name}", patient_position="HFS",
        origin_mm=tuple(float(v) for v in image.GetOrigin()),  # type: ignore[arg-type]
        spacing_mm=tuple(float(v) for v in image.GetSpacing()),  # type: ignore[arg-type]
        direction=np.eye(3), image_comments=f"{PREFIX} scan={name}")
    hu = np.asarray(sitk.GetArrayViewFromImage(image), dtype=np.float32)
    slices = dw.write_image_series(directory, subject, series, hu, uids)
    t = np.linspace(0.0, 2.0 * np.pi, 36, endpoint=False)
    ptv = []
    for _, position in slices:
        dz = abs(position[2] - iso[2])
        if dz < PTV_RADIUS_MM:
            r = float(np.sqrt(PTV_RADIUS_MM ** 2 - dz ** 2))
            ptv.append((position[2], np.stack([iso[0] + r * np.cos(t), iso[1] + r * np.sin(t)],
                                              axis=1)))
    structure_set_uid = dw.write_rt_struct(
        directory, subject, uids, frame_of_reference_uid=frame_uid,
        ct_series_uid=series.series_uid, slices=slices,
        rois=[dw.Roi(1, "PTV", "PTV", (255, 0, 0), tuple(ptv))])
    plan_uid = dw.write_rt_plan(directory, subject, uids, frame_of_reference_uid=frame_uid,
                                patient_position="HFS", isocenters_mm=[iso],
                                structure_set_uid=structure_set_uid, label="REAL")
    return RealPlanning(directory, name, patient_id, frame_uid, plan_uid, iso)


def write_cbct(directory: Path, planning: RealPlanning, correction: CouchCorrection, *,
               scan_name: str | None = None, slices: int | None = None, seed: int = 2,
               degradation: cbct.Degradation | None = None) -> Path:
    """A CBCT (frame ``origin``) of the planning scan, or of ``scan_name`` (another body placed
    with its body centre where the planning body centre is), needing ``correction``."""
    directory = Path(directory)
    name = scan_name or planning.scan
    grid = GRID if slices is None else replace(GRID, size_ijk=(*GRID.size_ijk[:2], slices))
    iso = planning.isocenter_mm
    geom = cbct.cbct_geometry("full", planning.patient_position, "origin", iso, grid)
    registration = geometry.registration_for_correction(
        geometry.from_iec(correction, planning.patient_position), geom.nominal, iso)
    truth = scan(name)
    if scan_name is not None:  # another body: its centre where the planned body's is
        offset = np.asarray(body_center_mm(name)) - np.asarray(body_center_mm(planning.scan))
        registration = geometry.translation(offset) @ registration
    model = PhantomModel("real", iso, iso, 150.0)
    base = degradation or cbct.Degradation()
    hu, outside = cbct.simulate(truth, geom, registration, model=model,
                                position=planning.patient_position, isocenter_mm=iso,
                                degradation=replace(base, treatment_couch=False), size="full",
                                seed=seed)
    uids = dw.UidSource(PREFIX, "cbct", directory.resolve(), planning.plan_uid,
                        correction.as_dict(), name, slices, seed, base)
    subject = dw.Subject(planning.patient_id, "REAL^CT", uids.uid("study"), "CBCT",
                         study_date="20260316", study_time="101500")
    series = dw.ImageSeries(
        series_uid=uids.uid("series"), frame_of_reference_uid=uids.uid("frame"),
        series_number=1001, series_description="CBCT", patient_position="HFS",
        origin_mm=geom.origin_mm, spacing_mm=geom.spacing_mm, direction=geom.direction, kvp=100.0)
    dw.write_image_series(directory, subject, series, hu, uids, outside=outside,
                          outside_hu=base.padding_hu, padding_attribute=True)
    return directory
