"""What a registration engine is given and what it returns. Engine-independent."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from igrt.core.types import BoolArray, FloatArray
from igrt.core.volume import Volume


@dataclass(frozen=True)
class Level:
    """One level of the multi-resolution pyramid."""

    voxel_mm: float  # working voxel size: images are bin-shrunk toward it (0 = native)
    smoothing_mm: float  # Gaussian sigma applied to both images before sampling
    margin_mm: float  # planning CT kept around the CBCT region as currently mapped
    samples: int  # random metric samples (drawn once per level, fixed seed)
    iterations: int  # iteration cap
    step_mm: float  # initial optimiser step (parameters scaled to mm of voxel motion)
    min_step_mm: float  # convergence: the step has shrunk below this


#: Coarse to fine. The first level's margin covers the capture range (30 mm and 5°, which moves
#: a corner of the default box by another ~10 mm); later levels start close to the answer.
DEFAULT_LEVELS: tuple[Level, ...] = (
    Level(voxel_mm=4.0, smoothing_mm=4.0, margin_mm=45.0, samples=8000, iterations=200,
          step_mm=4.0, min_step_mm=0.1),
    Level(voxel_mm=2.0, smoothing_mm=1.5, margin_mm=15.0, samples=12000, iterations=200,
          step_mm=1.0, min_step_mm=0.02),
    Level(voxel_mm=0.0, smoothing_mm=0.0, margin_mm=10.0, samples=20000, iterations=200,
          step_mm=0.5, min_step_mm=0.005),
)


@dataclass(frozen=True)
class RegistrationProblem:
    """A rigid registration, CBCT fixed and planning CT moving.

    ``initial`` maps CBCT points to planning points (ITK convention) and is the nominal start;
    ``center_mm`` (CBCT coordinates, the machine isocentre) is the centre of rotation of the
    optimised transform. Masks are boolean arrays on the voxel grid of their image; ``None``
    means "use everything".
    """

    fixed: Volume
    moving: Volume
    initial: FloatArray
    center_mm: FloatArray
    fixed_mask: BoolArray | None = None
    moving_mask: BoolArray | None = None
    seed: int = 20261121
    fov_fraction: float = 1.0  # share of the box in the CBCT's field of view


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

    def register(
        self,
        problem: RegistrationProblem,
        *,
        start: FloatArray | None = None,
        levels: tuple[Level, ...] = DEFAULT_LEVELS,
    ) -> RegistrationResult:
        """Register from ``start`` (default ``problem.initial``) through ``levels``."""
        ...
