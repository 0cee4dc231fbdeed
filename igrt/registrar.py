"""The service's hot path, whole: everything that turns a complete CBCT series into an outcome,
with the state that makes it fast. Built from the configuration and the store alone and fed
with the Storage SCP's events, so that it can run wherever its owner puts it (today the
worker's thread; a long-lived child process that opens the state directory itself works the
same way).

What it keeps warm:

* the CBCT series being received, decoded instance by instance as they arrive
  (:class:`~igrt.planning.cbct_assembly.CbctAssembler`);
* every planning CT a CBCT may be registered against, prepared when its planning set arrives
  and rebuilt from the store at start-up (:class:`~igrt.registration.reference_cache.
  ReferenceCache`, least recently used evicted first);
* the engines, run once at start-up (:class:`~igrt.registration.engines.EnginePool`);
* the voxel grid of the room's CBCTs (from the last one seen), so that the planning levels a
  CBCT needs are made before it arrives;
* a registration made ahead of time (:meth:`Registrar.register_ahead`, while the worker waits
  out ``settle_s``), kept with a fingerprint of everything it read: the CBCT's stored files
  (inode, size, time) and the patient's state in the store (every other instance of the
  patient, the selected plan). :meth:`Registrar.take_ahead` hands it over only if nothing of
  that changed, so it is exactly the registration that would be made at settle.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from igrt import pipeline
from igrt.config import Config
from igrt.core.errors import IgrtError
from igrt.core.image_series import ImageSeries
from igrt.core.kinds import IMAGE_KINDS, InstanceKind, Role
from igrt.core.messages import Outcome
from igrt.core.types import Grid
from igrt.dicom.series_loader import load_series_files
from igrt.planning.cbct_assembly import CbctAssembler
from igrt.planning.override import WithPlan
from igrt.planning.source import PlanningSource
from igrt.planning.stored import StoredCbct, StoredPlanning
from igrt.registration.engines import EnginePool
from igrt.registration.reference_cache import ReferenceCache
from igrt.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmReport:
    """What :meth:`Registrar.warm` did, for the start-up log."""

    engines_s: float
    patients: int
    references: int
    references_s: float
    cache_mb: float


@dataclass(frozen=True)
class Inputs:
    """What a registration of one CBCT read, as far as it can change: the series' stored
    files and the rest of the patient's state in the store."""

    files: tuple[tuple[str, int, int, int], ...]
    patient: str


class _RecordingCbct:
    """A stored CBCT that remembers the voxel grid it was assembled on."""

    def __init__(self, source: StoredCbct) -> None:
        self._source = source
        self.grid: Grid | None = None

    @property
    def series_uid(self) -> str:
        return self._source.series_uid

    def load(self) -> ImageSeries:
        series = self._source.load()
        volume = series.volume
        self.grid = (volume.spacing_mm, np.asarray(volume.direction, dtype=np.float64))
        return series


class Registrar:
    """The hot path of one room's service (see the module docstring)."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.planning = StoredPlanning(store)
        self.assembler = CbctAssembler(store)
        self.references = ReferenceCache(config.registration.planning_cache_mb * 1024 * 1024)
        self.engines = EnginePool(config.registration)
        self.cbct_grid: Grid | None = None
        self._ahead: dict[str, tuple[Inputs, Outcome]] = {}

    # --- events --------------------------------------------------------------------------------
    def on_instance(self, series_uid: str, sop_instance_uid: str | None, role: Role | str,
                    kind: InstanceKind | str | None = None) -> None:
        """An instance was stored: a CBCT slice is decoded now (planning sets are prepared
        once complete, :meth:`prepare_planning`)."""
        if str(role) != Role.IMAGING.value or sop_instance_uid is None:
            return
        if kind is not None and str(kind) not in {k.value for k in IMAGE_KINDS}:
            return  # e.g. the CBCT's Spatial Registration: read with the planning objects
        self.assembler.add(series_uid, sop_instance_uid)

    def discard(self, series_uid: str) -> None:
        """A series that will not be registered (its association was aborted)."""
        self.assembler.discard(series_uid)
        self._ahead.pop(series_uid, None)

    # --- work ----------------------------------------------------------------------------------
    def register(self, series_uid: str, *, plan_uid: str | None = None) -> Outcome:
        """The outcome for one complete CBCT series (the one made ahead of time if it is still
        what a registration now would be). ``plan_uid``: against that plan (``register_again``),
        never from what was made ahead."""
        if plan_uid is not None:
            self._ahead.pop(series_uid, None)
            return self._register(series_uid, release=True,
                                  planning=WithPlan(self.planning, plan_uid))
        ahead = self.take_ahead(series_uid)
        if ahead is not None:
            return ahead
        return self._register(series_uid, release=True)

    def register_ahead(self, series_uid: str) -> None:
        """Register a series whose association was released, before its settle time is over;
        the outcome is kept, not returned (see the module docstring)."""
        self._ahead.pop(series_uid, None)
        before = self.inputs(series_uid)
        outcome = self._register(series_uid, release=False)
        if self.inputs(series_uid) == before:
            self._ahead[series_uid] = (before, outcome)
            log.info("series %s registered ahead of its settle time", series_uid)

    def take_ahead(self, series_uid: str) -> Outcome | None:
        """The outcome made ahead of time, if nothing it read has changed since."""
        found = self._ahead.pop(series_uid, None)
        if found is None:
            return None
        if self.inputs(series_uid) != found[0]:
            log.info("series %s changed after it was registered ahead: registering it again",
                     series_uid)
            return None
        self.assembler.discard(series_uid)
        registration = found[1].details.get("registration")
        if isinstance(registration, dict):
            registration["registered_ahead_of_settle"] = True
        return found[1]

    def forget_ahead(self, series_uid: str) -> None:
        """A new instance of the series arrived: what was registered ahead is stale."""
        self._ahead.pop(series_uid, None)

    def inputs(self, series_uid: str) -> Inputs:
        """The fingerprint of what a registration of ``series_uid`` would read now."""
        files = []
        for path in self.store.series_instances(series_uid):
            try:
                st = os.stat(path)
                files.append((str(path), st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                files.append((str(path), -1, -1, -1))
        arrivals = self.store.series_arrivals(series_uid)
        patient = (self.store.patient_fingerprint(arrivals.patient_id,
                                                  excluding_series=series_uid)
                   if arrivals is not None else "")
        return Inputs(tuple(files), patient)

    def _register(self, series_uid: str, *, release: bool,
                  planning: PlanningSource | None = None) -> Outcome:
        cbct = _RecordingCbct(StoredCbct(self.store, series_uid, assembler=self.assembler,
                                         release=release))
        outcome = pipeline.run(cbct, self.planning if planning is None else planning,
                               self.config, references=self.references, engines=self.engines)
        if cbct.grid is not None:
            self.cbct_grid = cbct.grid
            registration = outcome.details.get("registration")
            if isinstance(registration, dict):
                registration["cbct_decoded_on_arrival"] = self.assembler.last_decoded_on_arrival
        return outcome

    def prepare_planning(self, patient_id: str) -> int:
        """Prepare this patient's planning CTs (a planning set arrived); returns how many."""
        try:
            prepared = pipeline.prepare_planning(self.planning, patient_id, self.config,
                                                 references=self.references,
                                                 cbct_grid=self.cbct_grid)
        except IgrtError as exc:
            log.warning("planning set of a patient not prepared: %s", exc.reason)
            return 0
        return len(prepared)

    def warm(self) -> WarmReport:
        """Before the service says READY: run the engines once, learn the room's CBCT grid
        from its last CBCT, and prepare the planning sets of the most recent patients (as
        many as the cache holds)."""
        engines_s = self.engines.warm()
        if self.cbct_grid is None:
            self.cbct_grid = self._last_cbct_grid()
        t0 = time.perf_counter()
        patients = 0
        references = 0
        for patient_id in self.store.recent_planning_patients():
            references += self.prepare_planning(patient_id)
            patients += 1
            if self.references.nbytes >= self.references.max_bytes:
                break
        report = WarmReport(engines_s=engines_s, patients=patients, references=references,
                            references_s=time.perf_counter() - t0,
                            cache_mb=self.references.nbytes / 2**20)
        log.info("warm: engines in %.2f s; %d planning CTs of %d patients prepared in %.2f s "
                 "(%.0f MB)", report.engines_s, report.references, report.patients,
                 report.references_s, report.cache_mb)
        return report

    def _last_cbct_grid(self) -> Grid | None:
        """The voxel grid of the most recent CBCT in the store, if any (reading it also runs
        the decoding path once before the first CBCT)."""
        uid = self.store.latest_series(Role.IMAGING)
        if uid is None:
            return None
        try:
            volume = load_series_files(self.store.series_instances(uid)).volume
        except IgrtError as exc:
            log.info("the last CBCT %s cannot be read (%s): its grid is learnt from the next",
                     uid, exc.reason)
            return None
        return (volume.spacing_mm, np.asarray(volume.direction, dtype=np.float64))
