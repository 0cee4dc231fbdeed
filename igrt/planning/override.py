"""A planning source with the plan chosen for one registration (``register_again`` with a
``plan_uid``): everything else comes from the source it wraps."""

from __future__ import annotations

from collections.abc import Sequence

from igrt.core.image_series import ImageSeries, SeriesInfo
from igrt.core.plan import Plan
from igrt.core.spatial_registration import SpatialRegistration
from igrt.core.structures import StructureSet
from igrt.dicom.series_loader import Around
from igrt.planning.source import PlanningCtId, PlanningSource


class WithPlan:
    def __init__(self, source: PlanningSource, plan_uid: str) -> None:
        self._source = source
        self._plan_uid = plan_uid

    def plans(self, patient_id: str) -> Sequence[Plan]:
        return self._source.plans(patient_id)

    def selected_plan_uid(self, patient_id: str) -> str | None:
        return self._plan_uid

    def structure_sets(self, plan: Plan) -> Sequence[StructureSet]:
        return self._source.structure_sets(plan)

    def planning_ct(self, plan: Plan, structure_sets: Sequence[StructureSet], *,
                    cbct: SeriesInfo | None) -> PlanningCtId:
        return self._source.planning_ct(plan, structure_sets, cbct=cbct)

    def load_planning_ct(self, ct: PlanningCtId, *,
                         around_mm: Around | None = None) -> ImageSeries:
        return self._source.load_planning_ct(ct, around_mm=around_mm)

    def spatial_registrations(self, cbct: SeriesInfo) -> Sequence[SpatialRegistration]:
        return self._source.spatial_registrations(cbct)
