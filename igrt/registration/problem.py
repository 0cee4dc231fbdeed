"""What a registration engine is given and what it returns. Engine-independent."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from igrt.core.types import BoolArray, FloatArray
from igrt.core.volume import Volume
from igrt.registration.once import Once

if TYPE_CHECKING:
    from igrt.registration.reference import PlanningReference


@dataclass(frozen=True)
class Level:
    """One level of the multi-resolution pyramid."""

    voxel_mm: float  # working voxel size: images are bin-shrunk toward it (0 = native)
    smoothing_mm: float  # Gaussian sigma of the CBCT level (the planning one: below)
    margin_mm: float  # planning image kept around where the CBCT region currently maps
    samples: int  # metric samples: the CBCT level is decimated in-plane to about this many
    iterations: int  # iteration cap
    step_mm: float  # initial optimiser step (parameters scaled to mm of voxel motion)
    min_step_mm: float  # convergence: the step has shrunk below this
    #: the planning region is mapped onto the CBCT samples once, at the level's start, instead
    #: of being looked up at every iteration (for a level that starts within a fraction of a
    #: millimetre of its answer: the same samples, without the per-sample test and ITK's scan
    #: of the masked planning image at every start)
    region_at_start: bool = False
    #: optimisations on interleaved sample grids (each from where the previous ended), whose
    #: results are averaged: the sampling's own bias averages out
    phases: int = 1
    #: the planning side of the level is smoothed this much more (a Gaussian sigma, combined
    #: with ``smoothing_mm`` in quadrature: :attr:`planning_smoothing_mm`), so the metric's
    #: gradient (central differences of the interpolated planning image at every sample) is a
    #: Gaussian derivative at the level's scale. Made into the planning level it is made once
    #: per planning CT (at intake in the service) and costs nothing per run; unlike ITK's
    #: gradient image (``moving_gradient_filter``, 0.1-0.15 s at every start at these sizes) it
    #: smooths the values the metric's histogram sees too (the level's answer is refined by the
    #: next one). Both engines read these planning levels. The first level, which takes ITK's
    #: gradient image, is smoothed more too: on the 16 offsets of ``benchmarks/capture.py``
    #: that found one more beyond 30 mm at full size (14 of 16 against 13).
    gradient_smoothing_mm: float = 0.0
    #: the metric takes the planning image's gradient from a gradient image ITK filters at each
    #: start (a Gaussian derivative at the image's largest voxel spacing) instead of central
    #: differences. The first level keeps it: without it (central differences of its planning
    #: image as the CBCT is smoothed) the first level lost the capture range (a 28 mm offset
    #: stopped after 8 iterations at 2 mm; 60 mm and a 3° case ended tens of mm wrong), and with
    #: ``gradient_smoothing_mm`` alone its capture at 40-60 mm changed with the phantom's size
    #: (the adversarial 60 mm case found at full size, lost at small). The middle level takes
    #: central differences of its planning image smoothed for them instead (its three runs per
    #: registration: the whole box, near edges, the restart's).
    moving_gradient_filter: bool = False
    #: the CBCT samples are taken near its edges (:mod:`igrt.registration.structure`): after the
    #: level's run over the whole box (its capture range), one more from there on the samples
    #: near edges kept away from the box's faces (``"refine"``: ``problem.refine_mask``), or
    #: only on the edges wholly inside, both sides (``"only"``: ``problem.sample_mask``), or only
    #: on the ``"refine"`` samples (``"inset"``: the robustness restart's middle level, and the
    #: result's run near edges split off from its middle level, ``runner._NEAR``). Where
    #: a CBCT is mostly uniform (a QA phantom) the box's samples barely weigh the few inserts
    #: and edges that hold the information.
    near_edges: str = ""

    @property
    def planning_smoothing_mm(self) -> float:
        """The Gaussian sigma of the level's planning image (``smoothing_mm`` and
        ``gradient_smoothing_mm`` in quadrature)."""
        return math.hypot(self.smoothing_mm, self.gradient_smoothing_mm)


#: Coarse to fine. The planning side of each level is prepared once per planning CT
#: (``igrt.registration.reference``) and cut, per run, to where the CBCT region maps plus the
#: level's margin (ITK's Mattes metric scans its whole moving image at every start). The first
#: level's margin covers the capture range (30 mm and 5°, which moves a corner of the default
#: box by another ~10 mm); later levels start close to the answer, and their margin covers the
#: robustness restart's 2 mm and 1°.
DEFAULT_LEVELS: tuple[Level, ...] = (
    Level(voxel_mm=4.0, smoothing_mm=4.0, margin_mm=45.0, samples=8000, iterations=200,
          step_mm=4.0, min_step_mm=0.1, gradient_smoothing_mm=4.0,
          moving_gradient_filter=True),
    Level(voxel_mm=2.0, smoothing_mm=1.5, margin_mm=12.0, samples=12000, iterations=200,
          step_mm=1.0, min_step_mm=0.01, gradient_smoothing_mm=2.5,
          near_edges="refine"),
    Level(voxel_mm=0.0, smoothing_mm=0.6, margin_mm=6.0, samples=20000, iterations=200,
          step_mm=0.5, min_step_mm=0.005, region_at_start=True, phases=2, near_edges="only"),
)


@dataclass(frozen=True)
class RegistrationProblem:
    """A rigid registration, CBCT fixed and planning CT moving.

    ``fixed`` is the CBCT around the isocentre and ``fixed_mask`` the part of it the metric may
    use (the box, within the reconstructed field of view); ``reference`` is the prepared
    planning side (crop, region mask, pyramid). ``initial`` maps CBCT points to planning points
    (ITK convention) and is the nominal start; ``center_mm`` (CBCT coordinates, the machine
    isocentre) is the centre of rotation of the optimised transform. ``memo`` is scratch space
    where what is derived from the fixed side is kept once per problem (the CBCT's pyramid,
    :mod:`igrt.registration.cbct_levels`; an engine's sample grids), shared by the runs made
    one after the other on the problem (a run on another thread has a copy of the problem with
    a memo of its own).
    """

    fixed: Volume
    fixed_mask: BoolArray
    reference: PlanningReference
    initial: FloatArray
    center_mm: FloatArray
    seed: int = 20261121
    fov_fraction: float = 1.0  # share of the box in the CBCT's field of view
    memo: dict[object, object] = field(default_factory=dict, compare=False, repr=False)
    #: what is derived from the fixed side once for the problem and every copy of it (the
    #: CBCT's level pixels, :func:`igrt.registration.cbct_levels.level_pixels`): arrays no one
    #: writes, from which each memo makes SimpleITK images of its own
    shared: Once = field(default_factory=Once, compare=False, repr=False)
    #: the parts of ``fixed_mask`` near the CBCT's edges where the levels that ask for them
    #: (``Level.near_edges``) sample, ``"only"`` and ``"refine"`` (``sample_mask``,
    #: ``refine_mask``; None: all of ``fixed_mask``), as a call that returns them once made:
    #: they are made beside the first levels, which do not use them
    #: (:mod:`igrt.registration.cbct_side`)
    edge_masks: Callable[[], tuple[BoolArray | None, BoolArray | None]] | None = field(
        default=None, compare=False, repr=False)

    @property
    def sample_mask(self) -> BoolArray | None:
        return self.edge_masks()[0] if self.edge_masks is not None else None

    @property
    def refine_mask(self) -> BoolArray | None:
        return self.edge_masks()[1] if self.edge_masks is not None else None

    @property
    def moving(self) -> Volume:
        return self.reference.volume

    @property
    def moving_mask(self) -> BoolArray:
        return self.reference.mask


@dataclass(frozen=True)
class RegistrationResult:
    """The outcome of one engine run."""

    engine: str
    transform: FloatArray  # 4x4, CBCT point -> planning point
    metric: float  # final metric value (Mattes mutual information, lower is better); nan: unknown
    iterations: int  # total iterations executed over all levels
    stop_condition: str  # the optimiser's own words for the last level
    #: the last level stopped on a convergence criterion (True) or at the iteration cap
    #: (False); None for an optimiser that has no convergence criterion (elastix's ASGD runs a
    #: fixed budget by design), so "not converged" is never claimed or denied for it
    converged: bool | None
    elapsed_s: float
    #: the transform after each level, coarse to fine (both engines run a level per call;
    #: empty from an engine that could not tell)
    level_transforms: tuple[FloatArray, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "engine": self.engine,
            "metric": round(self.metric, 6) if math.isfinite(self.metric) else None,
            "iterations": self.iterations,
            "stop_condition": self.stop_condition,
            "converged": self.converged,
            "elapsed_s": round(self.elapsed_s, 3),
        }


class Engine(Protocol):
    name: str
    #: two registrations of this engine may run at once, on two threads (the robustness restart
    #: beside the rest of the result); False where the engine has process-wide state, as
    #: elastix's random sampler
    concurrent_runs: bool

    def register(
        self,
        problem: RegistrationProblem,
        *,
        start: FloatArray | None = None,
        levels: tuple[Level, ...] = DEFAULT_LEVELS,
    ) -> RegistrationResult:
        """Register from ``start`` (default ``problem.initial``) through ``levels``."""
        ...
