"""The planning source: what the registration of one CBCT needs from the planning side, and the
CBCT itself. ``igrt.pipeline.run`` takes one of each; the implementations are the directories of
``igrt register`` (:mod:`igrt.planning.directory`) and the service's store
(:mod:`igrt.planning.stored`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from igrt.core.image_series import ImageSeries, SeriesInfo
from igrt.core.plan import Plan
from igrt.core.spatial_registration import SpatialRegistration
from igrt.core.structures import StructureSet
from igrt.dicom.series_loader import Around


@dataclass(frozen=True)
class PlanningCtId:
    """Which planning CT, and which version of its content: what a prepared planning CT is
    found by before anything is read (``version`` changes whenever the series may have)."""

    series_uid: str
    version: str


class CbctSource(Protocol):
    """One CBCT series. ``series_uid`` is known before loading in the service (None offline,
    where it comes from the files); :meth:`load` assembles the volume or raises the
    :class:`~igrt.core.errors.SeriesError` that names the problem."""

    @property
    def series_uid(self) -> str | None: ...

    def load(self) -> ImageSeries: ...


class PlanningSource(Protocol):
    """The planning objects available for a patient."""

    def plans(self, patient_id: str) -> Sequence[Plan]:
        """The RT (Ion) Plans available for this Patient ID (and, to name a wrong patient,
        those for others when there are none for it)."""
        ...

    def selected_plan_uid(self, patient_id: str) -> str | None:
        """The plan chosen for this patient (``select_plan``, ``--plan``), if any."""
        ...

    def structure_sets(self, plan: Plan) -> Sequence[StructureSet]:
        """The RT Structure Sets in the plan's Frame of Reference."""
        ...

    def planning_ct(self, plan: Plan, structure_sets: Sequence[StructureSet], *,
                    cbct: SeriesInfo | None) -> PlanningCtId:
        """Which series is the plan's planning CT (never the CBCT ``cbct`` itself; None when
        preparing a planning set before any CBCT), without reading its pixels."""
        ...

    def load_planning_ct(self, ct: PlanningCtId, *,
                         around_mm: Around | None = None) -> ImageSeries:
        """The planning CT, decoded (only the box ``around_mm`` when given: the whole series
        is checked, only that part rescaled and returned)."""
        ...

    def spatial_registrations(self, cbct: SeriesInfo) -> Sequence[SpatialRegistration]:
        """Spatial Registrations that may relate the CBCT's frame to the planning frame."""
        ...
