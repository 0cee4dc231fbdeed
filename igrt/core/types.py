"""Array and point types shared by the library (numpy only)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
Point = tuple[float, float, float]
#: A CBCT voxel grid: spacing (i, j, k) in mm and direction cosines (columns).
Grid = tuple[tuple[float, float, float], FloatArray]
