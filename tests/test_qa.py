"""igrt.core.qa: scoring a QA run against its expected offset, hand-computed per axis."""

from __future__ import annotations

import math

import pytest

from igrt.core.errors import QaError
from igrt.core.geometry import CouchCorrection
from igrt.core.qa import (
    QA_SCHEMA,
    Level,
    Tolerance,
    parse_expected,
    qa_message,
    score,
    spc_limits,
)

TOL = Tolerance(tolerance_mm=1.0, tolerance_deg=0.5)
EXPECTED = CouchCorrection(0.0, -5.0, 0.0, 0.0, 0.0, 0.0)


def shifted(**delta: float) -> CouchCorrection:
    values = EXPECTED.as_dict()
    for k, v in delta.items():
        values[k] += v
    return CouchCorrection(**values)


@pytest.mark.parametrize(
    ("delta", "level", "failing"),
    [
        pytest.param({}, Level.PASS, set(), id="exact"),
        pytest.param({"lateral_mm": 0.7}, Level.PASS, set(), id="at-action-level-passes"),
        pytest.param({"lateral_mm": 0.71}, Level.WARNING, set(), id="beyond-action-level"),
        pytest.param({"lateral_mm": 1.0}, Level.WARNING, set(), id="at-tolerance-inclusive"),
        pytest.param({"lateral_mm": 1.01}, Level.FAIL, {"lateral_mm", "vector_mm"}, id="lat"),
        pytest.param({"longitudinal_mm": -2.0}, Level.FAIL, {"longitudinal_mm", "vector_mm"},
                     id="long-2mm"),
        pytest.param({"vertical_mm": 2.0}, Level.FAIL, {"vertical_mm", "vector_mm"},
                     id="vert-2mm"),
        pytest.param({"lateral_mm": 0.6, "longitudinal_mm": 0.6, "vertical_mm": 0.6},
                     Level.FAIL, {"vector_mm"}, id="vector-1.04mm-fails-though-each-axis-passes"),
        pytest.param({"pitch_deg": 0.36}, Level.WARNING, set(), id="pitch-warning"),
        pytest.param({"pitch_deg": -0.51}, Level.FAIL, {"pitch_deg"}, id="pitch"),
        pytest.param({"roll_deg": 2.0}, Level.FAIL, {"roll_deg"}, id="roll"),
        pytest.param({"rotation_deg": -2.0}, Level.FAIL, {"rotation_deg"}, id="rotation"),
    ],
)
def test_levels_per_axis(delta: dict[str, float], level: Level, failing: set[str]) -> None:
    result = score(EXPECTED, shifted(**delta), tolerance=TOL)
    assert result.level is level
    assert result.passed is (level is not Level.FAIL)
    assert {a.axis for a in result.axes if a.level is Level.FAIL} == failing


def test_difference_is_measured_minus_expected_rounded() -> None:
    result = score(CouchCorrection(1.0, 2.0, 3.0, 0.1, 0.2, 0.3),
                   CouchCorrection(1.304, 1.5, 3.0, 0.0, 0.2, 0.55), tolerance=TOL)
    assert result.difference == CouchCorrection(0.3, -0.5, 0.0, -0.1, 0.0, 0.25)
    assert result.vector_error_mm == pytest.approx(round(math.hypot(0.3, 0.5), 2))


def test_a_failed_registration_fails() -> None:
    result = score(EXPECTED, None, tolerance=TOL, reasons=("no_plan: none",))
    assert result.level is Level.FAIL and not result.passed
    assert "no_plan: none" in result.findings[0]


def test_a_flagged_registration_is_a_warning_and_a_review_limit_is_not() -> None:
    flagged = score(EXPECTED, EXPECTED, tolerance=TOL, reasons=("unstable: restart differs",))
    assert flagged.level is Level.WARNING
    assert any("unstable" in f for f in flagged.findings)
    limit = score(EXPECTED, EXPECTED, tolerance=TOL, reasons=("translation_limit: 12 mm",))
    assert limit.level is Level.PASS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("0,-5,0", CouchCorrection(0.0, -5.0, 0.0, 0.0, 0.0, 0.0), id="three"),
        pytest.param(" 1, 2 ,3,0.5,-0.5,1.5", CouchCorrection(1, 2, 3, 0.5, -0.5, 1.5), id="six"),
    ],
)
def test_parse_expected(text: str, expected: CouchCorrection) -> None:
    assert parse_expected(text) == expected


@pytest.mark.parametrize("text", ["1,2", "1,2,3,4", "a,b,c", "1,2,nan", "0,0,150", "0,0,0,0,0,45",
                                  ""])
def test_parse_expected_refuses(text: str) -> None:
    with pytest.raises(QaError):
        parse_expected(text)


def test_message_has_the_contract_keys() -> None:
    result = score(EXPECTED, shifted(lateral_mm=0.2), tolerance=TOL)
    message = qa_message(result, tolerance=TOL, time="2026-11-21T07:00:00.000Z", room="TB1",
                         source="command_line", context={"phantom": "cube"})
    assert message["schema"] == QA_SCHEMA
    for key in ("passed", "expected", "measured", "difference", "tolerance_mm", "tolerance_deg"):
        assert key in message
    assert message["difference"]["lateral_mm"] == 0.2
    with pytest.raises(ValueError, match="passed"):
        qa_message(result, tolerance=TOL, time="t", room="r", source="s",
                   context={"passed": True})


def test_spc_limits_of_the_last_twenty() -> None:
    values = [100.0] * 5 + [float(v) for v in range(20)]  # the first five are out of the window
    limits = spc_limits(values)
    assert limits is not None and limits.n == 20
    assert limits.mean == pytest.approx(9.5)
    sigma = math.sqrt(sum((v - 9.5) ** 2 for v in range(20)) / 19)
    assert limits.upper == pytest.approx(9.5 + 3 * sigma)
    assert limits.lower == pytest.approx(9.5 - 3 * sigma)
    assert spc_limits([1.0]) is None
