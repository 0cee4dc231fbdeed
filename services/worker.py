"""The registration worker: decides when a CBCT series is complete, registers it (one at a time
per room), stores the result with its ``seq`` durably, then publishes it.

Completion (CONTRACT §3): the association that delivered the series' latest instance was
*released* and no new instance arrived for ``settle_s``. An aborted association never triggers a
registration. A series is claimed in the store before it is registered, so each CBCT Series
Instance UID is registered successfully at most once, also across restarts; a re-send does not
re-register and the stored result stays available, unless the result was ``failed`` (the store
decides: :meth:`~igrt.store.Store.claim_series`). A series whose delivering association refused
instances is never registered from what remains: it ends ``failed`` (``instance_refused``).
The computation may start earlier: once the association is released the worker claims the
series and registers it ahead of its settle time, and at settle the registrar hands that outcome
over only if nothing it read has changed (:mod:`igrt.registrar`); otherwise the series is
registered then.

Faults are never silent: if a result cannot be stored (e.g. the disk is full) the worker publishes
an ``error``, its state (shown in every heartbeat and by ``status``) is ``error``, and it keeps
trying to store that result every :data:`RETRY_S`; once stored, the result is published and the
state returns to normal. An unexpected exception in the loop is reported the same way and the
loop goes on: the worker thread does not end until :meth:`Worker.stop`.

The SCP's association threads only call :meth:`Worker.notify` (a queue put); everything else runs
on the worker's own thread: each CBCT instance is decoded there as its event arrives, a planning
set is prepared for registration once its association was released and ``settle_s`` passed
(CBCTs due first), and the hot path it all feeds (:class:`igrt.registrar.Registrar`) is warmed
by :meth:`Worker.warm` before the service says READY. Tests drive the loop one
:meth:`Worker.step` at a time with their own clock.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from igrt.config import Config
from igrt.core.case import Registered
from igrt.core.errors import IgrtError
from igrt.core.kinds import IMAGE_KINDS, InstanceKind, Role
from igrt.core.messages import Outcome, correction_message
from igrt.core.reasons import ReasonCode, reason
from igrt.registrar import Registrar, WarmReport
from igrt.store import Store

log = logging.getLogger(__name__)

#: How often a result that could not be stored is tried again.
RETRY_S = 5.0
IMAGE_KIND_VALUES = frozenset(k.value for k in IMAGE_KINDS)


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

    @property
    def kind(self) -> Any: ...  # an InstanceKind

    @property
    def sop_instance_uid(self) -> str | None: ...  # set for "instance"


class WorkerState(StrEnum):
    IDLE = "idle"
    RECEIVING = "receiving"  # a CBCT waits for its settle time, or a planning set to be prepared
    #: a CBCT is being registered (at settle, or ahead of it once its association was released)
    REGISTERING = "registering"
    ERROR = "error"  # a fault is pending (see the module docstring)


@dataclass
class _Pending:
    association_id: str
    last_activity_s: float
    released: bool = False
    ahead: bool = False  # registered ahead of its settle time (the registrar keeps it)


@dataclass
class _Stop:
    pass


@dataclass(frozen=True)
class _Again:
    """``register_again``: a stored CBCT, registered anew (perhaps against another plan)."""

    series_uid: str
    plan_uid: str | None


@dataclass
class Worker:
    """Owns the registration thread. ``publish`` receives the stored JSON text of each
    correction message; ``publish_error`` receives a reason and a context dict; ``tick`` is
    called at least every ``poll_s`` (systemd watchdog); ``clock`` is the monotonic clock of the
    settle timer."""

    config: Config
    store: Store
    publish: Callable[[str], None]
    publish_error: Callable[[str, dict[str, Any]], None]
    tick: Callable[[], None] = lambda: None
    poll_s: float = 0.2
    clock: Callable[[], float] = time.monotonic
    #: the review page of a seq (``review_url`` of computed corrections); None: no page
    review_url: Callable[[int], str] | None = None
    #: called with (seq, what the registration made) once a computed correction is published
    on_registered: Callable[[int, Registered], None] = lambda _seq, _registered: None
    _queue: queue.Queue[Any] = field(default_factory=queue.Queue)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _planning_pending: dict[str, _Pending] = field(default_factory=dict)
    #: series this worker claimed to register ahead of settle and has not registered yet (kept
    #: when a later association aborts: the series registers under that claim when complete)
    _claimed: set[str] = field(default_factory=set)
    _assoc_series: dict[str, set[str]] = field(default_factory=dict)
    _unstored: dict[str, dict[str, Any]] = field(default_factory=dict)  # results to store again
    _fault: str | None = None  # the pending fault (state ``error``)
    _next_retry_s: float = 0.0
    _thread: threading.Thread | None = None
    _busy: bool = False
    _preparing: bool = False  # a planning set is being prepared (state ``receiving``)
    registrar: Registrar | None = None

    def __post_init__(self) -> None:
        if self.registrar is None:
            self.registrar = Registrar(self.config, self.store)

    # --- called from other threads --------------------------------------------------------------
    def notify(self, activity: SeriesActivity) -> None:
        """Enqueue an SCP event; never blocks, never registers on the caller's thread."""
        self._queue.put(activity)

    def queue_length(self) -> int:
        """Series received and waiting to be registered."""
        return len(self._pending)

    def state(self) -> WorkerState:
        if self._fault is not None:
            return WorkerState.ERROR
        if self._busy:
            return WorkerState.REGISTERING
        waiting = self._pending or self._planning_pending or self._preparing
        return WorkerState.RECEIVING if waiting else WorkerState.IDLE

    @property
    def fault(self) -> str | None:
        """The reason of the pending fault, or None."""
        return self._fault

    def warm(self) -> WarmReport:
        """Run the engines once and prepare the recent planning sets (before READY)."""
        assert self.registrar is not None
        return self.registrar.warm()

    def request_again(self, series_uid: str, plan_uid: str | None) -> None:
        """Queue a stored CBCT for registration anew (``register_again``); never blocks."""
        self._queue.put(_Again(series_uid, plan_uid))

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
            try:
                if not self.step(self._wait_s()):
                    return
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one fault
                self._report_fault(f"unexpected error in the worker loop: "
                                   f"{type(exc).__name__}: {exc}", {})
                log.error("worker loop error\n%s", traceback.format_exc())

    def _wait_s(self) -> float:
        """How long the loop may wait for an event: ``poll_s``, or less when a series
        becomes due sooner (so the settle time is kept to the poll's precision)."""
        settle = self.config.dicom.settle_s
        due = [p.last_activity_s + settle for p in self._pending.values() if p.released]
        if not due:
            return self.poll_s
        return max(0.0, min(self.poll_s, min(due) - self.clock()))

    def step(self, timeout_s: float) -> bool:
        """One turn of the loop: wait up to ``timeout_s`` for an event, then register whatever
        is due. False once stopped."""
        self.tick()
        try:
            item = self._queue.get(timeout=timeout_s) if timeout_s > 0 else \
                self._queue.get_nowait()
        except queue.Empty:
            item = None
        if isinstance(item, _Stop):
            return False
        if isinstance(item, _Again):
            self._register(item.series_uid, plan_uid=item.plan_uid)
        elif item is not None:
            self._on_activity(item)
        self._retry_unstored()
        for uid in self._due(self.clock()):
            self._register_claimed(uid)
        if self._queue.empty():  # CBCTs first: planning sets are prepared when nothing waits
            self._prepare_due(self.clock())
        if self._queue.empty():
            self._register_ahead()
        return True

    def _register_ahead(self) -> None:
        """Use the settle time: register a released CBCT now; at settle the registrar hands
        the outcome over if nothing it read changed meanwhile (else it registers again)."""
        assert self.registrar is not None
        for uid, pending in self._pending.items():
            if pending.released and not pending.ahead:
                pending.ahead = True
                if self.store.refused_in_delivery(uid):
                    continue  # it ends failed at settle (instance_refused): nothing to compute
                try:
                    claimed = uid in self._claimed or self.store.claim_series(uid)
                except Exception:  # noqa: BLE001 - only a head start: settle claims (and reports)
                    log.exception("series %s: not claimed ahead of settle", uid)
                    continue
                if not claimed:
                    continue  # registered before: settle says so
                # claimed before it is computed, as at settle: a service killed while
                # registering reports the series ``interrupted`` and never re-runs it by itself
                self._claimed.add(uid)
                self._busy = True
                try:
                    self.registrar.register_ahead(uid)
                except Exception:  # noqa: BLE001 - only a head start: settle registers anyway
                    log.exception("series %s: registration ahead of settle failed", uid)
                finally:
                    self._busy = False
                return  # one at a time: new events first

    def _on_activity(self, a: SeriesActivity) -> None:
        now = self.clock()
        assert self.registrar is not None
        if a.event == "instance":
            if a.series_uid is None:
                return
            if str(a.role) != Role.IMAGING.value:
                self._planning_pending[a.series_uid] = _Pending(a.association_id, now)
                self._assoc_series.setdefault(a.association_id, set()).add(a.series_uid)
                return
            for uid in self._cbct_series_of(a):
                self._pending[uid] = _Pending(a.association_id, now)
                self._assoc_series.setdefault(a.association_id, set()).add(uid)
                self.registrar.forget_ahead(uid)  # what was registered ahead is stale
            self.registrar.on_instance(a.series_uid, a.sop_instance_uid, a.role, a.kind)
            return
        touched = self._assoc_series.pop(a.association_id, set())
        for uid in touched:
            for waiting in (self._pending, self._planning_pending):
                pending = waiting.get(uid)
                if pending is None or pending.association_id != a.association_id:
                    continue  # a later association has taken over this series
                if a.event == "released":
                    pending.released = True
                    pending.last_activity_s = now
                else:
                    del waiting[uid]
                    if waiting is self._pending:
                        log.warning("association %s aborted: series %s is not registered",
                                    a.association_id, uid)
                        self.registrar.discard(uid)

    def _prepare_due(self, now: float) -> None:
        """Prepare the planning sets whose association was released ``settle_s`` ago."""
        due = [uid for uid, p in self._planning_pending.items()
               if p.released and now - p.last_activity_s >= self.config.dicom.settle_s]
        patients: dict[str, None] = {}
        for uid in due:
            del self._planning_pending[uid]
            arrivals = self.store.series_arrivals(uid)
            if arrivals is not None:
                patients[arrivals.patient_id] = None
        assert self.registrar is not None
        self._preparing = bool(patients)
        try:
            for patient_id in patients:
                self.tick()  # several patients may take a while: keep the watchdog fed
                self.registrar.prepare_planning(patient_id)
        finally:
            self._preparing = False

    def _cbct_series_of(self, a: SeriesActivity) -> list[str]:
        """The CBCT series an instance event is activity of: its own series for a CT or Enhanced
        CT image; for a Spatial Registration (its own series, as DICOM requires) the CBCT series
        it references that are still being received: it belongs to them, it is never a series
        to register, and the CBCT waits for the association that brought it."""
        if str(a.kind) in IMAGE_KIND_VALUES:
            return [a.series_uid] if a.series_uid is not None else []
        if str(a.kind) != InstanceKind.SPATIAL_REGISTRATION.value or a.sop_instance_uid is None:
            return []
        record = self.store.instance(a.sop_instance_uid)
        referenced = record.referenced_series_uids if record is not None else ()
        late = [uid for uid in referenced
                 if uid not in self._pending and self.store.job_state(uid) is not None]
        if late:
            log.warning("spatial registration %s arrived for series %s that were not being "
                        "received; it is stored, but does not change a registration already made",
                        a.sop_instance_uid, ", ".join(late))
        return [uid for uid in referenced if uid in self._pending]

    def _due(self, now: float) -> list[str]:
        due = [uid for uid, p in self._pending.items()
               if p.released and now - p.last_activity_s >= self.config.dicom.settle_s]
        for uid in due:
            del self._pending[uid]
        return due

    def _register_claimed(self, series_uid: str) -> None:
        if series_uid in self._claimed:  # claimed when it was registered ahead of settle
            self._claimed.discard(series_uid)
        elif not self.store.claim_series(series_uid):
            log.info("series %s was registered before: not registering it again", series_uid)
            return
        self._register(series_uid)

    def _register(self, series_uid: str, *, plan_uid: str | None = None) -> None:
        self._busy = True
        registered: Registered | None = None
        seq: int | None = None
        try:
            try:
                refused = self.store.refused_in_delivery(series_uid)
                if refused:
                    message = self._failed(series_uid, reason(
                        ReasonCode.INCOMPLETE_SERIES,
                        f"{refused} instance(s) of the association that delivered this CBCT "
                        "were refused, so the series may be incomplete; send it again complete"))
                else:
                    message, registered = self.register(series_uid, plan_uid=plan_uid)
            except Exception as exc:  # noqa: BLE001 - a failed result, never silence
                log.error("series %s: unexpected error\n%s", series_uid, traceback.format_exc())
                message = self._failed(series_uid, reason(
                    ReasonCode.INTERNAL, f"{type(exc).__name__}: {exc}"))
            seq = self._store_and_publish(series_uid, message)
        finally:
            self._busy = False
        if seq is not None and registered is not None:
            try:
                self.on_registered(seq, registered)
            except Exception:  # noqa: BLE001 - the correction stands without its images
                log.exception("series %s: the review images of seq %d were not queued",
                              series_uid, seq)

    def _failed(self, series_uid: str, why: str) -> dict[str, Any]:
        outcome = Outcome(patient_id=None, cbct_series_uid=series_uid, plan=None, measured=None,
                          reasons=(why,))
        return correction_message(outcome, room=self.config.room, dof=self.config.couch.dof,
                                  seq=0)

    def _store_and_publish(self, series_uid: str, message: dict[str, Any]) -> int | None:
        """Store then publish; the seq, or None when it could not be stored (a fault)."""
        try:
            stored = self.store.append_correction(message, review_url=self.review_url)
        except IgrtError as exc:
            self._unstored[series_uid] = message
            self._next_retry_s = self.clock() + RETRY_S
            self._report_fault(
                f"the result of CBCT series {series_uid} could not be stored ({exc.reason}); "
                f"it is neither published nor applied; igrt tries again every {RETRY_S:g} s",
                {"series_uid": series_uid})
            return None
        self._unstored.pop(series_uid, None)
        if not self._unstored:
            self._fault = None
        log.info("series %s: seq %s status %s", series_uid, stored["seq"], stored["status"])
        self._publish_stored(series_uid)
        return int(stored["seq"])

    def _retry_unstored(self) -> None:
        if not self._unstored or self.clock() < self._next_retry_s:
            return
        for series_uid, message in list(self._unstored.items()):
            log.info("series %s: storing its result again", series_uid)
            self._store_and_publish(series_uid, message)

    def _report_fault(self, why: str, context: dict[str, Any]) -> None:
        text = reason(ReasonCode.WORKER, why)
        log.error("%s", text)
        try:
            self.publish_error(text, context)
        except Exception:  # noqa: BLE001 - the feed itself is down; the log has it
            log.exception("could not publish the worker fault")
        self._fault = text  # after the message: whoever sees the state "error" can find it

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
                self.publish_error(reason(ReasonCode.PUBLISH, str(exc)),
                                   {"series_uid": series_uid})
            except Exception:  # noqa: BLE001 - the feed itself is down; the log has it
                log.exception("could not publish the error for series %s", series_uid)

    def register(self, series_uid: str, *, plan_uid: str | None = None
                 ) -> tuple[dict[str, Any], Registered | None]:
        """The correction message (seq not yet allocated) for one complete CBCT series, and
        what the registration made of it (for the review images)."""
        assert self.registrar is not None
        outcome = self.registrar.register(series_uid, plan_uid=plan_uid)
        message = correction_message(outcome, room=self.config.room, dof=self.config.couch.dof,
                                     seq=0)
        return message, outcome.registered

    def _recover(self) -> None:
        """After a restart: a series claimed but never finished gets a ``failed`` result; a
        series completely received (released) but not yet claimed is scheduled."""
        for uid in self.store.interrupted_series():
            if self.store.correction_for_series(uid) is not None:
                continue
            self._store_and_publish(uid, self._failed(uid, reason(
                ReasonCode.INTERRUPTED,
                "the service stopped while registering this CBCT; acquire or send a new CBCT")))
        now = self.clock()
        for info in self.store.unclaimed_series(Role.IMAGING):
            if info.released:
                self._pending[info.series_uid] = _Pending(info.last_association.association_id,
                                                          now, released=True)
