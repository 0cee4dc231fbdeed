"""From a CBCT and its planning source to an :class:`~igrt.core.messages.Outcome`: the one flow
shared by ``igrt register`` and the service's worker. Refusals become a failed outcome with the
reason; the reading is the sources' business (``igrt.planning``).

The planning side is prepared once per planning CT and isocentre (:func:`reference_for`) and
kept in a :class:`~igrt.registration.reference_cache.ReferenceCache` when the caller has one
(the service does: it prepares planning sets as they arrive, :func:`prepare_planning`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from igrt.config import Config
from igrt.core.case import Registered, build_case, region_mask
from igrt.core.errors import IgrtError
from igrt.core.geometry import PatientPosition
from igrt.core.image_series import SeriesInfo
from igrt.core.matching import (
    check_planning_ct,
    check_same_patient,
    pick_plan,
    select_isocenter,
    unapproved_reason,
)
from igrt.core.messages import Outcome
from igrt.core.plan import Plan, normalise_patient_id
from igrt.core.structures import StructureSet, find_roi
from igrt.core.types import FloatArray, Point
from igrt.planning.source import CbctSource, PlanningCtId, PlanningSource
from igrt.registration.cbct_side import CbctSide
from igrt.registration.engines import EnginePool
from igrt.registration.reference import (
    MOVING_MARGIN_MM,
    Grid,
    PlanningReference,
    build_reference,
    grid_key,
)
from igrt.registration.reference_cache import ReferenceCache
from igrt.registration.runner import measure

log = logging.getLogger(__name__)

#: Decimals of the published registration matrix: 1e-9 of a rotation element (a 1e-7 mm error at
#: 100 mm) and 1e-9 mm of translation, far below what the DICOM record's 16-character numbers hold.
MATRIX_DECIMALS = 9


def matrix_rows(matrix: FloatArray) -> list[list[float]]:
    """A 4x4 matrix as JSON-ready rows (``-0.0`` written as ``0.0``)."""
    return [[round(float(v), MATRIX_DECIMALS) + 0.0 for v in row] for row in matrix]


@dataclass(frozen=True)
class ReferenceKey:
    """Everything a prepared planning reference depends on."""

    ct: PlanningCtId
    isocenter_mm: tuple[float, float, float]
    position: PatientPosition
    box_mm: tuple[float, float, float]
    region: str  # "body", or the structure set, ROI and a digest of its contours
    cbct_grid: tuple[float, ...] | None  # the CBCTs' voxel grid it is binned for, if known


def run(cbct_source: CbctSource, planning: PlanningSource, config: Config, *,
        isocenter_index: int | None = None, references: ReferenceCache | None = None,
        engines: EnginePool | None = None, keep_levels: bool = True,
        ahead: CbctSide | None = None) -> Outcome:
    """Load, match, register and check; any :class:`IgrtError` becomes a failed outcome.
    ``keep_levels``: False for a single registration (see ``PlanningReference``); ``ahead``:
    the CBCT side made already (taken only if it is this case's, ``runner.prepare``)."""
    t0 = time.perf_counter()
    series_uid = cbct_source.series_uid
    patient_id: str | None = None
    patient_name: str | None = None
    acquired: str | None = None
    timings: dict[str, float] = {}
    try:
        cbct = cbct_source.load()
        timings["cbct_s"] = time.perf_counter() - t0
        patient_name, acquired = cbct.info.patient_name, cbct.info.acquisition_datetime
        patient_id = cbct.info.patient_id
        series_uid = cbct.info.series_uid
        plan = pick_plan(planning.plans(patient_id), patient_id=patient_id,
                         selected_uid=planning.selected_plan_uid(patient_id))
        plan.frame  # noqa: B018 - refuses a plan whose frame is still unknown, before any loading
        check_same_patient(patient_id, plan)
        structure_sets = planning.structure_sets(plan)
        t1 = time.perf_counter()
        grid = (cbct.volume.spacing_mm, np.asarray(cbct.volume.direction, dtype=np.float64))
        reference, cached = reference_for(planning, plan, structure_sets, config,
                                          cbct=cbct.info, isocenter_index=isocenter_index,
                                          references=references, keep_levels=keep_levels,
                                          cbct_grid=grid)
        timings["planning_s"] = time.perf_counter() - t1
        case, ref, nominal = build_case(
            cbct=cbct, plan=plan, ct=reference.ct, sros=planning.spatial_registrations(cbct.info),
            isocenter_index=isocenter_index, convention=config.registration.cbct_isocenter)
        m = measure(case, reference, config.registration, config.review, engines=engines,
                    ahead=ahead)
        reasons = m.reasons + tuple(r for r in [unapproved_reason(plan)] if r is not None)
    except IgrtError as exc:
        log.warning("series %s refused: %s", series_uid, exc.reason)
        return Outcome(patient_id=patient_id, cbct_series_uid=series_uid, plan=None,
                       measured=None, reasons=(exc.reason,), patient_name=patient_name,
                       cbct_acquisition_datetime=acquired)
    details = {"registration": {**m.details, "nominal": nominal.source.value,
                                "spatial_registration_uid": nominal.sro_uid,
                                "planning_ct_series_uid": reference.ct.series_uid,
                                "cbct_to_planning": matrix_rows(m.transform),
                                "planning_prepared_before": cached,
                                **{k: round(v, 3) for k, v in timings.items()},
                                "elapsed_s": round(time.perf_counter() - t0, 3)}}
    registered = Registered(case=case, ct=reference.volume, initial=m.initial,
                            transform=m.transform, box_size_mm=config.registration.roi_size_mm)
    return Outcome(patient_id=patient_id, cbct_series_uid=series_uid, plan=ref,
                   measured=m.measured, reasons=reasons, details=details,
                   patient_name=cbct.info.patient_name,
                   cbct_acquisition_datetime=cbct.info.acquisition_datetime,
                   registered=registered)


def reference_for(planning: PlanningSource, plan: Plan, structure_sets: Sequence[StructureSet],
                  config: Config, *, cbct: SeriesInfo | None, isocenter_index: int | None,
                  references: ReferenceCache | None, keep_levels: bool = True,
                  cbct_grid: Grid | None = None) -> tuple[PlanningReference, bool]:
    """The plan's planning CT prepared around the isocentre (for CBCTs of ``cbct_grid``, when
    known), and whether it was prepared before: from ``references`` when it was (same CT
    content, isocentre, position, box, region and CBCT grid), else read and prepared now (and
    kept)."""
    ct_id = planning.planning_ct(plan, structure_sets, cbct=cbct)
    iso = select_isocenter(plan, index=isocenter_index)
    reg = config.registration
    region = "body"
    if reg.roi_structure:
        region = _region_key(plan, structure_sets, reg.roi_structure)
    key = ReferenceKey(ct=ct_id, isocenter_mm=(round(iso[0], 3), round(iso[1], 3),
                                                round(iso[2], 3)),
                       position=plan.patient_position, box_mm=reg.roi_size_mm, region=region,
                       cbct_grid=grid_key(cbct_grid))
    found = references.get(key) if references is not None else None
    if found is None and references is not None and cbct_grid is not None:
        # prepared before any CBCT's grid was known: unbinned, good for every CBCT
        found = references.get(dataclasses.replace(key, cbct_grid=None))
    if found is not None:
        return found, True
    ct = planning.load_planning_ct(ct_id, around_mm=planning_box(iso, config))
    check_planning_ct(ct, plan)
    mask = (region_mask(plan, structure_sets, ct.volume, reg.roi_structure)
            if reg.roi_structure else None)
    built = build_reference(ct.volume, ct.info, isocenter_mm=iso,
                            position=plan.patient_position, box_size_mm=reg.roi_size_mm,
                            region_mask=mask, keep_levels=keep_levels, cbct_grid=cbct_grid)
    if references is not None:
        references.put(key, built)
    return built, False


def planning_box(isocenter_mm: Point, config: Config) -> tuple[Point, np.ndarray]:
    """The part of a planning CT a registration around this isocentre uses (centre, size)."""
    return (isocenter_mm,
            np.asarray(config.registration.roi_size_mm, dtype=np.float64) + 2 * MOVING_MARGIN_MM)


def prepare_planning(planning: PlanningSource, patient_id: str, config: Config, *,
                     references: ReferenceCache, cbct_grid: Grid | None = None
                     ) -> list[PlanningReference]:
    """Prepare, before any CBCT, every planning CT a CBCT of this patient may be registered
    against: each of the patient's plans, each isocentre. ``cbct_grid`` (spacing, direction of
    the room's CBCTs, if known) also makes the unsmoothed native level. A planning set that
    cannot be used is only logged here: the CBCT's result will name the problem."""
    prepared = []
    own = [p for p in planning.plans(patient_id)
           if normalise_patient_id(p.patient_id) == normalise_patient_id(patient_id)]
    for plan in {p.sop_instance_uid: p for p in own}.values():
        structure_sets = planning.structure_sets(plan)
        indices: list[int | None] = ([None] if len(plan.isocenters_mm) == 1
                                     else list(range(len(plan.isocenters_mm))))
        for index in indices:
            try:
                reference, _ = reference_for(planning, plan, structure_sets, config,
                                             cbct=None, isocenter_index=index,
                                             references=references, cbct_grid=cbct_grid)
            except IgrtError as exc:
                log.info("plan %s: planning set not prepared: %s", plan.sop_instance_uid,
                         exc.reason)
                continue
            if cbct_grid is not None:
                reference.warm(cbct_grid[0], cbct_grid[1])
            else:
                reference.warm()
            prepared.append(reference)
    references.trim()
    return prepared


def _region_key(plan: Plan, structure_sets: Sequence[StructureSet], roi_name: str) -> str:
    """The configured structure's identity and a digest of its contours (a structure set
    re-sent with other contours under the same UID is a new region)."""
    digest = hashlib.sha256()
    for s in structure_sets:
        if s.frame_of_reference_uid != plan.frame:
            continue
        try:
            roi = find_roi(s, roi_name)
        except IgrtError:
            continue
        digest.update(s.sop_instance_uid.encode())
        for contour in roi.contours:
            digest.update(contour.geometric_type.encode())
            digest.update(np.ascontiguousarray(contour.points_mm, dtype=np.float64).tobytes())
    return f"{roi_name}:{digest.hexdigest()[:16]}"
