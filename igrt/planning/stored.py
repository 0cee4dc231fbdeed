"""The planning source of the service: the durable store. It also holds the planning-CT cache
(the planning CT is read once and kept while it does not change)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pydicom

from igrt.core.image_series import ImageSeries, SeriesInfo
from igrt.core.matching import CtCandidate, choose_planning_ct, preferred_planning_ct
from igrt.core.plan import Plan, with_structure_set_frame
from igrt.core.spatial_registration import SpatialRegistration
from igrt.core.structures import StructureSet
from igrt.dicom.plan_reader import read_plan
from igrt.dicom.registration_reader import read_spatial_registration
from igrt.dicom.series_loader import load_series_files
from igrt.dicom.structure_reader import read_structure_set
from igrt.store import Store


class StoredCbct:
    """A CBCT series held by the store (a CbctSource)."""

    def __init__(self, store: Store, series_uid: str) -> None:
        self._store = store
        self._series_uid = series_uid

    @property
    def series_uid(self) -> str:
        return self._series_uid

    def load(self) -> ImageSeries:
        return load_series_files(self._store.series_instances(self._series_uid))


class StoredPlanning:
    """The store as a PlanningSource. Planning CTs are those received from planning peers in the
    plan's frame, newest last; one planning CT is cached in memory, keyed by its series UID,
    instance count and last arrival (a re-sent or completed series is read again)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._ct_cache: dict[str, ImageSeries] = {}

    def plans(self, patient_id: str) -> list[Plan]:
        plans = [read_plan(_read(r.path)) for r in self._store.plans_for_patient(patient_id)]
        return [self._with_frame(p) for p in plans]

    def _with_frame(self, plan: Plan) -> Plan:
        """A plan without a frame of its own takes its referenced structure set's."""
        uid = plan.referenced_structure_set_uid
        if plan.frame_of_reference_uid is not None or uid is None:
            return plan
        record = self._store.instance(uid)
        if record is None or record.patient_id != plan.patient_id:
            return plan
        return with_structure_set_frame(plan, [read_structure_set(_read(record.path))])

    def selected_plan_uid(self, patient_id: str) -> str | None:
        return self._store.selected_plan(patient_id)

    def structure_sets(self, plan: Plan) -> list[StructureSet]:
        return [read_structure_set(_read(r.path)) for r in
                self._store.structure_sets_for_frame(plan.patient_id,
                                                     plan.frame)]

    def planning_ct(self, plan: Plan, structure_sets: Sequence[StructureSet], *,
                    cbct: SeriesInfo) -> ImageSeries:
        uids = self._store.ct_series_for_frame(plan.patient_id, plan.frame)
        candidates = [CtCandidate(uid, plan.frame) for uid in uids
                      if uid != cbct.series_uid]
        uid = choose_planning_ct(candidates, plan, newest_last=True,
                                 preferred_series_uid=preferred_planning_ct(plan, structure_sets))
        arrivals = self._store.series_arrivals(uid)
        key = (f"{uid}:{arrivals.instance_count if arrivals else 0}:"
               f"{arrivals.last_arrival_at if arrivals else ''}")
        cached = self._ct_cache.get(key)
        if cached is None:
            cached = load_series_files(self._store.series_instances(uid))
            self._ct_cache.clear()  # one planning CT in memory at a time
            self._ct_cache[key] = cached
        return cached

    def spatial_registrations(self, cbct: SeriesInfo) -> list[SpatialRegistration]:
        records = {r.sop_instance_uid: r for r in
                   self._store.spatial_registrations_for_series(cbct.series_uid)
                   + self._store.spatial_registrations_for_frame(
                       cbct.patient_id, cbct.frame_of_reference_uid)}
        return [read_spatial_registration(_read(r.path)) for r in records.values()]


def _read(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path)
