"""From a CBCT and its planning source to an :class:`~igrt.core.messages.Outcome`: the one flow
shared by ``igrt register`` and the service's worker. Refusals become a failed outcome with the
reason; the reading is the sources' business (``igrt.planning``)."""

from __future__ import annotations

import logging
import time

from igrt.config import Config
from igrt.core.case import Registered, build_case
from igrt.core.errors import IgrtError
from igrt.core.matching import pick_plan, unapproved_reason
from igrt.core.messages import Outcome
from igrt.core.types import FloatArray
from igrt.planning.source import CbctSource, PlanningSource
from igrt.registration.runner import measure

log = logging.getLogger(__name__)

#: Decimals of the published registration matrix: 1e-9 of a rotation element (a 1e-7 mm error at
#: 100 mm) and 1e-9 mm of translation, far below what the DICOM record's 16-character numbers hold.
MATRIX_DECIMALS = 9


def matrix_rows(matrix: FloatArray) -> list[list[float]]:
    """A 4x4 matrix as JSON-ready rows (``-0.0`` written as ``0.0``)."""
    return [[round(float(v), MATRIX_DECIMALS) + 0.0 for v in row] for row in matrix]


def run(cbct_source: CbctSource, planning: PlanningSource, config: Config, *,
        isocenter_index: int | None = None) -> Outcome:
    """Load, match, register and check; any :class:`IgrtError` becomes a failed outcome."""
    t0 = time.perf_counter()
    series_uid = cbct_source.series_uid
    patient_id: str | None = None
    patient_name: str | None = None
    acquired: str | None = None
    try:
        cbct = cbct_source.load()
        patient_name, acquired = cbct.info.patient_name, cbct.info.acquisition_datetime
        patient_id = cbct.info.patient_id
        series_uid = cbct.info.series_uid
        plan = pick_plan(planning.plans(patient_id), patient_id=patient_id,
                         selected_uid=planning.selected_plan_uid(patient_id))
        plan.frame  # noqa: B018 - refuses a plan whose frame is still unknown, before any loading
        structure_sets = planning.structure_sets(plan)
        ct = planning.planning_ct(plan, structure_sets, cbct=cbct.info)
        case, ref, nominal = build_case(
            cbct=cbct, plan=plan, ct=ct, sros=planning.spatial_registrations(cbct.info),
            structure_sets=structure_sets, isocenter_index=isocenter_index,
            convention=config.registration.cbct_isocenter,
            roi_structure=config.registration.roi_structure)
        m = measure(case, config.registration, config.review)
        reasons = m.reasons + tuple(r for r in [unapproved_reason(plan)] if r is not None)
    except IgrtError as exc:
        log.warning("series %s refused: %s", series_uid, exc.reason)
        return Outcome(patient_id=patient_id, cbct_series_uid=series_uid, plan=None,
                       measured=None, reasons=(exc.reason,), patient_name=patient_name,
                       cbct_acquisition_datetime=acquired)
    details = {"registration": {**m.details, "nominal": nominal.source.value,
                                "spatial_registration_uid": nominal.sro_uid,
                                "planning_ct_series_uid": ct.info.series_uid,
                                "cbct_to_planning": matrix_rows(m.transform),
                                "elapsed_s": round(time.perf_counter() - t0, 3)}}
    registered = Registered(case=case, initial=m.initial, transform=m.transform,
                            box_size_mm=config.registration.roi_size_mm)
    return Outcome(patient_id=patient_id, cbct_series_uid=series_uid, plan=ref,
                   measured=m.measured, reasons=reasons, details=details,
                   patient_name=cbct.info.patient_name,
                   cbct_acquisition_datetime=cbct.info.acquisition_datetime,
                   registered=registered)
