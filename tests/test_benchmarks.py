"""The benchmarks of ``benchmarks/`` run at test size: each script runs to its end against the
real commands and service and prints its summary. The numbers are not asserted here (timings on
a shared machine are noisy); the full-size output is quoted in the README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str, timeout_s: float = 900.0) -> str:
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), "--size", "small", *args],
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_registration_benchmark_with_elastix_and_a_high_resolution_ct(tmp_path: Path) -> None:
    out = run("registration.py", "--cases", "3", "--hires", "--work", str(tmp_path))
    assert "acceptance (<= 0.3 mm, <= 0.15 deg): PASS" in out
    assert "elastix CLI: max error" in out and "x faster" in out
    assert "high-resolution planning CT" in out and "x the same cases" in out


@pytest.mark.slow
def test_capture_benchmark_finds_every_offset_of_the_claimed_range(tmp_path: Path) -> None:
    """Every offset within 30 mm and 5° found, and no offset beyond silently wrong (exit 0
    means both; the lines are checked too)."""
    out = run("capture.py", "--work", str(tmp_path))
    assert "found within 0.5 mm / 0.3°: 6 of 6 within the claimed range" in out, out
    assert "silent wrong (ok, not found): 0 of 16" in out, out


@pytest.mark.slow
def test_latency_benchmark_warm_first_and_cross_check() -> None:
    out = run("latency.py", "--cases", "2", "--cross-check")
    assert "release -> correction beyond settle_s: median" in out
    assert "first CBCT after a start" in out
    assert "cross_check = elastix adds" in out


@pytest.mark.slow
def test_memory_benchmark() -> None:
    out = run("memory.py", "--patients", "2")
    assert "planning set prepared before: 2/2" in out
    assert "peak resident memory" in out


def test_a_kept_work_directory_refuses_phantoms_of_another_size(tmp_path: Path) -> None:
    """The phantoms' UIDs depend on the size: a planning directory rewritten at another size
    kept both sets, and every case was refused as ambiguous_plan. Another size is refused with
    the directory named, before anything is written."""
    work = tmp_path / "work"
    first = run("registration.py", "--cases", "1", "--no-elastix-cli", "--work", str(work),
                timeout_s=300.0)
    assert "acceptance" in first
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "registration.py"), "--size", "full",
                           "--cases", "1", "--no-elastix-cli", "--work", str(work)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert f"--work {work} holds phantoms of size small" in proc.stderr
    assert not any(p.name.startswith("planning") and "full" in p.name for p in work.iterdir())
