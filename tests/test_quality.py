"""igrt.core.quality: review reasons from numbers."""

from __future__ import annotations

import numpy as np
import pytest

from igrt.core import geometry as g
from igrt.core import quality
from igrt.core.geometry import CouchCorrection
from igrt.core.reasons import ReasonCode


def test_difference_of_a_pure_translation() -> None:
    d = quality.difference(g.translation((0.3, 0.4, 0.0)), np.eye(4), center_mm=np.zeros(3),
                           half_size_mm=np.array([80.0, 80.0, 60.0]))
    assert d.translation_mm == pytest.approx(0.5)
    assert d.rotation_deg == pytest.approx(0.0)


def test_difference_of_a_rotation_about_the_centre_counts_at_the_box_corners() -> None:
    center = np.array([10.0, 20.0, 30.0])
    rot = g.translation(center) @ g.rigid(g.rot_z(1.0), (0, 0, 0)) @ g.translation(-center)
    d = quality.difference(rot, np.eye(4), center_mm=center,
                           half_size_mm=np.array([80.0, 80.0, 60.0]))
    # a corner at (80, 80) from the axis moves by 2·r·sin(θ/2) with r = 80·√2
    assert d.translation_mm == pytest.approx(2 * 80 * np.sqrt(2) * np.sin(np.radians(0.5)))
    assert d.rotation_deg == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("measured", "codes"),
    [
        pytest.param(CouchCorrection(3, 4, 0, 0, 0, 0), [], id="5mm-ok"),
        pytest.param(CouchCorrection(6, 8, 0.1, 0, 0, 0), ["translation_limit"], id="10.0mm"),
        pytest.param(CouchCorrection(0, 0, 0, 0, -3.5, 0), ["rotation_limit"], id="roll"),
        pytest.param(CouchCorrection(0, 0, 0, 3.1, 0, 3.2), ["rotation_limit"] * 2, id="two"),
    ],
)
def test_limit_reasons(measured: CouchCorrection, codes: list[str]) -> None:
    reasons = quality.limit_reasons(measured, max_translation_mm=10.0, max_rotation_deg=3.0)
    assert [r.split(":")[0] for r in reasons] == codes


def test_bound_reasons() -> None:
    assert quality.bound_reasons(CouchCorrection(30, 0, 0, 0, 0, 5)) == []
    assert quality.bound_reasons(CouchCorrection(30, 30, 0, 0, 0, 0))[0].startswith("at_bound")
    assert quality.bound_reasons(CouchCorrection(0, 0, 0, 9, 0, 0))[0].startswith("at_bound")


def test_agreement_reason() -> None:
    close = quality.Difference(0.2, 0.1)
    far = quality.Difference(0.8, 0.1)
    assert quality.agreement_reason(ReasonCode.UNSTABLE, "x", close, tolerance_mm=0.5,
                                    tolerance_deg=0.3) is None
    reason = quality.agreement_reason(ReasonCode.UNSTABLE, "x", far, tolerance_mm=0.5,
                                      tolerance_deg=0.3)
    assert reason is not None and reason.startswith("unstable: x differs by 0.80 mm")
