"""services.worker: when a CBCT series is complete (settle, abort, takeover), at most one
registration per series, recovery after a restart, and faults that are never silent. Driven one
loop step at a time with synthetic SCP events and a fake clock, against a real store; the
series here hold no pixels, so each registration ends ``failed`` (what is tested is whether and
when it happens, and what is published)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from phantom_cases import planning_set
from stored_files import store_directory

from igrt.config import Config, parse_config
from igrt.core.errors import OutOfSpaceError
from igrt.core.kinds import InstanceKind, Role
from igrt.store import AssociationOutcome, InstanceMeta, Store
from services.worker import RETRY_S, Worker, WorkerState

SETTLE_S = 1.0
CBCT = "1.2.826.0.1.3680043.10.1"
OTHER = "1.2.826.0.1.3680043.10.2"


@dataclass(frozen=True)
class Event:
    event: str  # "instance" | "released" | "aborted"
    association_id: str
    series_uid: str | None
    role: Role = Role.IMAGING
    kind: InstanceKind = InstanceKind.CT_IMAGE
    sop_instance_uid: str | None = None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Feed:
    """What the worker published: correction texts and error messages."""

    corrections: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, text: str) -> None:
        self.corrections.append(json.loads(text))

    def publish_error(self, reason: str, context: dict[str, Any]) -> None:
        self.errors.append((reason, context))

    def series(self) -> list[str]:
        return [m["cbct"]["series_uid"] for m in self.corrections]


class FailingStore(Store):
    """A real store whose next ``failures`` appends fail as a full disk would."""

    failures = 0

    def append_correction(self, message: Any, *,
                          review_url: Callable[[int], str] | None = None) -> dict[str, Any]:
        if self.failures > 0:
            self.failures -= 1
            raise OutOfSpaceError("out of disk space while storing a correction message")
        return super().append_correction(message, review_url=review_url)


def config(tmp_path: Path) -> Config:
    return parse_config({"dicom": {"settle_s": SETTLE_S}, "storage": {"dir": str(tmp_path)}})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FailingStore]:
    with FailingStore.open(tmp_path / "state") as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def feed() -> Feed:
    return Feed()


@pytest.fixture
def worker(tmp_path: Path, store: FailingStore, clock: Clock, feed: Feed) -> Worker:
    return Worker(config(tmp_path), store, publish=feed.publish, publish_error=feed.publish_error,
                  clock=clock)


def drain(worker: Worker) -> None:
    """Process every queued event (and whatever is due now)."""
    while not worker._queue.empty():
        assert worker.step(0)
    assert worker.step(0)


def wait(worker: Worker, clock: Clock, seconds: float) -> None:
    """Process what is queued, let ``seconds`` pass on the fake clock, process what is due."""
    drain(worker)
    clock.now += seconds
    drain(worker)


def deliver(worker: Worker, series_uid: str, association_id: str, end: str = "released") -> None:
    worker.notify(Event("instance", association_id, series_uid))
    worker.notify(Event(end, association_id, series_uid))
    drain(worker)


# --- completion ----------------------------------------------------------------------------------
def test_registered_once_settle_s_after_the_release(worker: Worker, clock: Clock,
                                                    feed: Feed) -> None:
    deliver(worker, CBCT, "a1")
    assert worker.state() is WorkerState.RECEIVING and worker.queue_length() == 1
    clock.now += SETTLE_S - 0.01
    drain(worker)
    assert feed.corrections == []
    clock.now += 0.01
    drain(worker)
    assert feed.series() == [CBCT]
    assert feed.corrections[0]["status"] == "failed"
    assert feed.corrections[0]["seq"] == 1
    assert worker.state() is WorkerState.IDLE and worker.queue_length() == 0
    clock.now += 10 * SETTLE_S
    drain(worker)
    assert feed.series() == [CBCT]  # once


def test_an_aborted_association_never_registers(worker: Worker, clock: Clock,
                                                feed: Feed) -> None:
    deliver(worker, CBCT, "a1", end="aborted")
    clock.now += 10 * SETTLE_S
    drain(worker)
    assert feed.corrections == [] and worker.queue_length() == 0


def test_an_association_still_open_never_registers(worker: Worker, clock: Clock,
                                                   feed: Feed) -> None:
    worker.notify(Event("instance", "a1", CBCT))
    wait(worker, clock, 100 * SETTLE_S)
    assert feed.corrections == [] and worker.queue_length() == 1


def test_a_later_association_takes_the_series_over(worker: Worker, clock: Clock,
                                                   feed: Feed) -> None:
    worker.notify(Event("instance", "a1", CBCT))
    worker.notify(Event("instance", "a2", CBCT))  # the rest of the series, on a second link
    worker.notify(Event("released", "a1", CBCT))  # the first link's release is not the end
    wait(worker, clock, 10 * SETTLE_S)
    assert feed.corrections == []
    worker.notify(Event("released", "a2", CBCT))
    wait(worker, clock, SETTLE_S)
    assert feed.series() == [CBCT]


def test_an_abort_after_a_takeover_is_the_later_links_business(worker: Worker, clock: Clock,
                                                                feed: Feed) -> None:
    worker.notify(Event("instance", "a1", CBCT))
    worker.notify(Event("instance", "a2", CBCT))
    worker.notify(Event("aborted", "a1", CBCT))
    worker.notify(Event("released", "a2", CBCT))
    wait(worker, clock, SETTLE_S)
    assert feed.series() == [CBCT]


def test_a_new_instance_restarts_the_settle_time(worker: Worker, clock: Clock,
                                                 feed: Feed) -> None:
    deliver(worker, CBCT, "a1")
    clock.now += SETTLE_S / 2
    worker.notify(Event("instance", "a2", CBCT))
    wait(worker, clock, SETTLE_S)
    assert feed.corrections == []  # a2 has not ended
    worker.notify(Event("released", "a2", CBCT))
    wait(worker, clock, SETTLE_S)
    assert feed.series() == [CBCT]


def test_planning_peers_series_are_not_cbcts(worker: Worker, clock: Clock, feed: Feed) -> None:
    worker.notify(Event("instance", "t1", OTHER, role=Role.PLANNING))
    worker.notify(Event("released", "t1", OTHER, role=Role.PLANNING))
    wait(worker, clock, 10 * SETTLE_S)
    assert feed.corrections == [] and worker.queue_length() == 0


def test_a_cbcts_spatial_registration_series_is_never_registered(worker: Worker, clock: Clock,
                                                                 feed: Feed) -> None:
    sro = Event("instance", "a1", OTHER, kind=InstanceKind.SPATIAL_REGISTRATION)
    worker.notify(sro)
    worker.notify(Event("released", "a1", OTHER, kind=InstanceKind.SPATIAL_REGISTRATION))
    wait(worker, clock, 10 * SETTLE_S)
    assert feed.corrections == [] and worker.queue_length() == 0


def test_a_planning_set_is_prepared_once_released_and_settled(
        tmp_path: Path, store: FailingStore, clock: Clock, feed: Feed) -> None:
    planned = planning_set(tmp_path)
    metas = store_directory(store, planned.directory, role=Role.PLANNING, association_id="t1")
    worker = Worker(config(tmp_path), store, publish=feed.publish,
                    publish_error=feed.publish_error, clock=clock)
    assert worker.registrar is not None
    for meta in metas:
        worker.notify(Event("instance", "t1", meta.series_uid, role=Role.PLANNING,
                            sop_instance_uid=meta.sop_instance_uid, kind=meta.kind))
    drain(worker)
    assert worker.state() is WorkerState.RECEIVING and worker.queue_length() == 0
    clock.now += 10 * SETTLE_S
    drain(worker)
    assert len(worker.registrar.references) == 0  # the association is still open
    worker.notify(Event("released", "t1", metas[0].series_uid, role=Role.PLANNING))
    wait(worker, clock, SETTLE_S - 0.01)
    assert len(worker.registrar.references) == 0 and worker.state() is WorkerState.RECEIVING
    clock.now += 0.01
    drain(worker)
    assert len(worker.registrar.references) == 1
    assert worker.state() is WorkerState.IDLE and feed.corrections == []


def test_a_released_series_is_registered_ahead_and_published_only_at_settle(
        worker: Worker, clock: Clock, feed: Feed) -> None:
    assert worker.registrar is not None
    deliver(worker, CBCT, "a1")
    assert CBCT in worker.registrar._ahead  # computed while settle_s runs ...
    assert feed.corrections == []  # ... but nothing claimed, stored or published yet
    clock.now += SETTLE_S
    drain(worker)
    assert feed.series() == [CBCT] and CBCT not in worker.registrar._ahead


def test_a_new_instance_after_the_release_drops_what_was_registered_ahead(
        worker: Worker, clock: Clock, feed: Feed) -> None:
    assert worker.registrar is not None
    deliver(worker, CBCT, "a1")
    assert CBCT in worker.registrar._ahead
    worker.notify(Event("instance", "a2", CBCT))
    drain(worker)
    assert CBCT not in worker.registrar._ahead
    clock.now += 10 * SETTLE_S
    drain(worker)
    assert feed.corrections == []  # a2 is still open


def test_a_series_claimed_before_is_not_registered_again(worker: Worker, store: Store,
                                                         clock: Clock, feed: Feed) -> None:
    assert store.claim_series(CBCT)
    deliver(worker, CBCT, "a1")
    clock.now += SETTLE_S
    drain(worker)
    assert feed.corrections == []


def test_two_series_are_registered_in_the_order_they_settle(worker: Worker, clock: Clock,
                                                            feed: Feed) -> None:
    deliver(worker, OTHER, "a1")
    clock.now += SETTLE_S / 2
    deliver(worker, CBCT, "a2")
    clock.now += SETTLE_S / 2
    drain(worker)
    assert feed.series() == [OTHER]
    clock.now += SETTLE_S / 2
    drain(worker)
    assert feed.series() == [OTHER, CBCT]
    assert [m["seq"] for m in feed.corrections] == [1, 2]


# --- recovery after a restart --------------------------------------------------------------------
def cbct_meta(sop: str, series_uid: str, association_id: str) -> InstanceMeta:
    return InstanceMeta(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sop_instance_uid=sop, series_uid=series_uid,
        study_uid="1.2.826.0.1.3680043.10.9", patient_id="PAT-001",
        frame_of_reference_uid="1.2.826.0.1.3680043.10.8", modality="CT",
        kind=InstanceKind.CT_IMAGE, role=Role.IMAGING, calling_ae="LINAC",
        association_id=association_id)


def test_recovery_reports_the_interrupted_and_schedules_the_received(
        worker: Worker, store: Store, clock: Clock, feed: Feed) -> None:
    assert store.claim_series(OTHER)  # the service died while registering it
    store.store_instance(data=b"not pixels", meta=cbct_meta(CBCT + ".1", CBCT, "a9"))
    store.record_association("a9", "LINAC", AssociationOutcome.RELEASED)
    worker._recover()
    assert feed.series() == [OTHER]
    assert feed.corrections[0]["status"] == "failed"
    assert feed.corrections[0]["reasons"][0].startswith("interrupted: the service stopped")
    assert worker.queue_length() == 1  # the released CBCT waits for its settle time
    clock.now += SETTLE_S
    drain(worker)
    assert feed.series() == [OTHER, CBCT]


def test_recovery_leaves_aborted_series_alone(worker: Worker, store: Store, clock: Clock,
                                              feed: Feed) -> None:
    store.store_instance(data=b"not pixels", meta=cbct_meta(CBCT + ".1", CBCT, "a9"))
    store.record_association("a9", "LINAC", AssociationOutcome.ABORTED)
    worker._recover()
    clock.now += 10 * SETTLE_S
    drain(worker)
    assert feed.corrections == [] and worker.queue_length() == 0


# --- faults are never silent ---------------------------------------------------------------------
def test_a_result_that_cannot_be_stored_is_an_error_then_stored_when_it_can(
        worker: Worker, store: FailingStore, clock: Clock, feed: Feed) -> None:
    store.failures = 2
    deliver(worker, CBCT, "a1")
    clock.now += SETTLE_S
    drain(worker)
    assert feed.corrections == []
    assert worker.state() is WorkerState.ERROR
    (reason, context), = feed.errors
    assert reason.startswith(f"worker: the result of CBCT series {CBCT} could not be stored "
                             "(out_of_space: out of disk space")
    assert context == {"series_uid": CBCT}
    assert worker.fault == reason
    clock.now += RETRY_S - 0.01
    drain(worker)
    assert len(feed.errors) == 1  # not retried before its time
    clock.now += 0.01
    drain(worker)
    assert len(feed.errors) == 2 and worker.state() is WorkerState.ERROR  # the second failure
    clock.now += RETRY_S
    drain(worker)
    assert feed.series() == [CBCT] and feed.corrections[0]["seq"] == 1
    assert worker.state() is WorkerState.IDLE and worker.fault is None


def test_the_loop_outlives_an_unexpected_error(worker: Worker, store: FailingStore,
                                               clock: Clock, feed: Feed) -> None:
    def broken(series_uid: str) -> bool:
        raise RuntimeError("database locked by a ghost")

    original = store.claim_series
    store.claim_series = broken  # type: ignore[method-assign]
    worker.start()
    try:
        deliver_running(worker, CBCT, "a1", clock)
        wait_until(lambda: worker.state() is WorkerState.ERROR)
        assert feed.errors[0][0].startswith("worker: unexpected error in the worker loop: "
                                            "RuntimeError: database locked by a ghost")
        store.claim_series = original  # type: ignore[method-assign]
        deliver_running(worker, OTHER, "a2", clock)
        wait_until(lambda: feed.series() == [OTHER])
    finally:
        worker.stop()


def deliver_running(worker: Worker, series_uid: str, association_id: str, clock: Clock) -> None:
    worker.notify(Event("instance", association_id, series_uid))
    worker.notify(Event("released", association_id, series_uid))
    wait_until(lambda: series_uid in worker._pending and worker._pending[series_uid].released)
    clock.now += SETTLE_S


def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    """Poll ``condition`` (the worker runs on its own thread) until true or fail the test."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the condition did not come true in time")
        time.sleep(0.01)


# --- a Spatial Registration belongs to the CBCT it references ------------------------------------
def sro_meta(sop: str, series_uid: str, references: str, association_id: str) -> InstanceMeta:
    return InstanceMeta(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.66.1", sop_instance_uid=sop,
        series_uid=series_uid, study_uid="1.2.826.0.1.3680043.10.9", patient_id="PAT-001",
        frame_of_reference_uid="1.2.826.0.1.3680043.10.7", modality="REG",
        kind=InstanceKind.SPATIAL_REGISTRATION, role=Role.IMAGING, calling_ae="LINAC",
        association_id=association_id, referenced_series_uids=(references,))


def test_a_spatial_registration_series_is_never_registered(worker: Worker, store: Store,
                                                           clock: Clock, feed: Feed) -> None:
    sro_series = OTHER
    store.store_instance(data=b"reg", meta=sro_meta(OTHER + ".1", sro_series, CBCT, "a1"))
    worker.notify(Event("instance", "a1", CBCT))
    worker.notify(Event("instance", "a1", sro_series, kind=InstanceKind.SPATIAL_REGISTRATION,
                        sop_instance_uid=OTHER + ".1"))
    worker.notify(Event("released", "a1", CBCT))
    wait(worker, clock, SETTLE_S)
    assert feed.series() == [CBCT]  # one correction, for the CBCT


def test_a_spatial_registration_on_a_later_link_holds_the_cbct_back(
        worker: Worker, store: Store, clock: Clock, feed: Feed) -> None:
    deliver(worker, CBCT, "a1")
    clock.now += SETTLE_S / 2
    store.store_instance(data=b"reg", meta=sro_meta(OTHER + ".1", OTHER, CBCT, "a2"))
    worker.notify(Event("instance", "a2", OTHER, kind=InstanceKind.SPATIAL_REGISTRATION,
                        sop_instance_uid=OTHER + ".1"))
    wait(worker, clock, SETTLE_S)
    assert feed.corrections == []  # the link that brought the registration is still open
    worker.notify(Event("released", "a2", OTHER, kind=InstanceKind.SPATIAL_REGISTRATION))
    wait(worker, clock, SETTLE_S)
    assert feed.series() == [CBCT]
