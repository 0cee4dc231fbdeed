"""Hand-computed sign tables for igrt.core.geometry (CONTRACT §1–2)."""

from __future__ import annotations

import numpy as np
import pytest

from igrt.core import geometry as g
from igrt.core.geometry import CouchCorrection, PatientPosition

HFS, FFS, HFP, FFP = (PatientPosition.HFS, PatientPosition.FFS, PatientPosition.HFP,
                      PatientPosition.FFP)
ISO = np.array([12.5, -110.0, -785.5])


def corr(lat: float = 0, lon: float = 0, vert: float = 0, pitch: float = 0, roll: float = 0,
         rot: float = 0) -> CouchCorrection:
    return CouchCorrection(lat, lon, vert, pitch, roll, rot)


def assert_correction(actual: CouchCorrection, expected: CouchCorrection) -> None:
    np.testing.assert_allclose(actual.translation_mm, expected.translation_mm, atol=1e-9)
    np.testing.assert_allclose(actual.angles_deg, expected.angles_deg, atol=1e-9)


@pytest.mark.parametrize(
    ("position", "lps", "iec"),
    [
        pytest.param(HFS, (1, 2, 3), (1, 3, -2), id="HFS"),
        pytest.param(FFS, (1, 2, 3), (-1, -3, -2), id="FFS"),
        pytest.param(HFP, (1, 2, 3), (-1, 3, 2), id="HFP"),
        pytest.param(FFP, (1, 2, 3), (1, -3, 2), id="FFP"),
    ],
)
def test_translation_lps_to_iec(position: PatientPosition, lps: tuple, iec: tuple) -> None:
    c = g.to_iec(g.translation(lps), position)
    assert_correction(c, corr(*iec))


# Rotation by +4° about an LPS axis -> which IEC angle, with which sign (hand-derived from the
# contract's table: a rotation about axis a becomes a rotation about M a).
@pytest.mark.parametrize(
    ("position", "lps_axis", "iec"),
    [
        pytest.param(HFS, "x", corr(pitch=4), id="HFS-x"),
        pytest.param(HFS, "y", corr(rot=-4), id="HFS-y"),
        pytest.param(HFS, "z", corr(roll=4), id="HFS-z"),
        pytest.param(FFS, "x", corr(pitch=-4), id="FFS-x"),
        pytest.param(FFS, "y", corr(rot=-4), id="FFS-y"),
        pytest.param(FFS, "z", corr(roll=-4), id="FFS-z"),
        pytest.param(HFP, "x", corr(pitch=-4), id="HFP-x"),
        pytest.param(HFP, "y", corr(rot=4), id="HFP-y"),
        pytest.param(HFP, "z", corr(roll=4), id="HFP-z"),
        pytest.param(FFP, "x", corr(pitch=4), id="FFP-x"),
        pytest.param(FFP, "y", corr(rot=4), id="FFP-y"),
        pytest.param(FFP, "z", corr(roll=-4), id="FFP-z"),
    ],
)
def test_rotation_lps_to_iec(position: PatientPosition, lps_axis: str,
                             iec: CouchCorrection) -> None:
    r = {"x": g.rot_x, "y": g.rot_y, "z": g.rot_z}[lps_axis](4.0)
    assert_correction(g.to_iec(g.rigid(r, (0, 0, 0)), position), iec)


def test_iec_rotation_composition_order() -> None:
    # Rx(90) by hand: y -> z, z -> -y.
    np.testing.assert_allclose(g.rot_x(90), [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(g.rot_y(90), [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(g.rot_z(90), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    # pitch 90 then rotation 90: x -> x -> y ; y -> z -> z ; z -> -y -> x
    r = g.iec_rotation(90, 0, 90)
    np.testing.assert_allclose(r @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(r @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(r @ [0, 0, 1], [1, 0, 0], atol=1e-12)


@pytest.mark.parametrize("angles", [(0.6, -0.49, 1.18), (-5, 5, -5), (3, 0, 0), (0, -2.5, 4)])
def test_iec_angles_round_trip(angles: tuple[float, float, float]) -> None:
    np.testing.assert_allclose(g.iec_angles(g.iec_rotation(*angles)), angles, atol=1e-9)


def test_iec_angles_not_symmetric_in_order() -> None:
    wrong_order = g.rot_x(3) @ g.rot_y(2) @ g.rot_z(1)
    assert not np.allclose(g.iec_angles(wrong_order), (3, 2, 1), atol=1e-3)


@pytest.mark.parametrize("position", [HFS, FFS, HFP, FFP])
def test_from_iec_inverts_to_iec(position: PatientPosition) -> None:
    c = corr(2.31, -1.72, 3.08, 0.6, -0.49, 1.18)
    assert_correction(g.to_iec(g.from_iec(c, position), position), c)


# --- the contract's worked examples, through the whole chain registration -> correction ---------
def registration_for_displacement(displacement: np.ndarray) -> np.ndarray:
    """CBCT (same frame as planning) -> planning transform when the anatomy sits displaced
    by ``displacement`` (a rigid map of planning points, about the isocentre)."""
    return g.invert_rigid(displacement)


@pytest.mark.parametrize(
    ("position", "anatomy_shift_lps", "expected"),
    [
        # HFS, couch 5 mm toward the gantry: anatomy 5 mm superior (+z) -> longitudinal -5.
        pytest.param(HFS, (0, 0, 5), corr(lon=-5), id="HFS-toward-gantry"),
        # FFS, same couch motion: anatomy 5 mm inferior (-z) -> longitudinal -5.
        pytest.param(FFS, (0, 0, -5), corr(lon=-5), id="FFS-toward-gantry"),
        # HFS, couch lowered 3 mm: anatomy 3 mm posterior (+y) -> vertical +3.
        pytest.param(HFS, (0, 3, 0), corr(vert=3), id="HFS-lowered"),
        # Prone: couch lowered 3 mm moves anatomy toward its anterior (-y) -> vertical +3.
        pytest.param(HFP, (0, -3, 0), corr(vert=3), id="HFP-lowered"),
        # Lateral: HFS anatomy 2 mm toward patient left (+x) -> lateral -2.
        pytest.param(HFS, (2, 0, 0), corr(lat=-2), id="HFS-left"),
        pytest.param(FFP, (2, 0, 0), corr(lat=-2), id="FFP-left"),
    ],
)
def test_worked_examples_translation(position: PatientPosition, anatomy_shift_lps: tuple,
                                     expected: CouchCorrection) -> None:
    nominal = g.planned_placement(ISO)  # CBCT shares the planning frame (CONTRACT §2 case 1)
    t = registration_for_displacement(g.translation(anatomy_shift_lps))
    c = g.to_iec(g.correction_transform(t, nominal, ISO), position)
    assert_correction(c, expected)


def test_worked_example_yaw_about_isocentre() -> None:
    # HFS, couch yawed +1.5° about IEC Z through the isocentre -> rotation -1.5, no translation.
    m = g.LPS_TO_IEC[HFS]
    yaw_lps = m.T @ g.rot_z(1.5) @ m
    displacement = g.translation(ISO) @ g.rigid(yaw_lps, (0, 0, 0)) @ g.translation(-ISO)
    nominal = g.planned_placement(ISO)
    c = g.to_iec(g.correction_transform(g.invert_rigid(displacement), nominal, ISO), HFS)
    assert_correction(c, corr(rot=-1.5))


def test_nominal_start_is_identity_correction_for_every_frame_convention() -> None:
    for nominal in (g.planned_placement(ISO), np.eye(4), g.translation((-3.0, 4.0, 100.0))):
        start = g.registration_for_correction(np.eye(4), nominal, ISO)
        np.testing.assert_allclose(g.correction_transform(start, nominal, ISO), np.eye(4),
                                   atol=1e-12)


def test_origin_convention_start_maps_cbct_origin_to_plan_isocentre() -> None:
    # CONTRACT §2 case 3 'origin': machine isocentre at CBCT (0,0,0) -> planning iso.
    start = g.registration_for_correction(np.eye(4), np.eye(4), ISO)
    np.testing.assert_allclose(g.apply(start, (0, 0, 0)), ISO)


@pytest.mark.parametrize(
    ("dof", "expected"),
    [
        pytest.param(6, corr(1, 2, 3, 0.5, -0.4, 1.2), id="6dof"),
        pytest.param(4, corr(1, 2, 3, 0, 0, 1.2), id="4dof"),
        pytest.param(3, corr(1, 2, 3, 0, 0, 0), id="3dof"),
    ],
)
def test_restrict_to_dof(dof: int, expected: CouchCorrection) -> None:
    assert g.restrict_to_dof(corr(1, 2, 3, 0.5, -0.4, 1.2), dof) == expected


def test_restrict_to_dof_rejects_other_counts() -> None:
    with pytest.raises(ValueError, match="3, 4 or 6"):
        g.restrict_to_dof(corr(), 5)


def test_rounded_has_no_negative_zero() -> None:
    r = corr(-0.0001, 0, 0, -0.0001, 0, 0).rounded()
    assert str(r.lateral_mm) == "0.0" and str(r.pitch_deg) == "0.0"


def test_is_rigid() -> None:
    assert g.is_rigid(g.rigid(g.iec_rotation(1, 2, 3), (4, 5, 6)))
    assert not g.is_rigid(np.diag([1.0, 1.0, 1.1, 1.0]))
    assert not g.is_rigid(np.diag([1.0, 1.0, -1.0, 1.0]))


def test_rotation_angle() -> None:
    assert g.rotation_angle_deg(g.rot_y(2.5)) == pytest.approx(2.5)


def test_mean_rigid_averages_where_points_go() -> None:
    a = g.rigid(g.rot_z(0.4) @ g.rot_x(-0.2), (1.0, 2.0, 3.0))
    b = g.rigid(g.rot_z(0.6) @ g.rot_x(0.2), (1.2, 1.8, 3.4))
    mean = g.mean_rigid([a, b])
    assert g.is_rigid(mean)
    points = np.array([[0.0, 0.0, 0.0], [80.0, -60.0, 40.0], [-80.0, 60.0, -60.0]])
    halfway = (g.apply(a, points) + g.apply(b, points)) / 2
    np.testing.assert_allclose(g.apply(mean, points), halfway, atol=2e-3)
    np.testing.assert_allclose(g.mean_rigid([a]), a, atol=1e-12)
