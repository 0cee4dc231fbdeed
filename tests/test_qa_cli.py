"""``igrt qa run`` and ``igrt qa report`` (CONTRACT §9), run as the real command on the
image-quality cylinder (a phantom today's registration finds to well within tolerance): exit 0
for the true offset, 1 when the expected offset is wrong by 2 mm on any translation axis (or
1° on any rotation axis), 2 on usage errors; the history keeps every run."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from igrt.core.geometry import CouchCorrection
from igrt.store.qa_history import QaHistory
from phantoms.generator import CbctCase, PlanningCase, write_cbct, write_planning_set

IGRT = str(Path(sys.executable).with_name("igrt"))
TRUE_OFFSET = CouchCorrection(0.0, -5.0, 0.0, 0.0, 0.0, 0.0)  # couch 5 mm toward the gantry
ROTATED_OFFSET = CouchCorrection(-2.0, 4.0, 3.0, 1.0, -1.0, 0.5)


@dataclass(frozen=True)
class Setup:
    planning: PlanningCase  # the CatPhan-like cylinder
    cbct: CbctCase  # at TRUE_OFFSET
    rotated: CbctCase  # at ROTATED_OFFSET
    config: Path  # room TB7, QA tolerances 1 mm / 0.5°
    state: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("qa-cli")
    planning = write_planning_set(root / "planning", phantom="iq_cylinder", size="small",
                                  patient_id="QA-CATPHAN")
    cbct = write_cbct(root / "cbct", planning, TRUE_OFFSET)
    rotated = write_cbct(root / "cbct-rotated", planning, ROTATED_OFFSET, seed=5)
    config = root / "igrt.toml"
    state = root / "state"
    config.write_text(f'room = "TB7"\n[storage]\ndir = "{state}"\n[qa]\ntolerance_mm = 1.0\n'
                      "tolerance_deg = 0.5\n")
    return Setup(planning, cbct, rotated, config, state)


def expected_arg(values: list[float]) -> str:
    return "--expected=" + ",".join(f"{v:g}" for v in values)


def qa_run(setup: Setup, cbct: CbctCase, expected: list[float]
           ) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run([IGRT, "qa", "run", "--planning", str(setup.planning.directory),
                           "--cbct", str(cbct.directory), expected_arg(expected),
                           "--config", str(setup.config)],
                          capture_output=True, text=True, timeout=300, check=False)
    message = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, message, proc.stderr


def values(c: CouchCorrection) -> list[float]:
    return [*map(float, c.translation_mm), *map(float, c.angles_deg)]


@pytest.mark.slow
@pytest.mark.parametrize("which", ["translation", "rotated"])
def test_the_true_offset_passes(setup: Setup, which: str) -> None:
    cbct, known = ((setup.cbct, TRUE_OFFSET) if which == "translation"
                   else (setup.rotated, ROTATED_OFFSET))
    code, message, stderr = qa_run(setup, cbct, values(known))
    assert code == 0, (message.get("findings"), stderr[-2000:])
    assert message["schema"] == "igrt/qa/v1"
    assert message["passed"] is True and message["level"] == "pass"
    assert message["expected"] == known.as_dict()
    assert message["tolerance_mm"] == 1.0 and message["tolerance_deg"] == 0.5
    assert message["room"] == "TB7" and message["phantom"] == "QA-CATPHAN"
    for axis, diff in message["difference"].items():
        assert diff == pytest.approx(message["measured"][axis] - message["expected"][axis],
                                     abs=0.011)
    assert "igrt qa: registering" in stderr and "igrt qa: recorded as run" in stderr
    with QaHistory.open(setup.state) as history:
        stored = [r for r in history.runs() if r.run_id == message["run_id"]]
    assert stored and stored[0].message == message
    assert "axial_after_blend_bone" in stored[0].images
    assert stored[0].images["axial_after_blend_bone"].read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
@pytest.mark.parametrize(("axis", "index", "wrong_by"), [
    pytest.param("lateral_mm", 0, 2.0, id="lateral"),
    pytest.param("longitudinal_mm", 1, -2.0, id="longitudinal"),
    pytest.param("vertical_mm", 2, 2.0, id="vertical"),
    pytest.param("pitch_deg", 3, 1.0, id="pitch"),
    pytest.param("roll_deg", 4, -1.0, id="roll"),
    pytest.param("rotation_deg", 5, 1.0, id="rotation"),
])
def test_a_wrong_expected_offset_fails(setup: Setup, axis: str, index: int,
                                       wrong_by: float) -> None:
    expected = values(TRUE_OFFSET)
    expected[index] += wrong_by
    code, message, _ = qa_run(setup, setup.cbct, expected)
    assert code == 1
    assert message["passed"] is False and message["level"] == "fail"
    assert message["axes"][axis] == "fail"
    assert message["difference"][axis] == pytest.approx(-wrong_by, abs=0.3)
    assert any(f.startswith(axis.rsplit("_", 1)[0]) for f in message["findings"])


@pytest.mark.parametrize("args", [
    pytest.param(["--expected=1,2"], id="two-values"),
    pytest.param(["--expected=a,b,c"], id="not-numbers"),
    pytest.param(["--expected=0,0,500"], id="implausible"),
    pytest.param([], id="expected-missing"),
])
def test_usage_errors_exit_2(setup: Setup, args: list[str]) -> None:
    proc = subprocess.run([IGRT, "qa", "run", "--planning", str(setup.planning.directory),
                           "--cbct", str(setup.cbct.directory), *args, "--config",
                           str(setup.config)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""


def test_a_missing_directory_or_bad_config_exits_2(setup: Setup, tmp_path: Path) -> None:
    missing = subprocess.run([IGRT, "qa", "run", "--planning", str(tmp_path / "nope"), "--cbct",
                              str(setup.cbct.directory), "--expected=0,-5,0", "--config",
                              str(setup.config)], capture_output=True, text=True, timeout=60,
                             check=False)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[qa]\ntolerance_mm = 0\n")
    config = subprocess.run([IGRT, "qa", "run", "--planning", str(setup.planning.directory),
                             "--cbct", str(setup.cbct.directory), "--expected", "-5,0,0",
                             "--config", str(bad)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert config.returncode == 2 and "qa.tolerance_mm" in config.stderr


@pytest.mark.slow
def test_report_writes_pdf_and_html_of_the_history(setup: Setup, tmp_path: Path) -> None:
    qa_run(setup, setup.cbct, values(TRUE_OFFSET))  # at least one run with images
    for name in ("qa.pdf", "qa.html"):
        out = tmp_path / name
        proc = subprocess.run([IGRT, "qa", "report", "--out", str(out), "--config",
                               str(setup.config)], capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        assert out.stat().st_size > 10_000
    assert (tmp_path / "qa.pdf").read_bytes().startswith(b"%PDF")
    html = (tmp_path / "qa.html").read_text()
    assert "data:image/png;base64," in html and "QA-CATPHAN" in html
    other = tmp_path / "other.html"
    proc = subprocess.run([IGRT, "qa", "report", "--out", str(other), "--phantom", "nothing",
                           "--config", str(setup.config)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and "0 runs" in other.read_text()


@pytest.mark.parametrize("out", ["report.txt", "no-such-folder/report.pdf"])
def test_report_usage_errors_exit_2(setup: Setup, tmp_path: Path, out: str) -> None:
    proc = subprocess.run([IGRT, "qa", "report", "--out", str(tmp_path / out), "--config",
                           str(setup.config)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2, proc.stderr
