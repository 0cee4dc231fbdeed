"""igrt.store.qa_history: the QA history beside the store, writable while the store's lock is
held (as ``igrt qa run`` beside a running ``igrt serve``), durable, images before rows."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from igrt.core.errors import QaHistoryError
from igrt.store import Store
from igrt.store.qa_history import QaHistory


def run_message(n: int, *, seq: int | None = None, level: str = "pass") -> dict[str, Any]:
    return {"schema": "igrt/qa/v1", "time": f"2026-11-{n:02d}T07:00:00.000Z", "room": "TB1",
            "source": "service" if seq else "command_line", "passed": level != "fail",
            "level": level, "phantom": "sphere_cube", "patient_id": "QA-1", "seq": seq}


def test_runs_are_kept_in_order_with_their_images(tmp_path: Path) -> None:
    with QaHistory.open(tmp_path) as history:
        first = history.append_run(run_message(2), {"axial_after_blend_bone": b"png-1"})
        second = history.append_run(run_message(3, level="fail"), {})
        assert (first["run_id"], second["run_id"]) == (1, 2)
    with QaHistory.open(tmp_path) as again:
        runs = again.runs()
    assert [r.run_id for r in runs] == [1, 2]
    assert runs[0].message == first
    assert runs[0].images["axial_after_blend_bone"].read_bytes() == b"png-1"
    assert runs[1].message["level"] == "fail" and runs[1].images == {}


def test_a_run_is_appended_while_the_service_holds_the_store_lock(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Store.open(state), QaHistory.open(state) as history:
        history.append_run(run_message(1, seq=7), {})
        code = textwrap.dedent(f"""
            from pathlib import Path
            from igrt.store.qa_history import QaHistory
            with QaHistory.open(Path({str(state)!r})) as h:
                h.append_run({run_message(2)!r}, {{"x": b"png"}})
        """)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        assert [r.message["source"] for r in history.runs()] == ["service", "command_line"]


def test_a_seq_is_scored_once(tmp_path: Path) -> None:
    with QaHistory.open(tmp_path) as history:
        history.append_run(run_message(1, seq=5), {})
        with pytest.raises(QaHistoryError, match="seq 5 is already scored"):
            history.append_run(run_message(2, seq=5), {})
        assert history.run_for_seq(5) is not None
        assert len(history.runs()) == 1


def test_declarations_are_durable_and_taken_once(tmp_path: Path) -> None:
    with QaHistory.open(tmp_path) as history:
        history.declare("QA-1", {"expected": {"lateral_mm": 1.0}})
        newer = history.declare("QA-1", {"expected": {"lateral_mm": 2.0}})  # replaces
    with QaHistory.open(tmp_path) as history:
        assert history.expectation("QA-1") == newer
        assert history.take_expectation("QA-1") == newer
        assert history.take_expectation("QA-1") is None
        assert history.expectation("QA-1") is None


def test_an_unwritable_history_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "qa"
    blocker.write_text("not a folder")
    with pytest.raises(QaHistoryError, match="cannot be opened"):
        QaHistory.open(tmp_path)
