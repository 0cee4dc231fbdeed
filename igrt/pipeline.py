"""From a loaded CBCT and the patient's planning objects to an :class:`Outcome`: the one flow
shared by ``igrt register`` and the service's worker. Refusals become a failed outcome with the
reason; nothing here reads files itself (the callers pass loaders)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from igrt.config import Config
from igrt.dicom_series import ImageSeries
from igrt.errors import IgrtError
from igrt.messages import Outcome
from igrt.plan import Plan
from igrt.reference import build_case, pick_plan
from igrt.registration.runner import measure
from igrt.spatial_registration import SpatialRegistration
from igrt.structures import StructureSet

log = logging.getLogger(__name__)

CbctLoader = Callable[[], ImageSeries]
PlansLoader = Callable[[str], Sequence[Plan]]  # patient id -> plans
StructuresLoader = Callable[[Plan], Sequence[StructureSet]]
CtLoader = Callable[[Plan, Sequence[StructureSet]], ImageSeries]
SrosLoader = Callable[[ImageSeries], Sequence[SpatialRegistration]]


def run(*, series_uid: str | None, patient_id: str | None, load_cbct: CbctLoader,
        load_plans: PlansLoader, load_structure_sets: StructuresLoader,
        load_planning_ct: CtLoader, load_sros: SrosLoader, config: Config,
        selected_plan_uid: Callable[[str], str | None] = lambda _pid: None,
        isocenter_index: int | None = None) -> Outcome:
    """Load, match, register and check; any :class:`IgrtError` becomes a failed outcome."""
    t0 = time.perf_counter()
    try:
        cbct = load_cbct()
        patient_id = cbct.info.patient_id
        series_uid = cbct.info.series_uid
        plan = pick_plan(load_plans(patient_id), patient_id=patient_id,
                         selected_uid=selected_plan_uid(patient_id))
        structure_sets = load_structure_sets(plan)
        ct = load_planning_ct(plan, structure_sets)
        case, ref, nominal = build_case(cbct=cbct, plan=plan, ct=ct, sros=load_sros(cbct),
                                        structure_sets=structure_sets,
                                        isocenter_index=isocenter_index,
                                        cfg=config.registration)
        m = measure(case, config.registration, config.review)
    except IgrtError as exc:
        log.warning("series %s refused: %s", series_uid, exc.reason)
        return Outcome(patient_id=patient_id, cbct_series_uid=series_uid, plan=None,
                       measured=None, reasons=(exc.reason,))
    details = {"registration": {**m.details, "nominal": nominal.source,
                                "spatial_registration_uid": nominal.sro_uid,
                                "planning_ct_series_uid": ct.info.series_uid,
                                "elapsed_s": round(time.perf_counter() - t0, 3)}}
    return Outcome(patient_id=patient_id, cbct_series_uid=series_uid, plan=ref,
                   measured=m.measured, reasons=m.reasons, details=details)
