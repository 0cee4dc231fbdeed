"""igrt.store.records_queue: the durable record queue (one object per approved seq, one delivery
per destination), across reopening, and the upgrade of a version-1 store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from store_factory import StepClock, correction

from igrt.core.errors import RecordError
from igrt.store import SCHEMA_VERSION, Store
from igrt.store.records_queue import RecordObject, insert_record
from igrt.store.schema import MIGRATIONS


def _record(seq: int, data: bytes = b"DICM-bytes") -> RecordObject:
    return RecordObject(seq=seq, sop_instance_uid=f"2.25.{seq}", cbct_series_uid="1.2.3.100",
                        planning_series_uid="1.2.3.200", operator="J. Smith",
                        approved_at="2026-11-21T18:31:00.000Z", data=data)


def test_queue_holds_one_object_and_one_delivery_per_destination(store: Store) -> None:
    seq = store.append_correction(correction("1.2.3.100"))["seq"]
    store.queue_record(_record(seq, b"\x00\x01 object"), ["OIS", "PACS", "OIS"])
    assert store.record_pending() == 2
    assert store.record_object(seq) == _record(seq, b"\x00\x01 object")
    due = store.due_deliveries("9999-01-01T00:00:00.000Z")
    assert [(d.seq, d.ae_title, d.attempts, d.pending) for d in due] == [
        (seq, "OIS", 0, True), (seq, "PACS", 0, True)]
    assert store.due_deliveries("2000-01-01T00:00:00.000Z") == []


def test_failed_attempt_waits_and_acknowledged_one_is_done(store: Store) -> None:
    seq = store.append_correction(correction("1.2.3.100"))["seq"]
    store.queue_record(_record(seq), ["OIS"])
    store.delivery_failed(seq, "OIS", "OIS@127.0.0.1:104 did not answer",
                          "2026-11-21T19:00:00.000Z")
    assert store.due_deliveries("2026-11-21T18:59:59.999Z") == []
    (due,) = store.due_deliveries("2026-11-21T19:00:00.000Z")
    assert (due.attempts, due.last_error) == (1, "OIS@127.0.0.1:104 did not answer")
    store.delivery_acknowledged(seq, "OIS", 0x0000)
    assert store.record_pending() == 0
    (done,) = store.deliveries()
    assert (done.attempts, done.status, done.last_error, done.pending) == (2, 0, None, False)
    assert store.due_deliveries("9999-01-01T00:00:00.000Z") == []


def test_alarm_is_noted_once(store: Store) -> None:
    seq = store.append_correction(correction("1.2.3.100"))["seq"]
    store.queue_record(_record(seq), ["OIS"])
    store.delivery_alarmed(seq, "OIS")
    (d,) = store.deliveries(pending_only=True)
    assert d.alarmed_at is not None and d.pending


def test_queue_survives_reopening(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", clock=StepClock()) as s:
        seq = s.append_correction(correction("1.2.3.100"))["seq"]
        s.queue_record(_record(seq), ["OIS"])
    with Store.open(tmp_path / "s", clock=StepClock()) as s:
        assert s.record_pending() == 1
        assert s.record_object(seq) == _record(seq)


@pytest.mark.parametrize(("case", "message"), [
    ("unknown seq", "not a stored correction"),
    ("queued twice", "already queued"),
])
def test_refusals_write_nothing(store: Store, case: str, message: str) -> None:
    seq = store.append_correction(correction("1.2.3.100"))["seq"]
    if case == "queued twice":
        store.queue_record(_record(seq), ["OIS"])
    target = seq + 5 if case == "unknown seq" else seq
    with pytest.raises(RecordError, match=message):
        store.queue_record(_record(target, b"other"), ["OIS", "PACS"])
    assert store.record_pending() == (1 if case == "queued twice" else 0)


def test_insert_record_joins_the_callers_transaction(store: Store) -> None:
    """The approval stores its decision and the record in one transaction: a failure after
    insert_record leaves neither."""
    seq = store.append_correction(correction("1.2.3.100"))["seq"]
    with pytest.raises(RuntimeError), store._transaction("a decision") as conn:
        insert_record(conn, _record(seq), ["OIS"], "2026-11-21T18:31:00.000Z")
        raise RuntimeError("the decision could not be stored")
    assert store.record_object(seq) is None and store.record_pending() == 0


def test_a_version_1_store_upgrades_in_place(tmp_path: Path) -> None:
    root = tmp_path / "old"
    root.mkdir()
    conn = sqlite3.connect(root / "igrt.sqlite")
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO corrections (seq, series_uid, message_json, stored_at) VALUES "
                 "(4, '1.2.3.100', '{\"seq\": 4}', '2026-11-20T10:00:00.000Z')")
    conn.commit()
    conn.close()
    with Store.open(root) as s:
        assert s.last_seq() == 4
        s.queue_record(_record(4), ["OIS"])
        assert s.record_pending() == 1
    version = sqlite3.connect(root / "igrt.sqlite").execute(
        "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION == len(MIGRATIONS)
