"""igrt.store.decisions and review_images: decisions checked and recorded in one transaction on
a real store (also across a reopen), supersession by a later correction of the same CBCT or
patient, and the review images kept with their correction."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from igrt.core.decisions import Decision, DecisionRequest
from igrt.core.errors import DecisionRefusedError
from igrt.store import Store

SIX = {"lateral_mm": 1.0, "longitudinal_mm": -2.0, "vertical_mm": 0.5, "pitch_deg": 0.1,
       "roll_deg": 0.0, "rotation_deg": -0.3}


def message(series: str, patient: str = "PAT-1", status: str = "ok") -> dict[str, Any]:
    return {"schema": "igrt/correction/v1", "seq": 0, "room": "TB1", "status": status,
            "reasons": [] if status == "ok" else ["at_bound: far"], "patient_id": patient,
            "cbct": {"series_uid": series}, "correction": SIX, "measured": SIX}


def approve(seq: int, operator: str = "J. Smith", **kw: Any) -> DecisionRequest:
    return DecisionRequest(seq=seq, decision=Decision.APPROVED, operator=operator, **kw)


def test_review_url_is_given_to_computed_corrections_only(store: Store) -> None:
    def url(seq: int) -> str:
        return f"http://igrt:8765/review/{seq}"

    ok = store.append_correction(message("1.1"), review_url=url)
    failed = store.append_correction({**message("1.2", status="failed"), "correction": None,
                                      "measured": None}, review_url=url)
    assert ok["review_url"] == "http://igrt:8765/review/1"
    assert "review_url" not in failed


def test_a_decision_is_durable_and_said_once(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s") as store:
        seq = store.append_correction(message("1.1"))["seq"]
        decided = store.decide(approve(seq))
        assert decided["decision"] == "approved" and decided["correction"] == SIX
        with pytest.raises(DecisionRefusedError, match="already approved by J. Smith"):
            store.decide(approve(seq, operator="Other"))
    with Store.open(tmp_path / "s") as store:
        assert store.decision(seq) == decided
        assert store.decision_json(seq) is not None
        assert store.decision(seq + 1) is None


@pytest.mark.parametrize(
    ("later", "same_cbct"),
    [
        pytest.param(message("1.1"), True, id="same-cbct-registered-again"),
        pytest.param(message("1.9"), False, id="a-newer-cbct-of-the-patient"),
    ],
)
def test_a_later_correction_supersedes(store: Store, later: dict[str, Any],
                                       same_cbct: bool) -> None:
    first = store.append_correction(message("1.1"))["seq"]
    store.append_correction(message("5.5", patient="PAT-2"))  # another patient: no effect
    assert store.superseded_by(first) is None
    newer = store.append_correction(later)["seq"]
    found = store.superseded_by(first)
    assert found is not None and (found.seq, found.same_cbct) == (newer, same_cbct)
    with pytest.raises(DecisionRefusedError, match=f"superseded by correction {newer}"):
        store.decide(approve(first))
    assert store.decide(approve(newer))["seq"] == newer


def test_two_operators_at_once_decide_once(store: Store) -> None:
    seq = store.append_correction(message("1.1"))["seq"]
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            store.decide(approve(seq, operator=f"operator {n}"))
            outcomes.append("approved")
        except DecisionRefusedError:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(outcomes) == ["approved"] + ["refused"] * 7


def test_on_decision_runs_inside_the_transaction(store: Store) -> None:
    seq = store.append_correction(message("1.1"))["seq"]

    def fails(_conn: object, _message: dict[str, Any]) -> None:
        raise RuntimeError("the record queue is full")

    with pytest.raises(RuntimeError):
        store.decide(approve(seq), on_decision=fails)
    assert store.decision(seq) is None  # rolled back with it
    seen: list[int] = []
    store.decide(approve(seq), on_decision=lambda _c, m: seen.append(m["seq"]))
    assert seen == [seq]


def test_review_images_are_kept_with_their_correction(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s") as store:
        seq = store.append_correction(message("1.1"))["seq"]
        assert store.review_images(seq) == {}
        path = store.save_review_image(seq, "axial_after_blend_soft", b"\x89PNG one")
        store.save_review_image(seq, "axial_after_blend_soft", b"\x89PNG two")  # re-rendered
        with pytest.raises(ValueError, match="not"):
            store.save_review_image(seq, "../escape", b"x")
    with Store.open(tmp_path / "s") as store:
        assert store.review_images(seq) == {"axial_after_blend_soft": path}
        assert path.read_bytes() == b"\x89PNG two"


def test_corrections_since_lists_newest_first(store: Store) -> None:
    for n in range(3):
        store.append_correction(message(f"1.{n + 1}"))
    assert [m["seq"] for m in store.corrections_since("2000-01-01T00:00:00.000Z")] == [3, 2, 1]
    assert store.corrections_since("2999-01-01T00:00:00.000Z") == []
