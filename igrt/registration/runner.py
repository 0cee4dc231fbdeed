"""One registration case, from volumes to a measured couch correction and its review reasons.

This is where the CBCT side of the region is set up (CONTRACT §2 nominal start, the box around
the isocentre, the CBCT field of view: ``igrt.registration.cbct_side``, made here or ahead; the
planning side comes prepared, see ``igrt.registration.reference``), the configured engine
runs, and the quality checks are applied: convergence, bounds, a restart from a perturbed
start, an optional second engine, whether the images correspond and no other level matches as
well (:mod:`igrt.registration.match_checks`), and the configured review limits.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from igrt.config import EngineName, RegistrationConfig, ReviewConfig
from igrt.core import geometry, quality
from igrt.core.case import Case
from igrt.core.geometry import CouchCorrection
from igrt.core.reasons import ReasonCode, reason
from igrt.core.types import FloatArray
from igrt.registration import cbct_levels, cupping, match_checks
from igrt.registration.cbct_side import CbctSide, cbct_side
from igrt.registration.engines import EnginePool
from igrt.registration.problem import (
    DEFAULT_LEVELS,
    Level,
    RegistrationProblem,
    RegistrationResult,
)
from igrt.registration.reference import PlanningReference

log = logging.getLogger(__name__)


#: Start of the robustness restart, relative to the middle level's answer over the whole box
#: (:func:`_restart_start`; CBCT frame, about the isocentre).
PERTURBATION_MM = (2.0, -2.0, 2.0)
PERTURBATION_DEG = (1.0, -1.0, 1.0)
#: The restart runs through the levels from this one on, as the result did, and is compared
#: with the result: the middle level's samples near edges find their way back from 2 mm and 1°,
#: which the native level alone (its step and its samples near edges made for a start within a
#: fraction of a millimetre) does not on a QA phantom; the middle level's optimum alone is too
#: shallow to compare at (a true match on a real head-and-neck CT flagged).
RESTART_FROM_LEVEL = 1
#: How much further than the native level's margin its planning part is smoothed ahead, around
#: the first level's answer (:func:`_smooth_native_ahead`): the middle level's move from there
#: (measured: at most 0.92 mm at a face of the default box on the full-size shift set of
#: ``benchmarks/registration.py``) and more.
NATIVE_AHEAD_MM = 4.0


def _restart_level(level: Level) -> Level:
    """One level of the restart as the result ran it, made for a start 2 mm and 1° away: the
    middle level on its samples near edges only, as the result's second run of that level (the
    whole box's run before them is for the capture range); the native level on one sample grid
    (the result's second grid moves it by the sampling's bias, hundredths of a millimetre,
    against a tolerance of half a millimetre)."""
    if level.near_edges == "refine":
        level = dataclasses.replace(level, near_edges="inset")
    return dataclasses.replace(level, phases=1)


#: The restart's levels (:func:`_restart_level`).
RESTART_LEVELS = tuple(_restart_level(level) for level in DEFAULT_LEVELS[RESTART_FROM_LEVEL:])


@dataclass(frozen=True, eq=False)
class Measurement:
    measured: CouchCorrection
    reasons: tuple[str, ...]
    details: dict[str, Any]
    initial: FloatArray  # the nominal start, CBCT point -> planning point
    transform: FloatArray  # the result, CBCT point -> planning point


def prepare(case: Case, reference: PlanningReference, cfg: RegistrationConfig, *,
            ahead: CbctSide | None = None) -> RegistrationProblem:
    """Crop and mask the CBCT around the isocentre and set the nominal start. ``ahead``: the
    CBCT side made before the planning side was ready (``igrt.registration.cbct_side``), used
    when it was made from this case's CBCT, start and box, else made here."""
    box_size = cfg.roi_size_mm
    simpleitk = cfg.engine == EngineName.SIMPLEITK
    share = reference.uniform_share
    phantom = share >= cupping.UNIFORM_SHARE_MIN  # a QA phantom: never a patient
    side = ahead
    if side is None or not side.serves(case.cbct, case.cbct_padding, case.nominal, box_size):
        # a phantom's region may be flattened first: nothing is made from it before
        side = cbct_side(case.cbct, case.cbct_padding, case.nominal, box_size,
                         native_pixels=simpleitk, masks_beside=not phantom)
    side.check_overlap()
    initial = geometry.registration_for_correction(np.eye(4), case.nominal, case.isocenter_mm)
    if phantom:
        fixed, cupped = cupping.flattened(side.fixed, side.fixed_mask, side.center_mm)
        if cupped is not None:
            log.info("CBCT cupping taken out (a near-uniform planning region, %.0f%% within "
                     "%.0f HU of its mode): %.0f HU peak to peak", 100 * share,
                     cupping.UNIFORM_WINDOW_HU, cupped.amplitude_hu)
        side = side.flattened(fixed, native_pixels=simpleitk)
    return RegistrationProblem(fixed=side.fixed, fixed_mask=side.fixed_mask,
                               reference=reference, initial=initial, center_mm=side.center_mm,
                               seed=cfg.seed, fov_fraction=side.fov_fraction, shared=side.shared,
                               edge_masks=side.edge_masks)


def measure(case: Case, reference: PlanningReference, reg: RegistrationConfig,
            review: ReviewConfig, *, engines: EnginePool | None = None,
            ahead: CbctSide | None = None) -> Measurement:
    """Register, check, and express the result as an IEC couch correction. ``engines``: the
    service's warm engines (default: made for this call); ``ahead``: see :func:`prepare`."""
    t0 = time.perf_counter()
    problem = prepare(case, reference, reg, ahead=ahead)
    prepared_s = time.perf_counter() - t0
    pool = engines or EnginePool(reg)
    engine = pool.primary
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="igrt-registration") as side:
        runs = _register(pool, problem, side, restart=reg.perturbation_check)
        result = runs.result
        # the match checks while the restart and the cross-check finish
        t_checks = time.perf_counter()
        checked = match_checks.Checked()
        match_checks.coverage(problem, reg, problem.fov_fraction, checked)
        match_checks.correspondence(problem, engine, result.transform, reg, checked)
        checks_s = time.perf_counter() - t_checks
        again = runs.restart.result() if runs.restart is not None else None
        other = runs.cross_check.result() if runs.cross_check is not None else None
    measured = to_iec(result.transform, case)
    reasons: list[str] = []
    details: dict[str, Any] = {"primary": result.as_dict()}
    if result.converged is False:
        reasons.append(reason(ReasonCode.NOT_CONVERGED,
                              f"the {result.engine} optimiser stopped without converging "
                              f"({result.stop_condition})"))
    reasons += quality.bound_reasons(measured)
    half = np.asarray(reg.roi_size_mm) / 2.0
    if again is not None:
        diff = quality.difference(again.transform, result.transform,
                                  center_mm=problem.center_mm, half_size_mm=half)
        details["perturbation"] = {**diff.as_dict(), "elapsed_s": round(again.elapsed_s, 3)}
        flagged = quality.agreement_reason(
            ReasonCode.UNSTABLE, "a restart from a start perturbed by 2 mm and 1° per axis", diff,
            tolerance_mm=reg.perturbation_tolerance_mm,
            tolerance_deg=reg.perturbation_tolerance_deg)
        if flagged:
            reasons.append(flagged)
    if other is not None:
        diff = quality.difference(other.transform, result.transform,
                                  center_mm=problem.center_mm, half_size_mm=half)
        details["cross_check"] = {**other.as_dict(), **diff.as_dict(),
                                  "measured": to_iec(other.transform, case).rounded().as_dict()}
        flagged = quality.agreement_reason(
            ReasonCode.ENGINES_DISAGREE, f"the {other.engine} engine", diff,
            tolerance_mm=reg.cross_check_tolerance_mm,
            tolerance_deg=reg.cross_check_tolerance_deg)
        if flagged:
            reasons.append(flagged)
    reasons += checked.reasons
    details["quality"] = _quality_figures(result.metric, details.get("perturbation"), reg,
                                          checked, checks_s)
    reasons += quality.limit_reasons(measured, max_translation_mm=review.max_translation_mm,
                                     max_rotation_deg=review.max_rotation_deg)
    details["prepare_s"] = round(prepared_s, 3)
    details["total_s"] = round(time.perf_counter() - t0, 3)
    log.info("registered with %s in %.2f s: %s", result.engine, details["total_s"],
             measured.rounded())
    return Measurement(measured=measured, reasons=tuple(reasons), details=details,
                       initial=problem.initial, transform=result.transform)


def _quality_figures(metric: float, perturbation: dict[str, Any] | None,
                     reg: RegistrationConfig, checked: match_checks.Checked,
                     elapsed_s: float) -> dict[str, Any]:
    """``registration.quality``: the figures behind every check and their thresholds."""
    figures: dict[str, Any] = {"metric": round(metric, 6) if np.isfinite(metric) else None}
    if perturbation is not None:
        figures["perturbation"] = {
            "translation_mm": perturbation["translation_mm"],
            "rotation_deg": perturbation["rotation_deg"],
            "tolerance_mm": reg.perturbation_tolerance_mm,
            "tolerance_deg": reg.perturbation_tolerance_deg}
    return {**figures, **checked.figures, "elapsed_s": round(elapsed_s, 3)}


@dataclass(frozen=True)
class _Runs:
    result: RegistrationResult
    restart: Future[RegistrationResult] | None  # the robustness restart, when checked
    cross_check: Future[RegistrationResult] | None  # the cross-check engine's, when configured


def _register(pool: EnginePool, problem: RegistrationProblem, side: ThreadPoolExecutor, *,
              restart: bool) -> _Runs:
    """The result, once it is there, and the robustness restart and the cross-check, run side
    by side on ``side`` where they can be (each is its own optimisation on the same images;
    none is given another's answer but the restart, its start): the cross-check from the
    nominal start beside everything else, the restart (:func:`_restart_start`) beside the rest
    of the result once the middle level has run over the whole box (the middle level's run on
    the samples near edges is split off for it, :data:`_NEAR`: the same run; the first level
    runs alone before, so that the native level's planning part is smoothed beside the middle
    level from its answer, :func:`_smooth_native_ahead`). Two runs of an
    engine that does not allow it (``Engine.concurrent_runs``) run one after the other,
    through the levels unsplit: the restart starts at the middle level's answer and runs after
    the result, so that its answers do not depend on threads."""
    engine = pool.primary
    other = pool.cross_check
    crossed: Future[RegistrationResult] | None = None
    if other is not None and (other.name != engine.name or engine.concurrent_runs):
        crossed = side.submit(other.register, _own_memo(problem))
    if not engine.concurrent_runs:
        head = engine.register(problem, levels=DEFAULT_LEVELS[:_NATIVE])
        tail = engine.register(problem, start=head.transform, levels=DEFAULT_LEVELS[_NATIVE:])
        restarted = (_done(engine.register(problem, start=_restart_start(problem, head),
                                           levels=RESTART_LEVELS)) if restart else None)
        if other is not None and crossed is None:
            crossed = _done(other.register(problem))
        return _Runs(_joined(head, tail), restarted, crossed)
    first = engine.register(problem, levels=_WHOLE[:1])
    _smooth_native_ahead(problem, first.transform)
    head = _joined(first, engine.register(problem, start=first.transform, levels=_WHOLE[1:]))
    restarted = (side.submit(engine.register, _own_memo(problem),
                             start=_restart_start(problem, head), levels=RESTART_LEVELS)
                 if restart else None)
    near = None
    if problem.refine_mask is not None:  # else the middle level runs over the whole box only
        near = engine.register(problem, start=head.transform, levels=(_NEAR,))
    tail = engine.register(problem, start=(head if near is None else near).transform,
                           levels=DEFAULT_LEVELS[_NATIVE:])
    return _Runs(_joined(head, tail, near), restarted, crossed)


def _smooth_native_ahead(problem: RegistrationProblem, matrix: FloatArray) -> None:
    """The planning side of the native level smoothed, on a thread of its own, where the runs
    of that level will ask for it after the middle level (the result's and the restart's), as
    guessed from the first level's answer ``matrix``: the middle level moves the CBCT region by
    a millimetre or two (its corners by the rotation too), :data:`NATIVE_AHEAD_MM`. The core
    that made the masks near edges is idle while the middle level runs. A run that asks for a
    part it does not hold smooths its own (``PlanningReference.smooth_ahead``)."""
    native = DEFAULT_LEVELS[_NATIVE]
    around = cbct_levels.mapped_box(problem, matrix, native.margin_mm + NATIVE_AHEAD_MM)
    fixed = problem.fixed

    def smooth() -> None:
        try:
            problem.reference.smooth_ahead(native, fixed.spacing_mm, fixed.direction, around)
        except Exception as exc:  # noqa: BLE001 - a guess: the run that needs the part makes it
            log.debug("native level not smoothed ahead: %s: %s", type(exc).__name__, exc)

    threading.Thread(target=smooth, name="igrt-native-ahead", daemon=True).start()


def _own_memo(problem: RegistrationProblem) -> RegistrationProblem:
    """The problem with a memo of its own, for a run on another thread: it makes its own
    SimpleITK images of the CBCT levels (from the pixels the problem's ``shared`` makes once)
    rather than read the images another run is using. SimpleITK gives an image whose buffer is
    shared (with a filter running on it) a buffer of its own when NumPy reads it, which could
    leave a third reader's view on freed memory."""
    return dataclasses.replace(problem, memo={})


def _done(result: RegistrationResult) -> Future[RegistrationResult]:
    made: Future[RegistrationResult] = Future()
    made.set_result(result)
    return made


#: The native level's index: the levels before it are the result's first part.
_NATIVE = len(DEFAULT_LEVELS) - 1
#: The levels before the native one with the middle level over the whole box only, and the
#: middle level's run on its samples near edges from there (:attr:`Level.near_edges`
#: ``"refine"``: the run the engine makes after the whole box's), as two registrations.
_WHOLE = (*DEFAULT_LEVELS[:_NATIVE - 1], dataclasses.replace(DEFAULT_LEVELS[_NATIVE - 1],
                                                              near_edges=""))
_NEAR = dataclasses.replace(DEFAULT_LEVELS[_NATIVE - 1], near_edges="inset")


def _restart_start(problem: RegistrationProblem, head: RegistrationResult) -> FloatArray:
    """The robustness restart's start: the middle level's answer over the whole box (where the
    result's run on the samples near edges starts; for an engine run unsplit, its middle
    level's answer) moved by 2 mm and 1° per axis. From there it runs through
    :data:`RESTART_LEVELS` (the middle level on its samples near edges, then the native level
    on one sample grid), as the result does from the unmoved start, and is compared with the
    result: the same images and optimiser from another start must land where the result
    did."""
    return head.transform @ _perturbation(problem.center_mm)


def _joined(head: RegistrationResult, tail: RegistrationResult,
            near: RegistrationResult | None = None) -> RegistrationResult:
    """One run through all the levels, from its parts (each started where the one before
    ended; ``near``, between them: the middle level's run near edges, whose answer is that
    level's): the answer, metric and stop of the last level, the iterations and time of all."""
    parts = (head, tail) if near is None else (head, near, tail)
    before = head.level_transforms if near is None else \
        head.level_transforms[:-1] + near.level_transforms
    return dataclasses.replace(
        tail, iterations=sum(p.iterations for p in parts),
        elapsed_s=sum(p.elapsed_s for p in parts),
        level_transforms=before + tail.level_transforms)


def to_iec(transform: FloatArray, case: Case) -> CouchCorrection:
    c = geometry.correction_transform(transform, case.nominal, case.isocenter_mm)
    return geometry.to_iec(c, case.position)


def _perturbation(center_mm: FloatArray) -> FloatArray:
    rotation = geometry.iec_rotation(*PERTURBATION_DEG)
    about = (geometry.translation(center_mm) @ geometry.rigid(rotation, (0, 0, 0))
             @ geometry.translation(-np.asarray(center_mm)))
    return geometry.translation(PERTURBATION_MM) @ about
