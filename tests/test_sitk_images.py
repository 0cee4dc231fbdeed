"""igrt.registration.sitk_images: NumPy views of SimpleITK images that keep their image alive.

``sitk.GetArrayViewFromImage`` alone does not: once its image is collected the view reads freed
memory. ``igrt qa run`` at full size died with a segmentation fault rendering the review images
from the planning volume of a reference the pipeline had let go of. Each case runs in its own
interpreter, so that a use-after-free fails the test instead of killing the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

#: Allocations this large are mapped and unmapped whole by the allocator: a read after the free
#: faults at once instead of finding stale values by chance.
_SETUP = """
import gc
import numpy as np
import SimpleITK as sitk
values = np.arange(64 * 256 * 256, dtype=np.float32).reshape(64, 256, 256)
def churn():
    gc.collect()
    junk = [np.full(values.size, 7.0, np.float32) for _ in range(4)]
    del junk
    gc.collect()
"""

CASES = {
    "a filter's temporary output": """
from igrt.registration.sitk_images import array_view
view = array_view(sitk.Abs(sitk.GetImageFromArray(values)))
churn()
print(bool(np.array_equal(view, values)), view.flags.writeable)
""",
    "the planning volume of a reference let go of": """
from igrt.core.geometry import PatientPosition
from igrt.core.image_series import SeriesInfo
from igrt.core.volume import Volume
from igrt.registration.reference import PlanningReference
info = SeriesInfo("PAT", "1.2.3", "1.2.5", "1.2.4", "CT", "1.2.840.10008.5.1.4.1.1.2", "HFS",
                  "", 1, ())
ct = Volume(voxels=values, origin_mm=np.zeros(3), spacing_mm=(1.0, 1.0, 1.0),
            direction=np.eye(3))
reference = PlanningReference(ct=info, volume=ct, mask=values > 1000.0,
                              isocenter_mm=np.zeros(3), position=PatientPosition.HFS)
volume, mask = reference.volume, reference.mask
del reference
churn()
print(bool(np.array_equal(volume.voxels, values) and np.array_equal(mask, values > 1000.0)),
      volume.voxels.flags.writeable)
""",
}


@pytest.mark.parametrize("code", list(CASES.values()), ids=list(CASES))
def test_a_view_outlives_the_image_it_was_made_from(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_SETUP + code)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "False"]  # the values, and read-only as before
