"""benchmarks/qa.py at small size (one offset per QA phantom): it runs the real ``igrt qa run``
and prints a row per case and a summary per phantom. It measures; the numbers it prints are
quoted in the README from a full-size run, not asserted here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "qa.py"
ROW = re.compile(r"^\s*(sphere_cube|iq_cylinder)\s+0\s+origin\s+0,-5,0 / 0,0,0\s+(ok|review)\s+"
                 r"(pass|warning|fail)\s+(\d+\.\d{3})\s+(\d+\.\d{3})\s+(True|False)\s+\d+\.\d\d$",
                 re.M)
SUMMARY = re.compile(r"^(sphere_cube|iq_cylinder): max translation-vector error (\d+\.\d{3}) mm, "
                     r"max rotation error (\d+\.\d{3}) deg, perturbation review (\d+) of 1; "
                     r"acceptance .*: (PASS|FAIL)$", re.M)


@pytest.mark.slow
def test_the_qa_benchmark_runs_at_small_size(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(BENCHMARK), "--size", "small", "--cases", "1",
                           "--work", str(tmp_path)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode in (0, 3), proc.stderr[-3000:]  # 3: some case missed the acceptance
    rows = ROW.findall(proc.stdout)
    summaries = SUMMARY.findall(proc.stdout)
    assert [r[0] for r in rows] == ["sphere_cube", "iq_cylinder"], proc.stdout
    assert [s[0] for s in summaries] == ["sphere_cube", "iq_cylinder"], proc.stdout
    for row, summary in zip(rows, summaries, strict=True):
        assert summary[1] == row[3] and summary[2] == row[4]  # the maxima of the one case
        assert summary[3] == ("1" if row[5] == "True" else "0")
    passed = all(s[4] == "PASS" for s in summaries)
    assert proc.returncode == (0 if passed else 3)
    history = tmp_path / "state" / "qa" / "history.sqlite"
    assert history.is_file()  # the runs went through igrt qa run into a history
