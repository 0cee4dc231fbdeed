"""igrt.store.results: registration jobs and correction results (the only place a seq is
made), on a real store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from store_factory import correction, meta

from igrt.core.errors import InvalidUidError, StoreError
from igrt.store import AssociationOutcome, JobState, Store, encode_correction


# --- jobs and results ----------------------------------------------------------------------------
def test_claim_series_once_ever_across_reopen(tmp_path: Path) -> None:
    root = tmp_path / "state"
    with Store.open(root) as store:
        assert store.job_state("1.2.3.100") is None
        assert store.claim_series("1.2.3.100") is True
        assert store.claim_series("1.2.3.100") is False
        assert store.job_state("1.2.3.100") is JobState.CLAIMED
        assert store.claim_series("1.2.3.200") is True
        store.append_correction(correction("1.2.3.200"))
    with Store.open(root) as store:
        assert store.claim_series("1.2.3.100") is False
        assert store.claim_series("1.2.3.200") is False
        assert store.job_state("1.2.3.200") is JobState.DONE
        assert store.interrupted_series() == ["1.2.3.100"]
        with pytest.raises(InvalidUidError, match="Series Instance UID to register"):
            store.claim_series("1.2..3")


def test_seq_increases_by_one_and_never_repeats_across_reopen(tmp_path: Path) -> None:
    root = tmp_path / "state"
    with Store.open(root) as store:
        assert store.last_seq() == 0
        assert store.latest_correction() is None
        assert store.latest_correction_json() is None
        seqs = [store.append_correction(correction(f"1.2.3.{n}"))["seq"] for n in (1, 2, 3)]
        assert seqs == [1, 2, 3]
    with Store.open(root) as store:
        assert store.last_seq() == 3
        assert store.append_correction(correction("1.2.3.4"))["seq"] == 4
    with Store.open(root) as store:
        assert store.last_seq() == 4


def test_last_seq_does_not_wait_for_a_long_store_operation(tmp_path: Path) -> None:
    """The heartbeat reads last_seq every second: it must not queue behind the store's lock
    (an instance write, a series read) while another thread holds it (issue 10: heartbeats 3-8 s
    apart beside CPU hogs)."""
    with Store.open(tmp_path / "state") as store:
        store.append_correction(correction("1.2.3.1"))
        assert store.last_seq() == 1
        held = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with store._lock:  # what a long transaction does
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert held.wait(5)
            t0 = time.monotonic()
            assert store.last_seq() == 1
            assert time.monotonic() - t0 < 0.5
        finally:
            release.set()
            holder.join()
        assert store.append_correction(correction("1.2.3.2"))["seq"] == 2
        assert store.last_seq() == 2


def test_latest_is_the_identical_json_text_after_reopen(tmp_path: Path) -> None:
    root = tmp_path / "state"
    with Store.open(root) as store:
        store.append_correction(correction("1.2.3.1"))
        stored = store.append_correction(correction("1.2.3.2", reasons=["pitch_deg > 3"]))
        text = store.latest_correction_json()
    assert text == encode_correction(stored)
    assert text is not None and text.startswith('{"schema":"igrt/correction/v1","seq":2,')
    assert '"patient_id":"Zoë-01"' in text  # UTF-8 kept, not \u-escaped
    with Store.open(root) as store:
        assert store.latest_correction_json() == text
        assert store.latest_correction() == stored
        assert store.correction_for_series("1.2.3.1") == {**correction("1.2.3.1"), "seq": 1}
        assert store.correction_for_series("1.2.3.9") is None


def test_seq_is_appended_when_the_message_has_none(store: Store) -> None:
    stored = store.append_correction({"schema": "igrt/correction/v1", "status": "failed"})
    assert list(stored) == ["schema", "status", "seq"]
    assert store.correction_for_series("1.2.3.1") is None


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="infinity"),
        pytest.param({1, 2}, id="not-json"),
    ],
)
def test_unpublishable_message_is_refused_and_consumes_no_seq(store: Store, bad: object) -> None:
    store.append_correction(correction("1.2.3.1"))
    with pytest.raises(StoreError, match="cannot be stored as JSON"):
        store.append_correction(correction("1.2.3.2", measured={"pitch_deg": bad}))
    assert store.last_seq() == 1
    assert store.job_state("1.2.3.2") is None
    assert store.append_correction(correction("1.2.3.3"))["seq"] == 2




# --- a failed series is registered again when it is sent again (issue 10, finding 8) -------------
def _deliver(store: Store, association_id: str, *, n: int = 3, refused: int = 0) -> None:
    for i in range(1, n + 1):
        store.store_instance(data=f"slice {i}".encode(),
                             meta=meta(sop_instance_uid=f"1.2.3.100.{i}",
                                       association_id=association_id))
    store.record_association(association_id, "LINAC1", AssociationOutcome.RELEASED,
                             refused=refused)


@pytest.mark.parametrize(
    ("first_status", "claimed_again"),
    [pytest.param("failed", True, id="failed-is-registered-again"),
     pytest.param("ok", False, id="ok-never-again"),
     pytest.param("review", False, id="review-never-again")],
)
def test_a_series_is_claimed_again_only_after_failed_and_a_new_delivery(
    store: Store, first_status: str, claimed_again: bool
) -> None:
    _deliver(store, "assoc-1", n=2, refused=1)
    assert store.refused_in_delivery("1.2.3.100") == 1
    assert store.claim_series("1.2.3.100") is True
    store.append_correction(correction("1.2.3.100", status=first_status))
    assert store.claim_series("1.2.3.100") is False  # the same delivery: never twice
    _deliver(store, "assoc-2", n=3)  # sent again, complete
    assert store.refused_in_delivery("1.2.3.100") == 0
    assert store.claim_series("1.2.3.100") is claimed_again
    assert store.claim_series("1.2.3.100") is False  # claimed (or done): not a second time
    if claimed_again:
        assert store.job_state("1.2.3.100") is JobState.CLAIMED
        store.append_correction(correction("1.2.3.100", status="ok"))
        _deliver(store, "assoc-3", n=3)
        assert store.claim_series("1.2.3.100") is False  # ok once: never registered again


def test_refusals_add_up_and_an_open_association_counts_none(store: Store) -> None:
    store.store_instance(data=b"x", meta=meta(association_id="assoc-9"))
    assert store.refused_in_delivery("1.2.3.100") == 0
    store.record_association("assoc-9", "LINAC1", AssociationOutcome.RELEASED, refused=2)
    store.record_association("assoc-9", "LINAC1", AssociationOutcome.ABORTED, refused=1)
    assert store.refused_in_delivery("1.2.3.100") == 3
