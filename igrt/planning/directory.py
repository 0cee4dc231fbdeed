"""The planning source of ``igrt register``: a planning directory (planning CT, RT Plan, RT
Structure Set) and a CBCT directory (one CBCT series, perhaps a Spatial Registration). Each
directory is scanned once, on first use (or handed over scanned: ``igrt register`` checks its
arguments on the same scan), and each file parsed once (the scan keeps the data sets)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom

from igrt.core.errors import IgrtError, MixedSeriesError, SeriesError, UnreadableError
from igrt.core.image_series import ImageSeries, SeriesInfo
from igrt.core.matching import CtCandidate, choose_planning_ct, preferred_planning_ct
from igrt.core.plan import Plan, with_structure_set_frame
from igrt.core.series import stack_geometry
from igrt.core.spatial_registration import SpatialRegistration
from igrt.core.structures import StructureSet
from igrt.core.types import Grid
from igrt.dicom.files import DicomFile, ScanResult, SeriesFiles, scan
from igrt.dicom.instance_decoder import DecodedInstance, decode_instance
from igrt.dicom.plan_reader import read_plan
from igrt.dicom.registration_reader import read_spatial_registration
from igrt.dicom.series_loader import Around, assemble, load_series
from igrt.dicom.structure_reader import read_structure_set
from igrt.planning.source import PlanningCtId


def header_grid(instances: Sequence[DecodedInstance]) -> Grid | None:
    """The voxel grid the assembly of these instances will have (the same stack decision on
    the same slices), or None when their headers make no volume (the assembly says why)."""
    try:
        stack = stack_geometry([frame.geometry for i in instances for frame in i.frames])
    except IgrtError:
        return None
    return (stack.spacing_mm, np.asarray(stack.direction, dtype=np.float64))


class DirectoryCbct:
    """The one CBCT series of a directory (a CbctSource). ``found``: the directory's scan,
    when the caller made it already (``scan(directory, keep_datasets=True)``)."""

    def __init__(self, directory: Path, *, found: ScanResult | None = None) -> None:
        self.directory = Path(directory)
        self._found = found

    @property
    def series_uid(self) -> str | None:
        return None  # known only once the directory is read

    @property
    def found(self) -> ScanResult:
        if self._found is None:
            self._found = scan(self.directory, keep_datasets=True)
        return self._found

    def load(self) -> ImageSeries:
        return assemble(self.decoded())

    def decoded(self) -> list[DecodedInstance]:
        """Every instance of the directory's one CBCT series, parsed and decoded (not yet
        assembled: the caller may look at the headers first)."""
        return [decode_instance(ds, n) for n, ds in enumerate(_datasets(self._the_cbct()))]

    def _the_cbct(self) -> SeriesFiles:
        found = self.found
        if found.other:
            first = found.other[0]
            raise UnreadableError(
                f"{len(found.other)} file(s) in {self.directory} cannot be used, e.g. "
                f"{first.path.name}: {first.reason}")
        if not found.image_series:
            raise SeriesError(f"no CT image series in {self.directory}")
        if len(found.image_series) > 1:
            raise MixedSeriesError(
                f"{self.directory} holds {len(found.image_series)} image series; give one "
                "CBCT: " + ", ".join(s.series_uid for s in found.image_series))
        return found.image_series[0]


class DirectoryPlanning:
    """A planning directory as a PlanningSource. ``plan_uid`` is the plan chosen on the command
    line (``--plan``); Spatial Registrations come from the planning directory and from the CBCT's
    own directory. ``found``: the directory's scan, when the caller made it already. Plans
    and structure sets are read once (a directory is read for one run)."""

    def __init__(self, directory: Path, *, cbct: DirectoryCbct | None = None,
                 plan_uid: str | None = None, found: ScanResult | None = None) -> None:
        self.directory = Path(directory)
        self._cbct = cbct
        self._plan_uid = plan_uid
        self._found = found
        self._plans: list[Plan] | None = None
        self._structure_sets: list[StructureSet] | None = None
        self._last_ct: tuple[object, ImageSeries] | None = None

    @property
    def found(self) -> ScanResult:
        if self._found is None:
            self._found = scan(self.directory, keep_datasets=True)
        return self._found

    def plans(self, patient_id: str) -> list[Plan]:
        if self._plans is None:
            plans = [read_plan(_read(f)) for f in self.found.rt_plans]
            if any(p.frame_of_reference_uid is None for p in plans):
                sets = self._all_structure_sets
                plans = [with_structure_set_frame(p, sets) for p in plans]
            self._plans = plans
        return list(self._plans)

    @property
    def _all_structure_sets(self) -> list[StructureSet]:
        if self._structure_sets is None:
            self._structure_sets = [read_structure_set(_read(f))
                                    for f in self.found.structure_sets]
        return self._structure_sets

    def attach_cbct(self, cbct: DirectoryCbct) -> None:
        """The CBCT directory whose Spatial Registrations are read too, when it is known only
        after this source was made (``igrt register`` prepares the planning side first)."""
        self._cbct = cbct

    def selected_plan_uid(self, patient_id: str) -> str | None:
        return self._plan_uid

    def structure_sets(self, plan: Plan) -> list[StructureSet]:
        return self._all_structure_sets

    def planning_ct(self, plan: Plan, structure_sets: Sequence[StructureSet], *,
                    cbct: SeriesInfo | None) -> PlanningCtId:
        exclude = cbct.series_uid if cbct is not None else None
        candidates = [CtCandidate(s.series_uid, s.frame_of_reference_uid)
                      for s in self.found.image_series if s.series_uid != exclude]
        uid = choose_planning_ct(candidates, plan,
                                 preferred_series_uid=preferred_planning_ct(plan, structure_sets))
        files = self.found.series(uid)
        assert files is not None  # chosen among the scanned series
        return PlanningCtId(uid, f"{self.directory}:{len(files.files)}")

    def load_planning_ct(self, ct: PlanningCtId, *,
                         around_mm: Around | None = None) -> ImageSeries:
        """The planning CT (the last one read is kept: a directory is read for one run)."""
        key = (ct, None if around_mm is None else
               (tuple(np.ravel(around_mm[0]).tolist()), tuple(np.ravel(around_mm[1]).tolist())))
        if self._last_ct is not None and self._last_ct[0] == key:
            return self._last_ct[1]
        files = self.found.series(ct.series_uid)
        if files is None:
            raise SeriesError(f"no CT series {ct.series_uid} in {self.directory}")
        series = load_series(_datasets(files), around_mm=around_mm)
        self._last_ct = (key, series)
        return series

    def spatial_registrations(self, cbct: SeriesInfo) -> list[SpatialRegistration]:
        own = list(self._cbct.found.registrations) if self._cbct is not None else []
        return [read_spatial_registration(_read(f))
                for f in own + list(self.found.registrations)]


def _read(f: DicomFile) -> pydicom.Dataset:
    return f.dataset if f.dataset is not None else pydicom.dcmread(f.path)


def _datasets(series: SeriesFiles) -> list[pydicom.Dataset]:
    return [_read(f) for f in series.files]
