"""The QA phantoms (``sphere_cube``, ``iq_cylinder``): what they hold, where the isocentre is,
that a CBCT of them shows the known couch offset, and the CBCT artefacts they are acquired
with (cupping, rings, streaks from dense inserts, 2.5 mm slices, truncated ends)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_phantoms import centroid, load_series, others

from igrt.core import geometry
from igrt.core.geometry import CouchCorrection
from phantoms import artefacts, catalog, iq_cylinder, sphere_cube
from phantoms.__main__ import main as cli_main
from phantoms.generator import (
    PlanningCase,
    expected_registration,
    write_cbct,
    write_planning_set,
)


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> PlanningCase:
    return write_planning_set(tmp_path_factory.mktemp("qa-cube") / "plan", phantom="sphere_cube",
                              patient_id="QA-CUBE")


@pytest.fixture(scope="module")
def cylinder(tmp_path_factory: pytest.TempPathFactory) -> PlanningCase:
    return write_planning_set(tmp_path_factory.mktemp("qa-cyl") / "plan", phantom="iq_cylinder",
                              patient_id="QA-CYL")


def hu_at(directory: Path, point: tuple[float, float, float] | np.ndarray) -> float:
    vol = load_series(directory)
    ijk = np.rint(vol.direction.T @ (np.asarray(point) - vol.origin) / vol.spacing).astype(int)
    return float(vol.hu[ijk[2], ijk[1], ijk[0]])


@pytest.mark.parametrize("name", catalog.QA_PHANTOMS)
def test_isocentre_at_the_phantom_centre_with_plan_and_structures(
        name: str, cube: PlanningCase, cylinder: PlanningCase) -> None:
    case = cube if name == "sphere_cube" else cylinder
    assert case.isocenter_mm == pytest.approx(catalog.model(name).center_mm)
    (plan,) = others(case.directory, "RTPLAN")
    iso = plan.BeamSequence[0].ControlPointSequence[0].IsocenterPosition
    assert [float(v) for v in iso] == pytest.approx(case.isocenter_mm)
    (rs,) = others(case.directory, "RTSTRUCT")
    names = {r.ROIName for r in rs.StructureSetROISequence}
    assert {"BODY", "PTV", "REG_BOX"} <= names
    ct = load_series(case.directory)
    assert ct.spacing[2] <= 2.0  # QA planning CT: fine slices over the whole phantom
    assert hu_at(case.directory, case.isocenter_mm) > -200.0


def test_sphere_cube_holds_its_spheres(cube: PlanningCase) -> None:
    c = np.asarray(sphere_cube.CENTER_MM)
    assert hu_at(cube.directory, c) > 600.0  # the centre ball (partial volume at 2 mm voxels)
    for offset, hu in sphere_cube.SPHERES:
        value = hu_at(cube.directory, c + np.asarray(offset))
        assert (value < -500.0) if hu < 0 else (value > 1000.0), (offset, value)
    assert hu_at(cube.directory, c + (0.0, 0.0, 30.0)) == pytest.approx(sphere_cube.BODY_HU,
                                                                        abs=5)
    assert hu_at(cube.directory, c + (sphere_cube.SIDE_MM / 2 + 5.0, 0.0, 0.0)) < -900.0


def test_iq_cylinder_holds_its_modules(cylinder: PlanningCase) -> None:
    c = np.asarray(iq_cylinder.CENTER_MM)
    for angle, hu in iq_cylinder.INSERTS:  # HU inserts at the isocentre's level
        a = math.radians(angle)
        at = c + (iq_cylinder.INSERT_RING_MM * math.sin(a),
                  -iq_cylinder.INSERT_RING_MM * math.cos(a), 0.0)
        assert hu_at(cylinder.directory, at) == pytest.approx(hu, abs=0.1 * abs(hu) + 40), angle
    ct = load_series(cylinder.directory)
    z = ct.origin[2] + ct.spacing[2] * np.arange(ct.hu.shape[0])
    uniform = ct.hu[np.argmin(np.abs(z - (c[2] - 35.0)))]
    y, x = np.mgrid[0:uniform.shape[0], 0:uniform.shape[1]]
    r = np.hypot(ct.origin[0] + x * ct.spacing[0] - c[0], ct.origin[1] + y * ct.spacing[1] - c[1])
    assert np.abs(uniform[r < 80.0] - iq_cylinder.BACKGROUND_HU).max() < 1.0
    bars = ct.hu[np.argmin(np.abs(z - (c[2] + 34.5)))]
    assert bars.max() > 1000.0  # aluminium line pairs


@pytest.mark.parametrize(("frame", "correction"), [
    pytest.param("origin", CouchCorrection(0.0, -5.0, 0.0, 0.0, 0.0, 0.0), id="long-5"),
    pytest.param("planning", CouchCorrection(6.0, -3.0, 4.0, 1.0, -2.0, 2.0), id="six-dof"),
])
def test_cube_cbct_shows_the_centre_ball_where_the_offset_says(
        cube: PlanningCase, tmp_path: Path, frame: str, correction: CouchCorrection) -> None:
    cbct = write_cbct(tmp_path / "cbct", cube, correction, frame=frame, degrade=False)
    t = expected_registration(cube, correction, frame)
    expected = geometry.apply(geometry.invert_rigid(t), np.asarray(cube.isocenter_mm))
    vol = load_series(cbct.directory)
    found = centroid(vol, expected, radius_mm=6.0, threshold_hu=300.0)
    assert np.linalg.norm(found - expected) < 0.8


def test_cbct_has_thin_slices_truncated_ends_cupping_rings_and_streaks(
        cube: PlanningCase, tmp_path: Path) -> None:
    iso = np.asarray(cube.isocenter_mm)
    cbct = write_cbct(tmp_path / "cbct", cube, CouchCorrection.zero(), frame="planning")
    vol = load_series(cbct.directory)
    assert vol.spacing[2] == pytest.approx(2.5)
    padding = float(vol.datasets[0].PixelPaddingValue) + float(vol.datasets[0].RescaleIntercept)
    z = vol.origin[2] + vol.spacing[2] * np.arange(vol.hu.shape[0])
    ends = np.abs(z - iso[2]) > catalog.QA_DEGRADATION.fov_length_mm / 2.0  # type: ignore[operator]
    assert ends.any() and (vol.hu[ends] <= padding + 1).all()  # truncated: no data there
    middle = vol.hu[np.argmin(np.abs(z - iso[2] - 20.0))]
    y, x = np.mgrid[0:middle.shape[0], 0:middle.shape[1]]
    r = np.hypot(vol.origin[0] + x * vol.spacing[0] - iso[0],
                 vol.origin[1] + y * vol.spacing[1] - iso[1])
    centre, rim = middle[r < 15.0].mean(), middle[(r > 55.0) & (r < 65.0)].mean()
    assert rim - centre > 20.0  # cupping: darker in the middle
    clean = write_cbct(tmp_path / "clean", cube, CouchCorrection.zero(), frame="planning",
                       rings_hu=0.0, dense_streaks_hu=0.0)
    artefact = vol.hu - load_series(clean.directory).hu
    inside = ~ends
    assert np.abs(artefact[inside]).max() > 50.0  # streaks and rings are there


def test_ring_and_streak_patterns() -> None:
    rng = np.random.default_rng(3)
    rho = np.linspace(0.0, 150.0, 1501)
    ring = artefacts.rings(rho, 20.0, rng)
    assert np.abs(ring).max() > 8.0 and np.abs(ring[(rho > 145.0)]).max() < 1.0
    x = np.arange(-60.0, 60.0, 1.0)[None, :]
    y = np.arange(-60.0, 60.0, 1.0)[:, None]
    hu = np.zeros((1, 120, 120), dtype=np.float32)
    for cx in (-30.0, 30.0):
        hu[0][np.hypot(x - cx, y) < 4.0] = 2500.0
    streaks = artefacts.dense_streaks(hu, x, y, 100.0, rng)[0]
    between, off_axis = streaks[60, 55:65].mean(), streaks[20, 55:65].mean()
    assert between < -30.0 < off_axis  # dark band joining the two dense inserts
    assert np.abs(artefacts.dense_streaks(np.zeros_like(hu), x, y, 100.0, rng)).max() == 0.0


def test_the_phantom_command_line_offers_the_qa_phantoms(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert set(catalog.QA_PHANTOMS) <= set(catalog.PHANTOMS)
    assert cli_main(["planning", "--out", str(tmp_path / "p"), "--phantom", "iq_cylinder",
                     "--patient-id", "QA-9", "--position", "FFS"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["phantom"] == "iq_cylinder" and summary["patient_position"] == "FFS"
    assert cli_main(["cbct", "--planning", str(tmp_path / "p"), "--out", str(tmp_path / "c"),
                     "--shift", "-2,0,3,0,0,1"]) == 0
    assert json.loads(capsys.readouterr().out)["correction"]["lateral_mm"] == -2.0


def test_only_the_qa_phantoms_are_acquired_with_rings_and_dense_streaks() -> None:
    for name in catalog.PHANTOMS:
        d = catalog.degradation(name)
        qa = name in catalog.QA_PHANTOMS
        assert (d.rings_hu > 0.0, d.dense_streaks_hu > 0.0, d.fov_length_mm is not None) == (
            qa, qa, qa), name


def test_the_sphere_cube_is_registered_within_the_qa_acceptance(
        cube: PlanningCase, tmp_path: Path) -> None:
    """Issue 8: a plain 5 mm lateral offset of the cube (the benchmark's case 3), with its CBCT
    artefacts, within 0.3 mm and 0.15° and stable. Sampled evenly over the box, the uniform
    cube's few inserts barely weighed and its faces at the box's edges pulled: 1.1 mm off and
    ``unstable``; the fine levels now sample near the CBCT's edges, away from the box's faces."""
    from igrt import pipeline
    from igrt.config.parse import default_config
    from igrt.core.messages import correction_message
    from igrt.core.qa import correction_from
    from igrt.planning.directory import DirectoryCbct, DirectoryPlanning

    known = CouchCorrection(5.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    cbct = write_cbct(tmp_path / "cbct", cube, known, frame="origin", seed=303)
    config = default_config(environ={})
    source = DirectoryCbct(cbct.directory)
    outcome = pipeline.run(source, DirectoryPlanning(cube.directory, cbct=source), config)
    message = correction_message(outcome, room=config.room, dof=config.couch.dof, seq=0)
    got = correction_from(message["measured"])
    assert np.linalg.norm(np.subtract(got.translation_mm, known.translation_mm)) <= 0.3
    assert np.abs(np.subtract(got.angles_deg, known.angles_deg)).max() <= 0.15
    assert not [r for r in message["reasons"] if r.startswith("unstable")]
