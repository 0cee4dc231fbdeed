"""igrt.registration.match_quality: the edge-agreement score and its longitudinal profile, on
synthetic volumes whose answer is known (same anatomy, mirrored anatomy, anatomy repeating along
the long axis)."""

from __future__ import annotations

import numpy as np
import pytest

from igrt.core.volume import Volume
from igrt.registration import match_quality

SPACING = (2.0, 2.0, 2.0)
BOX = np.array([100.0, 100.0, 80.0])


def blobs(seed: int, *, period_mm: float | None = None) -> Volume:
    """A 'patient' of random dense ellipsoids in soft tissue (60 x 60 x 70 voxels of 2 mm),
    optionally repeating every ``period_mm`` along z."""
    rng = np.random.default_rng(seed)
    shape = (70, 60, 60)
    z, y, x = np.meshgrid(*(np.arange(n) * 2.0 for n in shape), indexing="ij")
    voxels = np.zeros(shape, dtype=np.float32)
    zz = np.mod(z, period_mm) if period_mm else z
    z_extent = period_mm if period_mm else shape[0] * 2.0
    for _ in range(40):
        c = rng.uniform((0, 10, 10), (z_extent, 110, 110))
        r = rng.uniform(4.0, 12.0, size=3)
        inside = ((zz - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2
        voxels[inside <= 1.0] = rng.uniform(300.0, 1200.0)
    origin = (-59.0, -59.0, -69.0)  # the volume's centre at the LPS origin
    return Volume(voxels=voxels, origin_mm=origin, spacing_mm=SPACING)


def comparer(fixed: Volume, moving: Volume) -> match_quality.Comparer:
    return match_quality.comparer(fixed, None, moving, np.zeros(3), np.eye(4), BOX)


def test_the_same_anatomy_scores_high_and_another_scores_low() -> None:
    patient = blobs(1)
    same = comparer(patient, patient)
    assert same.score(np.eye(4)) == pytest.approx(1.0, abs=1e-3)
    other = blobs(2)
    another = comparer(other, patient)
    score = another.score(np.eye(4))
    assert score is not None and score < 0.5


def test_mirrored_anatomy_scores_low() -> None:
    patient = blobs(3)
    mirrored = Volume(voxels=np.ascontiguousarray(patient.voxels[:, :, ::-1]),
                      origin_mm=patient.origin_mm, spacing_mm=patient.spacing_mm)
    c = comparer(mirrored, patient)
    score = c.score(np.eye(4))
    assert score is not None and score < 0.5


def test_the_score_is_blind_to_cbct_gain_and_offset() -> None:
    patient = blobs(4)
    cbct = Volume(voxels=(patient.voxels * 0.7 - 150.0).astype(np.float32),
                  origin_mm=patient.origin_mm, spacing_mm=patient.spacing_mm)
    c = comparer(cbct, patient)
    assert c.score(np.eye(4)) == pytest.approx(1.0, abs=1e-3)


def test_a_repeating_anatomy_has_a_rival_one_period_away() -> None:
    period = 30.0
    patient = blobs(5, period_mm=period)
    c = comparer(patient, patient)
    profile = c.profile(np.eye(4))
    rival = profile.rival()
    assert rival is not None
    assert abs(abs(rival[0]) - period) <= match_quality.GRID_MM
    assert rival[1] >= profile.at_result - 0.05


def test_a_unique_anatomy_has_no_close_rival() -> None:
    patient = blobs(6)
    c = comparer(patient, patient)
    profile = c.profile(np.eye(4))
    assert profile.at_result == pytest.approx(1.0, abs=1e-3)
    rival = profile.rival()
    assert rival is None or rival[1] < profile.at_result - 0.3


def test_no_shared_voxels_is_no_score() -> None:
    patient = blobs(7)
    c = comparer(patient, patient)
    far = match_quality.shifted(np.eye(4), 500.0)
    assert c.score(far) is None


def test_the_profile_offset_is_the_move_that_shifted_applies() -> None:
    """Sign pinned by hand: the planning CT's anatomy lies 30 mm further along +z (LPS, toward
    the head) than the identity says, so the profile peaks at +30 mm and ``shifted(+30)`` is the
    transform that finds it (the alternative the runner registers from)."""
    patient = blobs(8)
    moved = Volume(voxels=patient.voxels, spacing_mm=patient.spacing_mm,
                   origin_mm=(patient.origin_mm[0], patient.origin_mm[1],
                              patient.origin_mm[2] + 30.0))
    c = comparer(patient, moved)
    profile = c.profile(np.eye(4))
    peak = float(profile.offsets_mm[int(np.nanargmax(profile.scores))])
    assert peak == pytest.approx(30.0, abs=match_quality.GRID_MM)
    assert c.score(match_quality.shifted(np.eye(4), 30.0)) == pytest.approx(1.0, abs=1e-3)
    low = c.score(match_quality.shifted(np.eye(4), -30.0))
    assert low is None or low < 0.5
