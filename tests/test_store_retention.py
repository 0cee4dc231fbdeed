"""igrt.store.retention: ``keep_days`` purges old received series, never what a correction that
may still be decided, a pending record, a registration in progress or a patient under treatment
needs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from store_factory import CBCT_FRAME, PLAN_CLASS, PLAN_FRAME, REG_CLASS, StepClock, meta

from igrt.core.decisions import Decision, DecisionRequest
from igrt.core.kinds import InstanceKind, Role
from igrt.store import Store
from igrt.store.records_queue import RecordObject


def _cbct(store: Store, series: str, patient: str) -> None:
    store.store_instance(data=b"cbct", meta=meta(sop_instance_uid=f"{series}.1", series_uid=series,
                                                 patient_id=patient, study_uid=f"{series}.9"))


def _planning(store: Store, series: str, patient: str) -> None:
    store.store_instance(data=b"ct", meta=meta(
        sop_instance_uid=f"{series}.1", series_uid=series, patient_id=patient,
        study_uid=f"{series}.9", role=Role.PLANNING, calling_ae="TPS",
        frame_of_reference_uid=PLAN_FRAME))
    store.store_instance(data=b"plan", meta=meta(
        sop_class_uid=PLAN_CLASS, sop_instance_uid=f"{series}.2", series_uid=f"{series}.5",
        patient_id=patient, study_uid=f"{series}.9", role=Role.PLANNING, calling_ae="TPS",
        kind=InstanceKind.RT_PLAN, modality="RTPLAN", frame_of_reference_uid=PLAN_FRAME))


def _correction(store: Store, cbct: str, planning: str) -> int:
    message = {"schema": "igrt/correction/v1", "status": "ok", "cbct": {"series_uid": cbct},
               "measured": {}, "correction": {},
               "registration": {"planning_ct_series_uid": planning}}
    return int(store.append_correction(message)["seq"])


def _approve(store: Store, seq: int) -> None:
    store.decide(DecisionRequest(seq=seq, decision=Decision.APPROVED, operator="J. Smith"))


def _held(store: Store) -> set[str]:
    with store._reading("test") as conn:
        return {r[0] for r in conn.execute("SELECT series_uid FROM series")}


def test_purge_keeps_what_is_needed(tmp_path: Path) -> None:
    clock = StepClock()
    with Store.open(tmp_path / "s", clock=clock) as store:
        # day 0: patient A (done: old correction), B (recent correction), C (pending record)
        for patient in ("A", "B", "C"):
            _planning(store, f"1.2.{ord(patient)}.1", patient)
            _cbct(store, f"1.2.{ord(patient)}.2", patient)
        store.store_instance(data=b"sro", meta=meta(
            sop_class_uid=REG_CLASS, sop_instance_uid="1.2.66.3.1", series_uid="1.2.66.3",
            patient_id="B", study_uid="1.2.66.9", kind=InstanceKind.SPATIAL_REGISTRATION,
            modality="REG", referenced_frame_uids=(CBCT_FRAME,),
            referenced_series_uids=("1.2.66.2",)))
        _approve(store, _correction(store, "1.2.65.2", "1.2.65.1"))  # A: decided
        seq_c = _correction(store, "1.2.67.2", "1.2.67.1")
        _approve(store, seq_c)
        store.queue_record(RecordObject(seq_c, "2.25.9", "1.2.67.2", "1.2.67.1", "op",
                                        "2026-11-21T18:31:00.000Z", b"reg"), ["OIS"])
        clock.now += timedelta(days=35)
        _correction(store, "1.2.66.2", "1.2.66.1")  # B's CBCT registered again on day 35
        _cbct(store, "1.2.68.2", "D")  # young
        clock.now += timedelta(days=5)
        files_before = {p.name for p in (tmp_path / "s" / "instances").rglob("*.dcm")}
        report = store.purge_older_than(30)
        held = _held(store)
    assert held == {"1.2.66.1", "1.2.66.1.5", "1.2.66.2", "1.2.66.3",  # B: correction on day 35
                    "1.2.67.1", "1.2.67.1.5", "1.2.67.2",  # C: the record is not delivered
                    "1.2.68.2"}  # D: young
    assert (report.series, report.instances, report.kept_needed) == (3, 3, 7)
    files_after = {p.name for p in (tmp_path / "s" / "instances").rglob("*.dcm")}
    assert files_before - files_after == {"1.2.65.1.1.dcm", "1.2.65.1.2.dcm", "1.2.65.2.1.dcm"}


def test_delivered_record_no_longer_holds_its_series(tmp_path: Path) -> None:
    clock = StepClock()
    with Store.open(tmp_path / "s", clock=clock) as store:
        _cbct(store, "1.2.70.2", "E")
        seq = _correction(store, "1.2.70.2", "1.2.70.1")
        _approve(store, seq)
        store.queue_record(RecordObject(seq, "2.25.8", "1.2.70.2", "1.2.70.1", "op",
                                        "2026-11-21T18:31:00.000Z", b"reg"), ["OIS"])
        clock.now += timedelta(days=40)
        assert store.purge_older_than(30).series == 0
        store.delivery_acknowledged(seq, "OIS", 0)
        assert store.purge_older_than(30).series == 1
        assert store.series_instances("1.2.70.2") == []
        assert store.correction_by_seq(seq) is not None  # the history stays


def test_claimed_series_is_never_purged(tmp_path: Path) -> None:
    clock = StepClock()
    with Store.open(tmp_path / "s", clock=clock) as store:
        _cbct(store, "1.2.71.2", "F")
        assert store.claim_series("1.2.71.2")
        clock.now += timedelta(days=40)
        assert store.purge_older_than(30).series == 0
        assert store.series_instances("1.2.71.2") != []


def test_an_undecided_correction_holds_its_series_and_images_whatever_their_age(
        tmp_path: Path) -> None:
    clock = StepClock()
    with Store.open(tmp_path / "s", clock=clock) as store:
        _cbct(store, "1.2.72.2", "G")
        _planning(store, "1.2.72.1", "G")
        seq = _correction(store, "1.2.72.2", "1.2.72.1")
        image = store.save_review_image(seq, "axial_after_blend_soft", b"png")
        clock.now += timedelta(days=90)
        assert store.purge_older_than(30).series == 0  # nobody approved or rejected it yet
        assert image.exists() and store.review_images(seq)
        _approve(store, seq)
        assert store.purge_older_than(30).series == 3  # the CBCT, the planning CT and its plan
        assert not image.exists() and store.review_images(seq) == {}
        assert store.decision(seq) is not None  # the history stays
