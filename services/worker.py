"""The registration worker: decides when a CBCT series is complete, registers it (one at a time
per room), stores the result with its ``seq`` durably, then publishes it.

Completion (CONTRACT §3): the association that delivered the series' latest instance was
*released* and no new instance arrived for ``settle_s``. An aborted association never triggers a
registration. A series is claimed in the store before it is registered, so each CBCT Series
Instance UID is registered at most once, also across restarts; a re-send does not re-register and
the stored result stays available.

The SCP's association threads only call :meth:`Worker.notify` (a queue put); everything else runs
on the worker's own thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pydicom

from igrt import pipeline
from igrt.config import Config
from igrt.dicom_series import ImageSeries, load_series_files
from igrt.messages import Outcome, correction_message
from igrt.plan import Plan, choose_planning_ct, read_plan
from igrt.spatial_registration import SpatialRegistration, read_spatial_registration
from igrt.store import Role, Store
from igrt.structures import StructureSet, read_structure_set

log = logging.getLogger(__name__)


class SeriesActivity(Protocol):
    """What the SCP reports (see ``services.scp``)."""

    @property
    def event(self) -> str: ...  # "instance" | "released" | "aborted"

    @property
    def association_id(self) -> str: ...

    @property
    def series_uid(self) -> str | None: ...

    @property
    def role(self) -> Any: ...


class State:
    IDLE = "idle"
    RECEIVING = "receiving"
    REGISTERING = "registering"


@dataclass
class _Pending:
    association_id: str
    last_activity_s: float
    released: bool = False


@dataclass
class _Stop:
    pass


@dataclass
class Worker:
    """Owns the registration thread. ``publish`` receives the stored JSON text of each
    correction message; ``publish_error`` receives a reason and a context dict; ``tick`` is
    called at least every ``poll_s`` (systemd watchdog)."""

    config: Config
    store: Store
    publish: Callable[[str], None]
    publish_error: Callable[[str, dict[str, Any]], None]
    tick: Callable[[], None] = lambda: None
    poll_s: float = 0.2
    _queue: queue.Queue[Any] = field(default_factory=queue.Queue)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _assoc_series: dict[str, set[str]] = field(default_factory=dict)
    _thread: threading.Thread | None = None
    _state: str = State.IDLE
    _ct_cache: dict[str, ImageSeries] = field(default_factory=dict)

    # --- called from other threads --------------------------------------------------------------
    def notify(self, activity: SeriesActivity) -> None:
        """Enqueue an SCP event; never blocks, never registers on the caller's thread."""
        self._queue.put(activity)

    def queue_length(self) -> int:
        """Series received and waiting to be registered."""
        return len(self._pending)

    def state(self) -> str:
        if self._state == State.IDLE and self._pending:
            return State.RECEIVING
        return self._state

    def start(self) -> None:
        self._recover()
        self._thread = threading.Thread(target=self._run, name="igrt-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._queue.put(_Stop())
        if self._thread is not None:
            self._thread.join(timeout_s)

    # --- the worker thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self.tick()
            try:
                item = self._queue.get(timeout=self.poll_s)
            except queue.Empty:
                item = None
            if isinstance(item, _Stop):
                return
            if item is not None:
                self._on_activity(item)
            for uid in self._due(time.monotonic()):
                self._register_claimed(uid)

    def _on_activity(self, a: SeriesActivity) -> None:
        now = time.monotonic()
        if a.event == "instance":
            if a.series_uid is None or str(a.role) != Role.IMAGING.value:
                return
            self._pending[a.series_uid] = _Pending(a.association_id, now)
            self._assoc_series.setdefault(a.association_id, set()).add(a.series_uid)
            return
        touched = self._assoc_series.pop(a.association_id, set())
        for uid in touched:
            pending = self._pending.get(uid)
            if pending is None or pending.association_id != a.association_id:
                continue  # a later association has taken over this series
            if a.event == "released":
                pending.released = True
                pending.last_activity_s = now
            else:
                log.warning("association %s aborted: series %s is not registered",
                            a.association_id, uid)
                del self._pending[uid]

    def _due(self, now: float) -> list[str]:
        due = [uid for uid, p in self._pending.items()
               if p.released and now - p.last_activity_s >= self.config.dicom.settle_s]
        for uid in due:
            del self._pending[uid]
        return due

    def _register_claimed(self, series_uid: str) -> None:
        if not self.store.claim_series(series_uid):
            log.info("series %s was registered before: not registering it again", series_uid)
            return
        self._state = State.REGISTERING
        try:
            try:
                message = self.register(series_uid)
            except Exception as exc:  # noqa: BLE001 - a failed result, never silence
                log.error("series %s: unexpected error\n%s", series_uid, traceback.format_exc())
                outcome = Outcome(patient_id=None, cbct_series_uid=series_uid, plan=None,
                                  measured=None,
                                  reasons=(f"internal: {type(exc).__name__}: {exc}",))
                message = correction_message(outcome, room=self.config.room,
                                             dof=self.config.couch.dof, seq=0)
            stored = self.store.append_correction(message)
            log.info("series %s: seq %s status %s", series_uid, stored["seq"], stored["status"])
            self._publish_stored(series_uid)
        finally:
            self._state = State.IDLE

    def _publish_stored(self, series_uid: str) -> None:
        """Publish the stored text (what ``latest`` returns, byte for byte)."""
        text = self.store.latest_correction_json()
        try:
            if text is None:
                raise RuntimeError("the stored correction could not be read back")
            self.publish(text)
        except Exception as exc:  # noqa: BLE001 - stored durably; `latest` still serves it
            log.error("series %s: could not publish: %s", series_uid, exc)
            try:
                self.publish_error(f"publish: {exc}", {"series_uid": series_uid})
            except Exception:  # noqa: BLE001 - the feed itself is down; the log has it
                log.exception("could not publish the error for series %s", series_uid)

    def register(self, series_uid: str) -> dict[str, Any]:
        """The correction message (seq not yet allocated) for one complete CBCT series."""
        store = self.store
        info = store.series_info(series_uid)

        def load_sros(cbct: ImageSeries) -> list[SpatialRegistration]:
            records = {r.sop_instance_uid: r for r in
                       store.spatial_registrations_for_series(series_uid)
                       + store.spatial_registrations_for_frame(
                           cbct.info.patient_id, cbct.info.frame_of_reference_uid)}
            return [read_spatial_registration(_read(r.path)) for r in records.values()]

        outcome = pipeline.run(
            series_uid=series_uid,
            patient_id=info.patient_id if info is not None else None,
            load_cbct=lambda: load_series_files(store.series_instances(series_uid)),
            load_plans=lambda pid: [read_plan(_read(r.path))
                                    for r in store.plans_for_patient(pid)],
            load_structure_sets=lambda plan: [
                read_structure_set(_read(r.path)) for r in
                store.structure_sets_for_frame(plan.patient_id, plan.frame_of_reference_uid)],
            load_planning_ct=self._planning_ct,
            load_sros=load_sros,
            config=self.config,
            selected_plan_uid=store.selected_plan,
        )
        return correction_message(outcome, room=self.config.room, dof=self.config.couch.dof,
                                  seq=0)

    def _planning_ct(self, plan: Plan, structure_sets: Sequence[StructureSet]) -> ImageSeries:
        candidates = self.store.ct_series_for_frame(plan.patient_id, plan.frame_of_reference_uid)
        preferred = next((s.referenced_series_uid for s in structure_sets
                          if s.sop_instance_uid == plan.referenced_structure_set_uid), None)
        uid = choose_planning_ct({c: plan.frame_of_reference_uid for c in candidates}, plan,
                                 preferred_series_uid=preferred)
        info = self.store.series_info(uid)
        key = f"{uid}:{info.instance_count if info else 0}:{info.last_arrival_at if info else ''}"
        cached = self._ct_cache.get(key)
        if cached is None:
            cached = load_series_files(self.store.series_instances(uid))
            self._ct_cache.clear()  # one planning CT in memory at a time
            self._ct_cache[key] = cached
        return cached

    def _recover(self) -> None:
        """After a restart: a series claimed but never finished gets a ``failed`` result; a
        series completely received (released) but not yet claimed is scheduled."""
        for uid in self.store.interrupted_series():
            if self.store.correction_for_series(uid) is not None:
                continue
            outcome = Outcome(patient_id=None, cbct_series_uid=uid, plan=None, measured=None,
                              reasons=("interrupted: the service stopped while registering this "
                                       "CBCT; acquire or send a new CBCT",))
            message = correction_message(outcome, room=self.config.room,
                                         dof=self.config.couch.dof, seq=0)
            self.store.append_correction(message)
            self._publish_stored(uid)
        now = time.monotonic()
        for info in self.store.unclaimed_series(Role.IMAGING):
            if info.released:
                self._pending[info.series_uid] = _Pending(info.last_association.association_id,
                                                          now, released=True)


def _read(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path)
