"""Packaging: ``python -m build`` makes a wheel that installs into a fresh virtual environment
(its dependencies from the package index, like any site would) and runs ``igrt --version`` and
``igrt register`` on a phantom there, outside the source tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from igrt.core.geometry import CouchCorrection
from igrt.dicom.identity import software_version
from phantoms.generator import write_cbct, write_planning_set

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], cwd: Path, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
                          check=False)


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_registers(tmp_path: Path) -> None:
    built = _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"),
                  str(ROOT)], cwd=tmp_path)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("igrt-*.whl")
    venv = tmp_path / "fresh"
    made = _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)],
                cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    installed = _run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]
    igrt = str(venv / "bin" / "igrt")

    version = _run([igrt, "--version"], cwd=tmp_path)
    assert (version.returncode, version.stdout.strip()) == (0, f"igrt {software_version()}")

    known = CouchCorrection(2.0, -3.0, 1.0, 0.0, 0.0, 0.0)
    plan = write_planning_set(tmp_path / "plan", size="small")
    cbct = write_cbct(tmp_path / "cbct", plan, known)
    done = _run([igrt, "register", "--planning", str(plan.directory), "--cbct",
                 str(cbct.directory)], cwd=tmp_path, timeout_s=300)
    assert done.returncode == 0, done.stderr[-3000:]
    message = json.loads(done.stdout)
    assert message["status"] == "ok", message["reasons"]
    assert abs(message["measured"]["longitudinal_mm"] - known.longitudinal_mm) < 0.5
    # the package is the installed one, not the source tree
    where = _run([str(venv / "bin" / "python"), "-c", "import igrt; print(igrt.__file__)"],
                 cwd=tmp_path)
    assert str(venv) in where.stdout
