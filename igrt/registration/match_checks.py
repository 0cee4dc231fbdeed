"""The checks that ask whether a converged registration is the *right* answer (issue 9): the
images must agree (``poor_match``), no other vertebral level may agree nearly as well
(``ambiguous_match``), and the CBCT must cover the box (``partial_fov``, ``short_cbct``).

Each check reports its figures and its threshold under ``registration.quality``, flagged or not,
so a physicist can see why a case was flagged and commission the thresholds per site.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from igrt.config import RegistrationConfig
from igrt.core import geometry
from igrt.core.reasons import ReasonCode, reason
from igrt.core.types import FloatArray
from igrt.registration import match_quality
from igrt.registration.problem import DEFAULT_LEVELS, Engine, RegistrationProblem

#: An alternative that lands closer than this to the result (mm, along the long axis) after its
#: own registration is the result's own optimum, not a rival.
SAME_OPTIMUM_MM = 6.0


@dataclass
class Checked:
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def coverage(problem: RegistrationProblem, cfg: RegistrationConfig, fov_fraction: float,
             checked: Checked) -> None:
    """``partial_fov`` and ``short_cbct``: how much of the box the CBCT holds."""
    box_z = float(cfg.roi_size_mm[2])
    fixed = problem.fixed
    k_axis = np.asarray(fixed.direction)[:, 2] * fixed.spacing_mm[2]
    covered = min(box_z, fixed.voxels.shape[0] * abs(float(k_axis[2])))
    longitudinal = covered / box_z
    checked.figures["fov_fraction"] = round(fov_fraction, 3)
    checked.figures["fov_fraction_min"] = cfg.fov_fraction_min
    checked.figures["longitudinal_coverage"] = round(longitudinal, 3)
    checked.figures["longitudinal_coverage_min"] = cfg.longitudinal_coverage_min
    if fov_fraction < cfg.fov_fraction_min:
        checked.reasons.append(reason(
            ReasonCode.PARTIAL_FOV,
            f"only {100 * fov_fraction:.0f}% of the registration box lies in the CBCT's field of "
            f"view (below {100 * cfg.fov_fraction_min:.0f}%): the match rests on part of the "
            "region"))
    if longitudinal < cfg.longitudinal_coverage_min:
        checked.reasons.append(reason(
            ReasonCode.SHORT_CBCT,
            f"the CBCT's slices cover {covered:.0f} mm of the box's {box_z:.0f} mm along the "
            f"patient's long axis (below {100 * cfg.longitudinal_coverage_min:.0f}%): too short "
            "to tell one vertebral level from the next with confidence"))


def correspondence(problem: RegistrationProblem, engine: Engine, transform: FloatArray,
                   cfg: RegistrationConfig, checked: Checked) -> None:
    """``poor_match`` and ``ambiguous_match`` at the result ``transform``."""
    box = np.asarray(cfg.roi_size_mm, dtype=np.float64)
    comparer = match_quality.comparer(problem.fixed, problem.fixed_mask, problem.moving,
                                      problem.center_mm, transform, box)
    profile = comparer.profile(transform)
    score = profile.at_result
    figures = checked.figures
    figures["match_score"] = _rounded(score)
    figures["match_score_min"] = cfg.match_score_min
    checking = cfg.match_score_min > 0  # 0: the check is off, the figure still reported
    if not np.isfinite(score):
        if checking:
            checked.reasons.append(reason(
                ReasonCode.POOR_MATCH, "the images share too little of the box to measure how "
                "well they agree"))
        return
    poor = checking and score < cfg.match_score_min
    if poor:
        checked.reasons.append(reason(
            ReasonCode.POOR_MATCH,
            f"the edges of the two images agree with a score of {score:.2f} (at least "
            f"{cfg.match_score_min:.2f} at a true match): the CBCT may show another body, another "
            "region, or a registration that went astray"))
    rival = profile.rival()
    figures["ambiguity_margin"] = cfg.ambiguity_margin
    figures["alternative"] = None
    # a poor match is no level at all: which other level agrees as poorly says nothing more
    if poor or rival is None or rival[1] < score - 2 * cfg.ambiguity_margin:
        if rival is not None:
            figures["alternative"] = {"offset_mm": rival[0], "score": _rounded(rival[1]),
                                      "registered": False}
        return
    # A peak one level away comes close on the raw profile: register from there and compare.
    start = match_quality.shifted(transform, rival[0])
    again = engine.register(problem, start=start, levels=DEFAULT_LEVELS[1:])
    moved = float(geometry.apply(again.transform, problem.center_mm)[2]
                  - geometry.apply(transform, problem.center_mm)[2])
    other = comparer.score(again.transform)
    figures["alternative"] = {"offset_mm": round(moved, 2), "score": _rounded(other),
                              "registered": True, "elapsed_s": round(again.elapsed_s, 3)}
    if abs(moved) < SAME_OPTIMUM_MM or other is None:
        return
    if other >= score - cfg.ambiguity_margin:
        checked.reasons.append(reason(
            ReasonCode.AMBIGUOUS_MATCH,
            f"a match {moved:+.0f} mm along the patient's long axis agrees nearly as well "
            f"(score {other:.2f} against {score:.2f}, margin {cfg.ambiguity_margin:.2f}): "
            "check the vertebral level"))


def _rounded(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 3)
