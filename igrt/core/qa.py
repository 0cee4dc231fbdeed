"""Physics QA scoring (CONTRACT §9): a phantom CBCT acquired at a known couch offset, the
correction igrt measured, and whether it is within tolerance. Pure numbers in, numbers out.

Definitions (README "Physics QA"):

* ``expected`` and ``measured`` are corrections in the CONTRACT §1 sense (IEC table top, mm and
  degrees); ``measured`` is the full 6-DoF result, whatever the couch can apply.
  ``difference = measured - expected`` per axis.
* **Within tolerance** means: every translation axis within ``tolerance_mm``, the length of the
  translation-difference vector (how far the isocentre would be off) within ``tolerance_mm`` too,
  and every rotation axis within ``tolerance_deg``. Limits are inclusive, on the published
  numbers (0.01 mm / 0.01°).
* **Action level**: a result beyond :data:`ACTION_FRACTION` (70 %) of a tolerance, but within
  it, is a ``warning``: it passes, and it is flagged in the output and the report. A computed
  result whose registration flagged a quality check (not converged, at bound, unstable, engines
  disagree) is a ``warning`` too: the numbers passed, the registration was not clean.
* A failed registration (no measurement) fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from igrt.core.errors import QaError
from igrt.core.geometry import CouchCorrection
from igrt.core.reasons import ReasonCode, code_of

QA_SCHEMA = "igrt/qa/v1"
ACTION_FRACTION = 0.7
SPC_WINDOW = 20
DEFAULT_TOLERANCE_MM = 1.0
DEFAULT_TOLERANCE_DEG = 0.5
#: Largest expected offset accepted (a larger one is a typo, not a QA set-up).
EXPECTED_MAX_MM = 100.0
EXPECTED_MAX_DEG = 30.0

TRANSLATION_AXES = ("lateral_mm", "longitudinal_mm", "vertical_mm")
ROTATION_AXES = ("pitch_deg", "roll_deg", "rotation_deg")
AXES = TRANSLATION_AXES + ROTATION_AXES
VECTOR = "vector_mm"  # the translation-difference vector, scored like an axis

#: Registration quality checks whose flag turns a passing result into a warning.
QUALITY_CODES = frozenset({ReasonCode.NOT_CONVERGED, ReasonCode.AT_BOUND, ReasonCode.UNSTABLE,
                           ReasonCode.ENGINES_DISAGREE})


class Level(StrEnum):
    PASS = "pass"
    WARNING = "warning"
    FAIL = "fail"


@dataclass(frozen=True)
class Tolerance:
    tolerance_mm: float = DEFAULT_TOLERANCE_MM
    tolerance_deg: float = DEFAULT_TOLERANCE_DEG
    action_fraction: float = ACTION_FRACTION

    def limit(self, axis: str) -> float:
        return self.tolerance_deg if axis.endswith("_deg") else self.tolerance_mm


@dataclass(frozen=True)
class AxisScore:
    axis: str  # one of AXES, or VECTOR
    difference: float  # signed (the vector: its length)
    tolerance: float
    level: Level


@dataclass(frozen=True)
class QaScore:
    expected: CouchCorrection
    measured: CouchCorrection | None  # None: the registration failed
    difference: CouchCorrection | None
    vector_error_mm: float | None
    axes: tuple[AxisScore, ...]  # the six axes and the vector; () when failed
    level: Level
    findings: tuple[str, ...]  # sentences: why it is a warning or a failure

    @property
    def passed(self) -> bool:
        return self.level is not Level.FAIL


def parse_expected(text: str) -> CouchCorrection:
    """``LAT,LONG,VERT[,PITCH,ROLL,ROT]`` (mm, degrees; rotations 0 when left out)."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in (3, 6):
        raise QaError(f"the expected offset {text!r} has {len(parts)} values; give 3 "
                      "(LAT,LONG,VERT in mm) or 6 (and PITCH,ROLL,ROT in degrees)")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise QaError(f"the expected offset {text!r} is not a list of numbers; write e.g. "
                      "0,-5,0 or 0,-5,0,0,0,1.5") from None
    return expected_offset(values + [0.0] * (6 - len(values)))


def expected_offset(values: Sequence[float]) -> CouchCorrection:
    """Six numbers checked to be a plausible QA offset."""
    if len(values) != 6:
        raise QaError(f"an expected offset has 6 numbers, not {len(values)}")
    for axis, value in zip(AXES, values, strict=True):
        limit = EXPECTED_MAX_DEG if axis.endswith("_deg") else EXPECTED_MAX_MM
        unit = "°" if axis.endswith("_deg") else " mm"
        if not math.isfinite(value) or abs(value) > limit:
            raise QaError(f"the expected {axis.rsplit('_', 1)[0]} {value:g}{unit} is not a QA "
                          f"offset (at most {limit:g}{unit} either way)")
    return CouchCorrection(*(float(v) + 0.0 for v in values))


def correction_from(values: Mapping[str, Any]) -> CouchCorrection:
    """A correction from a message's six named numbers."""
    return CouchCorrection(*(float(values[a]) for a in AXES))


def score(expected: CouchCorrection, measured: CouchCorrection | None, *, tolerance: Tolerance,
          reasons: Sequence[str] = ()) -> QaScore:
    """Compare the measured correction with the expected one."""
    if measured is None:
        why = "; ".join(reasons) or "no correction was computed"
        return QaScore(expected, None, None, None, (), Level.FAIL,
                       (f"the registration failed: {why}",))
    measured = measured.rounded()
    diff = CouchCorrection(*(_r(m - e) for m, e in zip(_values(measured), _values(expected),
                                                        strict=True)))
    vector = _r(math.sqrt(sum(v * v for v in _values(diff)[:3])))
    axes = [_axis(a, d, tolerance) for a, d in zip(AXES, _values(diff), strict=True)]
    axes.append(_axis(VECTOR, vector, tolerance))
    findings = [_finding(a) for a in axes if a.level is not Level.PASS]
    flagged = [r for r in reasons if code_of(r) in QUALITY_CODES]
    findings += [f"the registration flagged {r}" for r in flagged]
    levels = {a.level for a in axes}
    if Level.FAIL in levels:
        level = Level.FAIL
    elif Level.WARNING in levels or flagged:
        level = Level.WARNING
    else:
        level = Level.PASS
    return QaScore(expected, measured, diff, vector, tuple(axes), level, tuple(findings))


def _axis(axis: str, difference: float, tolerance: Tolerance) -> AxisScore:
    limit = tolerance.limit(axis)
    size = abs(difference)
    if size > limit:
        level = Level.FAIL
    elif size > tolerance.action_fraction * limit:
        level = Level.WARNING
    else:
        level = Level.PASS
    return AxisScore(axis, difference, limit, level)


def _finding(a: AxisScore) -> str:
    unit = "°" if a.axis.endswith("_deg") else " mm"
    name = "translation vector" if a.axis == VECTOR else a.axis.rsplit("_", 1)[0]
    if a.level is Level.FAIL:
        return (f"{name} off by {a.difference:+.2f}{unit}, beyond the tolerance "
                f"{a.tolerance:g}{unit}")
    return (f"{name} off by {a.difference:+.2f}{unit}, beyond the action level "
            f"({ACTION_FRACTION:.0%} of {a.tolerance:g}{unit})")


def _values(c: CouchCorrection) -> tuple[float, ...]:
    return (c.lateral_mm, c.longitudinal_mm, c.vertical_mm, c.pitch_deg, c.roll_deg,
            c.rotation_deg)


def _r(value: float) -> float:
    return round(value, 2) + 0.0


def qa_message(result: QaScore, *, tolerance: Tolerance, time: str, room: str, source: str,
               context: Mapping[str, Any]) -> dict[str, Any]:
    """The ``igrt/qa/v1`` object: printed by ``igrt qa run``, stored in the history, published
    on the ``qa`` topic. ``context`` adds what the caller knows (phantom, patient, CBCT, plan,
    engine, status, reasons, seq...); it may not overwrite the score's keys."""
    message: dict[str, Any] = {
        "schema": QA_SCHEMA,
        "time": time,
        "room": room,
        "source": source,
        "passed": result.passed,
        "level": str(result.level),
        "expected": result.expected.as_dict(),
        "measured": None if result.measured is None else result.measured.as_dict(),
        "difference": None if result.difference is None else result.difference.as_dict(),
        "vector_error_mm": result.vector_error_mm,
        "tolerance_mm": tolerance.tolerance_mm,
        "tolerance_deg": tolerance.tolerance_deg,
        "action_level": tolerance.action_fraction,
        "axes": {a.axis: str(a.level) for a in result.axes},
        "findings": list(result.findings),
    }
    clash = sorted(set(context) & set(message))
    if clash:
        raise ValueError(f"the context may not overwrite the keys {clash} of a QA message")
    message.update(context)
    return message


# --- statistical process control -----------------------------------------------------------------
@dataclass(frozen=True)
class SpcLimits:
    """Mean ± 3σ (sample standard deviation) of the last ``n`` values."""

    n: int
    mean: float
    sigma: float

    @property
    def lower(self) -> float:
        return self.mean - 3.0 * self.sigma

    @property
    def upper(self) -> float:
        return self.mean + 3.0 * self.sigma


def spc_limits(values: Sequence[float], *, window: int = SPC_WINDOW) -> SpcLimits | None:
    """Control limits of the last ``window`` values; None with fewer than two."""
    last = [float(v) for v in values if math.isfinite(v)][-window:]
    if len(last) < 2:
        return None
    mean = sum(last) / len(last)
    sigma = math.sqrt(sum((v - mean) ** 2 for v in last) / (len(last) - 1))
    return SpcLimits(len(last), mean, sigma)
