"""The planning source of the service: the durable store. Prepared planning CTs are kept by
the caller (``igrt.registration.reference_cache``), found by the :class:`PlanningCtId` this
source gives without reading pixels; CBCTs are decoded as they arrive
(:class:`~igrt.planning.cbct_assembly.CbctAssembler`)."""

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
from igrt.dicom.series_loader import Around, load_series_files
from igrt.dicom.structure_reader import read_structure_set
from igrt.planning.cbct_assembly import CbctAssembler
from igrt.planning.source import PlanningCtId
from igrt.store import Store


class StoredCbct:
    """A CBCT series held by the store (a CbctSource), assembled from the instances the
    ``assembler`` decoded as they arrived (the rest are read now), or read whole."""

    def __init__(self, store: Store, series_uid: str, *,
                 assembler: CbctAssembler | None = None, release: bool = True) -> None:
        self._store = store
        self._series_uid = series_uid
        self._assembler = assembler
        self._release = release

    @property
    def series_uid(self) -> str:
        return self._series_uid

    def load(self) -> ImageSeries:
        if self._assembler is not None:
            return self._assembler.assemble(self._series_uid, release=self._release)
        return load_series_files(self._store.series_instances(self._series_uid))


class StoredPlanning:
    """The store as a PlanningSource. Planning CTs are those received from planning peers in the
    plan's frame, newest last; a planning CT's version is its instance count and last arrival
    (a re-sent or completed series is a new version)."""

    def __init__(self, store: Store) -> None:
        self._store = store

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
                    cbct: SeriesInfo | None) -> PlanningCtId:
        uids = self._store.ct_series_for_frame(plan.patient_id, plan.frame)
        exclude = cbct.series_uid if cbct is not None else None
        candidates = [CtCandidate(uid, plan.frame) for uid in uids
                      if uid != exclude]
        uid = choose_planning_ct(candidates, plan, newest_last=True,
                                 preferred_series_uid=preferred_planning_ct(plan, structure_sets))
        arrivals = self._store.series_arrivals(uid)
        version = (f"{arrivals.instance_count if arrivals else 0}:"
                   f"{arrivals.last_arrival_at if arrivals else ''}")
        return PlanningCtId(uid, version)

    def load_planning_ct(self, ct: PlanningCtId, *,
                         around_mm: Around | None = None) -> ImageSeries:
        return load_series_files(self._store.series_instances(ct.series_uid),
                                 around_mm=around_mm)

    def spatial_registrations(self, cbct: SeriesInfo) -> list[SpatialRegistration]:
        records = {r.sop_instance_uid: r for r in
                   self._store.spatial_registrations_for_series(cbct.series_uid)
                   + self._store.spatial_registrations_for_frame(
                       cbct.patient_id, cbct.frame_of_reference_uid)}
        return [read_spatial_registration(_read(r.path)) for r in records.values()]


def _read(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path)
