"""A bounded load test (issue 10, deliver 6): 10 patients at once against the real ``igrt serve``,
half sent with DCMTK ``storescu`` and half with pynetdicom. Every instance acknowledged is stored,
every patient gets a correction that is not ``failed``, heartbeats stay at most 2 s apart. The
figures (and the same load beside two CPU-hog processes) come from ``benchmarks/load.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from load_run import run_load


@pytest.mark.slow
def test_ten_patients_at_once(tmp_path: Path) -> None:
    report = run_load(tmp_path, patients=10, size="small", settle_s=0.5, deadline_s=300.0)
    print("\n".join(report.lines()))
    assert report.sender_errors == []
    assert report.acknowledged == report.sent == report.stored
    assert report.corrections == 10
    assert report.statuses.get("failed", 0) == 0, report.statuses
    assert report.max_error_mm <= 0.5
    assert report.max_heartbeat_gap_s <= 2.0
