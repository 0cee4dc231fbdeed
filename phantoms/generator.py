"""Digital QA phantoms: a planning set (CT + RT Plan + RT Structure Set) and CBCTs of it at any
requested couch correction, with the answer known exactly by construction.

The CBCT voxel at CBCT point ``c`` shows the truth anatomy at planning point ``T(c)``, with
``T = igrt.core.geometry.registration_for_correction(from_iec(correction, position), N, iso)`` and
``N`` the nominal map of the CBCT frame (``phantoms.cbct.cbct_geometry``). The truth anatomy is
rendered once per (phantom, size, seed) on the planning CT grid and cached in-process.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from igrt.core import geometry
from igrt.core.errors import IgrtError
from igrt.core.geometry import CouchCorrection, PatientPosition
from igrt.core.reasons import ReasonCode
from igrt.core.types import Float32Array as F32
from igrt.core.types import FloatArray as F64
from phantoms import anatomy, catalog, cbct, couch, variants
from phantoms.dicom_writer import (
    ImageSeries,
    Roi,
    Subject,
    UidSource,
    ds,
    write_image_series,
    write_rt_plan,
    write_rt_struct,
    write_sro,
)
from phantoms.shapes import Canvas

logger = logging.getLogger(__name__)


PHANTOMS = catalog.PHANTOMS
SIZES = catalog.SIZES
COMMENT_PREFIX = "igrt-phantom"

#: Planning CT grids of the anatomy phantoms (the QA phantoms': ``catalog.planning_grid``).
PLANNING_GRIDS = catalog.PLANNING_GRIDS
#: Centre of the planning CT grid (scanner axis at x = y = 0, table position z).
PLANNING_CENTER_MM = (0.0, 0.0, -400.0)
CT_COUCH_CLEARANCE_MM = 2.0
PTV_RADIUS_MM = 30.0
REG_BOX_HALF_MM = 50.0


class PhantomError(IgrtError):
    """A directory does not hold a phantom planning set written by this generator."""

    code = ReasonCode.PHANTOM
    default_message = "the directory does not hold a phantom planning set"


@dataclass(frozen=True)
class PlanningCase:
    directory: Path
    patient_id: str
    patient_position: PatientPosition
    frame_of_reference_uid: str
    plan_uid: str
    structure_set_uid: str
    ct_series_uid: str
    isocenter_mm: tuple[float, float, float]
    phantom: str  # one of PHANTOMS
    size: str  # one of SIZES
    seed: int
    metal: bool = False  # titanium rods beside the spine (phantoms.variants), CT and CBCT


@dataclass(frozen=True)
class CbctCase:
    directory: Path
    patient_id: str
    series_uid: str
    frame_of_reference_uid: str
    correction: CouchCorrection  # the known answer (the couch correction that must be published)
    frame: str  # "planning" | "origin" | "center" | "sro"
    sro_uid: str | None


# --- truth ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Truth:
    """Anatomy (no couch) in planning coordinates on the planning grid, identity direction."""

    image: sitk.Image
    model: anatomy.PhantomModel

    @property
    def voxels(self) -> F32:
        """Read-only view ``[z, y, x]`` (HU)."""
        return np.asarray(sitk.GetArrayViewFromImage(self.image))


def _check(phantom: str, size: str) -> None:
    if phantom not in PHANTOMS:
        raise ValueError(f"unknown phantom {phantom!r}: expected one of {', '.join(PHANTOMS)}")
    catalog.check_size(phantom, size)


def _planning_origin(phantom: str, size: str) -> tuple[float, float, float]:
    n, s = catalog.planning_grid(phantom, size)
    o = np.asarray(PLANNING_CENTER_MM) - np.asarray(s) * (np.asarray(n) - 1) / 2.0
    return (float(o[0]), float(o[1]), float(o[2]))


@lru_cache(maxsize=2)
def anatomy_truth(phantom: str, size: str, seed: int) -> Truth:
    """Render (once per process and arguments) the truth anatomy on the planning grid."""
    _check(phantom, size)
    n, spacing = catalog.planning_grid(phantom, size)
    values = np.full((n[2], n[1], n[0]), anatomy.AIR_HU, dtype=np.float32)
    canvas = Canvas(values, _planning_origin(phantom, size), spacing, edge_mm=min(spacing[:2]))
    catalog.render(phantom, canvas, seed)
    np.clip(values, -1024.0, 3071.0, out=values)
    image = sitk.GetImageFromArray(values)
    image.SetOrigin(canvas.origin_mm)
    image.SetSpacing(spacing)
    logger.info("rendered %s phantom (%s, seed %d) on %s voxels", phantom, size, seed, n)
    return Truth(image, catalog.model(phantom))


@lru_cache(maxsize=2)
def variant_truth(phantom: str, size: str, seed: int, variant: variants.Variant,
                  isocenter_mm: tuple[float, float, float]) -> Truth:
    """The truth anatomy as ``variant`` changes it (the plain truth when it changes nothing)."""
    truth = anatomy_truth(phantom, size, seed)
    if variant.is_plain:
        return truth
    other = None
    if variant.anatomy == "other":
        other = anatomy_truth(phantom, size, seed + variants.OTHER_BODY_SEED_OFFSET).image
    image = variants.apply(truth.image, variant, model=truth.model, isocenter_mm=isocenter_mm,
                           other=other)
    return Truth(image, truth.model)


def planning_ct(
    phantom: str, size: str, seed: int, position: PatientPosition, *,
    truth: Truth | None = None,
) -> tuple[F32, tuple[float, float, float], F64]:
    """Planning CT HU ``[k, j, i]`` in scanner orientation for ``position`` (truth plus the CT
    couch under the patient), its origin and direction (spacing: ``catalog.planning_grid``).
    ``truth``: a variant of the phantom's truth (default: the truth itself)."""
    truth = truth or anatomy_truth(phantom, size, seed)
    hu = truth.voxels.copy()
    n, spacing = catalog.planning_grid(phantom, size)
    origin = np.asarray(_planning_origin(phantom, size))
    down = couch.down_lps(position)
    top = float(np.asarray(truth.model.center_mm) @ down)
    top += truth.model.half_height_mm + CT_COUCH_CLEARANCE_MM
    x = origin[0] + spacing[0] * np.arange(n[0])
    y = origin[1] + spacing[1] * np.arange(n[1])
    alpha, couch_hu = couch.ct_couch(x[None, :], y[:, None] * down[1], top, edge_mm=spacing[0])
    couch.composite_over_air(hu, alpha, couch_hu)
    direction = cbct.SCANNER_DIRECTION[position]
    flips = tuple(slice(None, None, -1) if direction[a, a] < 0 else slice(None) for a in (2, 1, 0))
    for a in range(3):
        if direction[a, a] < 0:
            origin[a] += spacing[a] * (n[a] - 1)
    return hu[flips], (float(origin[0]), float(origin[1]), float(origin[2])), direction


# --- planning set --------------------------------------------------------------------------------
def _circle(center: Sequence[float], radius: float, n: int = 36) -> F64:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([center[0] + radius * np.cos(t), center[1] + radius * np.sin(t)], axis=1)


def _rois(
    model: anatomy.PhantomModel, iso: tuple[float, float, float], slice_z: Sequence[float]
) -> list[Roi]:
    body, ptv, box = [], [], []
    h = REG_BOX_HALF_MM
    square = np.array([[iso[0] - h, iso[1] - h], [iso[0] + h, iso[1] - h],
                       [iso[0] + h, iso[1] + h], [iso[0] - h, iso[1] + h]])
    for z in sorted(slice_z):
        outline = model.outline_mm(z)
        if outline is not None:
            body.append((z, outline))
        dz = abs(z - iso[2])
        if dz < PTV_RADIUS_MM:
            ptv.append((z, _circle(iso, math.sqrt(PTV_RADIUS_MM**2 - dz**2))))
        if dz <= h:
            box.append((z, square))
    return [
        Roi(1, "BODY", "EXTERNAL", (0, 255, 0), tuple(body)),
        Roi(2, "PTV", "PTV", (255, 0, 0), tuple(ptv)),
        Roi(3, "REG_BOX", "CONTROL", (255, 255, 0), tuple(box)),
    ]


def _normalise(iso: Sequence[float]) -> tuple[float, float, float]:
    """The isocentre exactly as it reads back from its decimal strings."""
    if len(iso) != 3:
        raise ValueError(f"an isocentre needs 3 coordinates, got {list(iso)}")
    x, y, z = (float(ds(v)) for v in iso)
    return (x, y, z)


def write_planning_set(
    directory: Path,
    *,
    phantom: str = "body",
    patient_id: str = "PHANTOM-001",
    patient_position: PatientPosition = PatientPosition.HFS,
    size: str = "small",
    seed: int = 1,
    isocenters_mm: Sequence[tuple[float, float, float]] | None = None,
    transfer_syntax: str | None = None,
    metal: bool = False,
) -> PlanningCase:
    """Write planning CT slices, an RT Structure Set (BODY, PTV, REG_BOX) and an RT Plan.
    ``metal``: the patient has titanium rods beside the spine (``phantoms.variants``; body only).

    UIDs are deterministic for the same arguments and directory (the resolved path is part of
    their entropy, so two planning sets in two directories never share UIDs).
    """
    _check(phantom, size)
    position = PatientPosition(patient_position)
    directory = Path(directory)
    model = catalog.model(phantom)
    isos = [_normalise(i) for i in (isocenters_mm or [model.default_isocenter_mm])]
    if metal and phantom != "body":
        raise ValueError("metal rods are drawn beside the body phantom's spine only")
    uids = UidSource(COMMENT_PREFIX, "planning", directory.resolve(), phantom, size, seed,
                     position.value, patient_id, isos, *(("metal",) if metal else ()))
    subject = Subject(patient_id, f"PHANTOM^{phantom.upper()}", uids.uid("study"),
                      "Phantom planning")
    frame_uid = uids.uid("frame-of-reference")
    truth = variant_truth(phantom, size, seed, variants.Variant(metal=metal), isos[0])
    hu, origin, direction = planning_ct(phantom, size, seed, position, truth=truth)
    series = ImageSeries(
        series_uid=uids.uid("ct-series"),
        frame_of_reference_uid=frame_uid,
        series_number=1,
        series_description=f"Planning CT {phantom}",
        patient_position=position.value,
        origin_mm=origin,
        spacing_mm=catalog.planning_grid(phantom, size)[1],
        direction=direction,
        image_comments=f"{COMMENT_PREFIX} phantom={phantom} size={size} seed={seed}"
                       + (" metal=1" if metal else ""),
    )
    slices = write_image_series(directory, subject, series, hu, uids,
                                transfer_syntax=transfer_syntax)
    structure_set_uid = write_rt_struct(
        directory, subject, uids, frame_of_reference_uid=frame_uid,
        ct_series_uid=series.series_uid, slices=slices,
        rois=_rois(model, isos[0], [p[2] for _, p in slices]),
    )
    plan_uid = write_rt_plan(
        directory, subject, uids, frame_of_reference_uid=frame_uid,
        patient_position=position.value, isocenters_mm=isos,
        structure_set_uid=structure_set_uid, label=f"PH_{phantom.upper()}",
    )
    logger.info("wrote %s planning set (plan %s) to %s", phantom, plan_uid, directory)
    return PlanningCase(directory, patient_id, position, frame_uid, plan_uid, structure_set_uid,
                        series.series_uid, isos[0], phantom, size, seed, metal)


def read_planning_case(directory: Path) -> PlanningCase:
    """Re-derive the :class:`PlanningCase` of a planning set written by :func:`write_planning_set`
    (the generator arguments are in the CT ImageComments)."""
    directory = Path(directory)
    plan: pydicom.Dataset | None = None
    ct: pydicom.Dataset | None = None
    for path in sorted(directory.glob("*.dcm")):
        d = pydicom.dcmread(path, stop_before_pixels=True)
        if d.Modality == "RTPLAN":
            plan = d
        elif d.Modality == "CT" and ct is None:
            ct = d
    if plan is None or ct is None:
        raise PhantomError(f"{directory} holds no RT Plan or no CT slice")
    comment = str(ct.get("ImageComments", ""))
    if not comment.startswith(COMMENT_PREFIX):
        raise PhantomError(
            f"the CT in {directory} was not written by the phantom generator "
            f"(ImageComments {comment!r})"
        )
    args = dict(part.split("=", 1) for part in comment.split()[1:])
    iso = plan.BeamSequence[0].ControlPointSequence[0].IsocenterPosition
    return PlanningCase(
        directory=directory,
        patient_id=str(plan.PatientID),
        patient_position=PatientPosition(plan.PatientSetupSequence[0].PatientPosition),
        frame_of_reference_uid=str(plan.FrameOfReferenceUID),
        plan_uid=str(plan.SOPInstanceUID),
        structure_set_uid=str(plan.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID),
        ct_series_uid=str(ct.SeriesInstanceUID),
        isocenter_mm=(float(iso[0]), float(iso[1]), float(iso[2])),
        phantom=args["phantom"],
        size=args["size"],
        seed=int(args["seed"]),
        metal=args.get("metal") == "1",
    )


# --- CBCT ----------------------------------------------------------------------------------------
def expected_registration(
    planning: PlanningCase, correction: CouchCorrection, frame: str
) -> F64:
    """``T`` (CBCT point -> planning point) of a CBCT written with these arguments."""
    geom = cbct.cbct_geometry(planning.size, planning.patient_position, frame,
                              planning.isocenter_mm,
                              catalog.cbct_grid(planning.phantom, planning.size))
    c = geometry.from_iec(correction, planning.patient_position)
    return geometry.registration_for_correction(c, geom.nominal, planning.isocenter_mm)


def write_cbct(
    directory: Path,
    planning: PlanningCase,
    correction: CouchCorrection,
    *,
    frame: str = "origin",
    patient_id: str | None = None,
    degrade: bool = True,
    seed: int = 2,
    deform_mm: float = 0.0,
    padding_attribute: bool = True,
    transfer_syntax: str | None = None,
    anatomy_variant: str = "same",
    body_inset_mm: float = 0.0,
    slices: int | None = None,
    drop_slices: tuple[int, int] | None = None,
    **degradation_kwargs: float | bool | None,
) -> CbctCase:
    """Write a CBCT of ``planning`` whose anatomy needs exactly ``correction`` (IEC table top).

    ``degrade=False`` switches off noise, blur, HU error, cupping and streaks (the FOV cylinder
    and the room-fixed treatment couch remain); ``degradation_kwargs`` are fields of
    :class:`phantoms.cbct.Degradation` and override either default. ``deform_mm`` is the peak
    of a smooth displacement field (CBCT space) that is zero on and within ~4 mm of bone and
    zero-mean over the anatomy, so the rigid answer stays ``correction``. ``frame="sro"`` also
    writes a Spatial Registration object into ``directory``. UIDs are deterministic for the
    same arguments and directory.

    Adversarial cases (``phantoms.variants``): ``anatomy_variant`` ``"other"`` (another body) or
    ``"mirrored"``; ``body_inset_mm`` (weight loss); ``slices``: a CBCT this many slices long
    about the isocentre (a short scan); ``drop_slices=(first, count)``: those slice files are
    not written (a band lost in transfer). Metal comes with the planning set.
    """
    directory = Path(directory)
    known = {f.name for f in fields(cbct.Degradation)}
    unknown = sorted(set(degradation_kwargs) - known)
    if unknown:
        raise TypeError(f"unknown CBCT degradation arguments {unknown}; known: {sorted(known)}")
    base = catalog.degradation(planning.phantom) if degrade else cbct.Degradation.ideal()
    degradation = replace(base, **degradation_kwargs)  # type: ignore[arg-type]
    position = planning.patient_position
    iso = planning.isocenter_mm
    grid = catalog.cbct_grid(planning.phantom, planning.size)
    if slices is not None:
        if not 1 <= slices <= grid.size_ijk[2]:
            raise ValueError(f"slices {slices} is outside 1 to {grid.size_ijk[2]}")
        grid = replace(grid, size_ijk=(grid.size_ijk[0], grid.size_ijk[1], slices))
    geom = cbct.cbct_geometry(planning.size, position, frame, iso, grid)
    registration = geometry.registration_for_correction(
        geometry.from_iec(correction, position), geom.nominal, iso
    )
    variant = variants.Variant(anatomy=anatomy_variant, body_inset_mm=body_inset_mm,
                               metal=planning.metal)
    truth = variant_truth(planning.phantom, planning.size, planning.seed, variant, iso)
    hu, outside = cbct.simulate(
        truth.image, geom, registration, model=truth.model, position=position, isocenter_mm=iso,
        degradation=degradation, size=planning.size, seed=seed, deform_mm=deform_mm,
    )
    pid = planning.patient_id if patient_id is None else patient_id
    uids = UidSource(COMMENT_PREFIX, "cbct", directory.resolve(), planning.plan_uid,
                     correction.as_dict(), frame, pid, degrade, seed, deform_mm, padding_attribute,
                     sorted(degradation_kwargs.items()), transfer_syntax,
                     *(() if variant.is_plain and slices is None else (variant, slices)))
    subject = Subject(pid, f"PHANTOM^{planning.phantom.upper()}", uids.uid("study"), "CBCT",
                      study_date="20260316", study_time="101500")
    frame_uid = planning.frame_of_reference_uid if frame == "planning" else uids.uid("frame")
    series = ImageSeries(
        series_uid=uids.uid("series"),
        frame_of_reference_uid=frame_uid,
        series_number=1001,
        series_description="CBCT",
        patient_position=position.value,
        origin_mm=geom.origin_mm,
        spacing_mm=geom.spacing_mm,
        direction=geom.direction,
        kvp=100.0,
    )
    slices_written = write_image_series(
        directory, subject, series, hu, uids, outside=outside,
        outside_hu=degradation.padding_hu if padding_attribute else degradation.outside_hu,
        padding_attribute=padding_attribute, transfer_syntax=transfer_syntax,
    )
    if drop_slices is not None:
        first, count = drop_slices
        for uid, _ in slices_written[first:first + count]:
            (directory / f"CT.{uid}.dcm").unlink()
    sro_uid = None
    if frame == "sro":
        sro_uid = write_sro(
            directory, subject, uids, planning_frame_uid=planning.frame_of_reference_uid,
            cbct_frame_uid=frame_uid, cbct_series_uid=series.series_uid,
            cbct_sop_uids=[uid for uid, _ in slices_written],
            cbct_to_planning=geometry.translation(iso) @ geom.nominal,
        )
    logger.info("wrote CBCT series %s (frame %s) to %s", series.series_uid, frame, directory)
    return CbctCase(directory, pid, series.series_uid, frame_uid, correction, frame, sro_uid)
