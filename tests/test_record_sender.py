"""services.record_sender: back-off, acknowledgement, the overdue alarm (with a stand-in for the
one C-STORE and a fake clock), and the real C-STORE against DCMTK's storescp."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom
import pytest
from store_factory import correction
from storescp import Storescp, free_port

from igrt.config import Destination, parse_config
from igrt.core.errors import RecordDeliveryError
from igrt.core.geometry import CouchCorrection
from igrt.dicom.identity import IMPLEMENTATION_CLASS_UID
from igrt.store import Store
from igrt.store.records_queue import RecordObject
from phantoms.generator import write_cbct, write_planning_set
from services.record_sender import RecordSender, deliver

T0 = datetime(2026, 11, 21, 18, 30, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class FakeDestination:
    """Stands in for the one C-STORE: fails while ``down``, else answers ``status``."""

    def __init__(self) -> None:
        self.down = True
        self.status = 0x0000
        self.calls: list[tuple[str, int]] = []

    def __call__(self, data: bytes, destination: Destination, *, calling_ae: str,
                 timeout_s: float) -> int:
        self.calls.append((destination.ae_title, len(data)))
        if self.down:
            raise RecordDeliveryError(f"{destination.ae_title} did not answer")
        return self.status


def _config(tmp_path: Path, **record: Any) -> Any:
    return parse_config({"storage": {"dir": str(tmp_path / "state")}, "record": {
        "destinations": [{"ae_title": "OIS", "host": "127.0.0.1", "port": 104}],
        "retry_initial_s": 10, "retry_max_s": 30, "alarm_after_s": 60, **record}})


def _queue(store: Store, destinations: list[str]) -> int:
    seq = int(store.append_correction(correction("1.2.3.100"))["seq"])
    store.queue_record(RecordObject(seq, f"2.25.{seq}", "1.2.3.100", "1.2.3.200", "J. Smith",
                                    "2026-11-21T18:30:00.000Z", b"object"), destinations)
    return seq


@pytest.fixture
def wall() -> Clock:
    return Clock()


def test_retries_back_off_then_the_record_is_acknowledged(tmp_path: Path, wall: Clock) -> None:
    with Store.open(tmp_path / "state", clock=wall) as store:
        _queue(store, ["OIS"])
        ois = FakeDestination()
        errors: list[tuple[str, dict[str, Any]]] = []
        sender = RecordSender(_config(tmp_path), store, publish_error=lambda r, c: errors.append(
            (r, c)), clock=wall, send=ois)
        waits = []
        for _ in range(4):
            sender.step()
            (d,) = store.deliveries(pending_only=True)
            waits.append((datetime.fromisoformat(d.next_attempt_at.replace("Z", "+00:00"))
                          - wall.now).total_seconds())
            wall.now = datetime.fromisoformat(d.next_attempt_at.replace("Z", "+00:00"))
        assert waits == [10.0, 20.0, 30.0, 30.0]  # doubled, capped at retry_max_s
        assert len(ois.calls) == 4
        ois.down = False
        sender.step()
        assert store.record_pending() == 0
        assert store.deliveries()[0].status == 0
        sender.step()
        assert len(ois.calls) == 5  # nothing is sent again once acknowledged
        assert errors and errors[0][1]["seq"] == 1  # 90 s > alarm_after_s: alarmed on the way


def test_overdue_delivery_raises_one_alarm(tmp_path: Path, wall: Clock) -> None:
    with Store.open(tmp_path / "state", clock=wall) as store:
        seq = _queue(store, ["OIS"])
        errors: list[tuple[str, dict[str, Any]]] = []
        sender = RecordSender(_config(tmp_path), store, publish_error=lambda r, c: errors.append(
            (r, c)), clock=wall, send=FakeDestination())
        sender.step()
        wall.now += timedelta(seconds=59)
        sender.step()
        assert errors == []
        wall.now += timedelta(seconds=2)
        sender.step()
        wall.now += timedelta(seconds=600)
        sender.step()
        assert len(errors) == 1
        text, context = errors[0]
        assert text.startswith("record_undelivered: the record of seq 1 has not reached OIS")
        assert "did not answer" in text
        assert context == {"seq": seq, "destination": "OIS", "sop_instance_uid": f"2.25.{seq}"}
        assert store.record_pending() == 1  # still retried


def test_alarm_is_raised_again_when_the_feed_was_down(tmp_path: Path, wall: Clock) -> None:
    with Store.open(tmp_path / "state", clock=wall) as store:
        _queue(store, ["OIS"])
        raised: list[str] = []

        def publish(text: str, context: dict[str, Any]) -> None:
            if not raised:
                raised.append("refused")
                raise RuntimeError("publisher down")
            raised.append(text)

        sender = RecordSender(_config(tmp_path), store, publish_error=publish, clock=wall,
                              send=FakeDestination())
        wall.now += timedelta(seconds=61)
        sender.step()
        sender.step()
        assert raised[0] == "refused" and raised[1].startswith("record_undelivered")


def test_one_failure_per_destination_per_turn(tmp_path: Path, wall: Clock) -> None:
    with Store.open(tmp_path / "state", clock=wall) as store:
        for _ in range(3):
            _queue(store, ["OIS"])
        ois = FakeDestination()
        sender = RecordSender(_config(tmp_path), store, publish_error=lambda r, c: None,
                              clock=wall, send=ois)
        sender.step()
        assert len(ois.calls) == 1  # the other two wait: the OIS did not answer
        ois.down = False
        sender.step()
        assert len(ois.calls) == 3 and store.record_pending() == 1  # the failed one backs off
        wall.now += timedelta(seconds=10)
        sender.step()
        assert store.record_pending() == 0


def test_destination_removed_from_the_config_stays_pending(tmp_path: Path, wall: Clock) -> None:
    with Store.open(tmp_path / "state", clock=wall) as store:
        _queue(store, ["OLD_OIS"])
        ois = FakeDestination()
        RecordSender(_config(tmp_path), store, publish_error=lambda r, c: None, clock=wall,
                     send=ois).step()
        (d,) = store.deliveries(pending_only=True)
        assert ois.calls == []
        assert d.last_error is not None and "no longer in [[record.destinations]]" in d.last_error


def test_error_status_is_a_failed_attempt(tmp_path: Path, wall: Clock) -> None:
    with Store.open(tmp_path / "state", clock=wall) as store:
        _queue(store, ["OIS"])
        ois = FakeDestination()
        ois.down = False
        ois.status = 0xB000  # warning: stored with coercion, counts as acknowledged
        RecordSender(_config(tmp_path), store, publish_error=lambda r, c: None, clock=wall,
                     send=ois).step()
        assert store.record_pending() == 0


# --- the real C-STORE ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reg_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root = tmp_path_factory.mktemp("sender")
    plan = write_planning_set(root / "plan", size="small")
    cbct = write_cbct(root / "cbct", plan, CouchCorrection.zero(), frame="sro", degrade=False)
    return next(cbct.directory.glob("REG.*")).read_bytes()


def test_deliver_stores_the_object_at_storescp(tmp_path: Path, reg_bytes: bytes) -> None:
    port = free_port()
    ois = Storescp(tmp_path / "ois", port).start()
    try:
        status = deliver(reg_bytes, Destination("OIS", "127.0.0.1", port), calling_ae="IGRT",
                         timeout_s=10)
        (received,) = ois.wait_for_files(1)
    finally:
        ois.stop()
    assert status == 0x0000
    sent = pydicom.dcmread(pydicom.filebase.DicomBytesIO(reg_bytes))
    got = pydicom.dcmread(received)
    assert got.SOPInstanceUID == sent.SOPInstanceUID
    assert f"Their Implementation Class UID:    {IMPLEMENTATION_CLASS_UID}" in ois.log()


def test_deliver_to_a_destination_that_is_down_says_so(reg_bytes: bytes) -> None:
    port = free_port()
    with pytest.raises(RecordDeliveryError, match=f"OIS@127.0.0.1:{port} did not answer"):
        deliver(reg_bytes, Destination("OIS", "127.0.0.1", port), calling_ae="IGRT",
                timeout_s=5)
