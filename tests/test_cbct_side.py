"""igrt.registration.cbct_side: the CBCT side of a problem made ahead (``igrt register`` makes it
while the planning side is built) is exactly the side ``prepare`` makes, and ``prepare`` takes
it only for the CBCT, nominal start and box it was made from."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from phantom_cases import planning_set
from test_runner import BOX_MM, KNOWN, Built, case_of

from igrt.config import parse_config
from igrt.core import geometry
from igrt.core.errors import NoOverlapError
from igrt.dicom.files import scan
from igrt.dicom.series_loader import load_series_files
from igrt.registration import cbct_levels, cbct_side, runner
from igrt.registration.problem import DEFAULT_LEVELS, RegistrationProblem
from igrt.registration.reference import build_reference, fixed_factors
from phantoms.generator import write_cbct

CFG = parse_config({"registration": {"roi_size_mm": list(BOX_MM)}})


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("side")
    plan_case = planning_set(root)
    case = case_of(plan_case, write_cbct(root / "cbct", plan_case, KNOWN))
    ct = load_series_files(scan(plan_case.directory).image_series[0].paths)
    reference = build_reference(ct.volume, ct.info, isocenter_mm=case.isocenter_mm,
                                position=case.position, box_size_mm=BOX_MM)
    return Built(case, reference, plan_case)


def ahead_of(built: Built, **changes: object) -> cbct_side.CbctSide:
    case = dataclasses.replace(built.case, **changes)  # type: ignore[arg-type]
    return cbct_side.cbct_side(case.cbct, case.cbct_padding, case.nominal, BOX_MM,
                               levels_now=True)


def assert_same_problem(got: RegistrationProblem, wanted: RegistrationProblem) -> None:
    np.testing.assert_array_equal(got.fixed.voxels, wanted.fixed.voxels)
    assert got.fixed.origin_mm == wanted.fixed.origin_mm
    np.testing.assert_array_equal(got.fixed_mask, wanted.fixed_mask)
    np.testing.assert_array_equal(got.center_mm, wanted.center_mm)
    np.testing.assert_array_equal(got.initial, wanted.initial)
    assert got.fov_fraction == wanted.fov_fraction
    assert got.edge_masks is not None and wanted.edge_masks is not None
    for mine, theirs in zip(got.edge_masks(), wanted.edge_masks(), strict=True):
        assert mine is not None and theirs is not None
        np.testing.assert_array_equal(mine, theirs)
    for level in DEFAULT_LEVELS:
        factors = fixed_factors(got.fixed.spacing_mm, level)
        np.testing.assert_array_equal(
            cbct_levels.level_pixels(got.shared, got.fixed, factors, level.smoothing_mm).pixels,
            cbct_levels.level_pixels(wanted.shared, wanted.fixed, factors,
                                     level.smoothing_mm).pixels)


def test_a_side_made_ahead_is_the_one_prepare_makes_and_is_taken(built: Built) -> None:
    side = ahead_of(built)
    first = DEFAULT_LEVELS[0]
    assert ("cbct-image", fixed_factors(side.fixed.spacing_mm, first),
            float(first.smoothing_mm)) in side.shared  # the first level's pixels, made at once
    taken = runner.prepare(built.case, built.reference, CFG.registration, ahead=side)
    assert taken.shared is side.shared and taken.fixed is side.fixed
    assert taken.edge_masks is side.edge_masks
    assert_same_problem(taken, runner.prepare(built.case, built.reference, CFG.registration))


@pytest.mark.parametrize("other", ["nominal", "cbct", "padding", "box"])
def test_a_side_made_for_another_cbct_start_or_box_is_not_taken(built: Built,
                                                               other: str) -> None:
    """Made from another nominal start (1 mm away), another CBCT (equal voxels, another
    array), another padding mask or box: ``prepare`` makes its own, the one it would make."""
    case = built.case
    if other == "nominal":
        side = ahead_of(built, nominal=geometry.translation((1.0, 0.0, 0.0)) @ case.nominal)
    elif other == "cbct":
        side = ahead_of(built, cbct=dataclasses.replace(case.cbct,
                                                        voxels=case.cbct.voxels.copy()))
    elif other == "padding":
        side = ahead_of(built, cbct_padding=np.zeros(case.cbct.voxels.shape, dtype=bool))
    else:
        side = cbct_side.cbct_side(case.cbct, case.cbct_padding, case.nominal,
                                   (150.0, 160.0, 120.0), levels_now=True)
    assert not side.serves(case.cbct, case.cbct_padding, case.nominal, BOX_MM)
    made = runner.prepare(built.case, built.reference, CFG.registration, ahead=side)
    assert made.shared is not side.shared
    assert_same_problem(made, runner.prepare(built.case, built.reference, CFG.registration))


def test_a_side_made_ahead_with_too_little_cbct_is_refused_where_prepare_refuses(
        built: Built) -> None:
    """The box 400 mm away from the CBCT: made ahead without a complaint (nothing of it is
    made but the mask), refused by ``prepare`` with the sentence it always gave."""
    case = built.case
    far = geometry.translation((0.0, 0.0, 400.0)) @ case.nominal
    side = ahead_of(built, nominal=far)
    assert side.fov_fraction < cbct_side.MIN_FOV_FRACTION
    with pytest.raises(RuntimeError, match="not started"):
        side.edge_masks()  # nothing of it was made but the mask
    with pytest.raises(NoOverlapError, match="field of view"):
        runner.prepare(dataclasses.replace(case, nominal=far), built.reference,
                       CFG.registration, ahead=side)


def test_igrt_register_takes_the_side_it_made_ahead(built: Built, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline registration makes the CBCT side once, ahead, and the pipeline takes it."""
    from igrt.offline import register_offline

    made: list[cbct_side.CbctSide] = []
    taken: list[tuple[cbct_side.CbctSide | None, RegistrationProblem]] = []
    real_side, real_prepare = cbct_side.cbct_side, runner.prepare

    def spy_side(*args: object, **kwargs: object) -> cbct_side.CbctSide:
        made.append(real_side(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    def spy_prepare(*args: object, **kwargs: object) -> RegistrationProblem:
        problem = real_prepare(*args, **kwargs)  # type: ignore[arg-type]
        taken.append((kwargs.get("ahead"), problem))  # type: ignore[arg-type]
        return problem

    monkeypatch.setattr(cbct_side, "cbct_side", spy_side)
    monkeypatch.setattr("igrt.offline.cbct_side", spy_side)
    monkeypatch.setattr("igrt.registration.runner.cbct_side", spy_side)
    monkeypatch.setattr(runner, "prepare", spy_prepare)
    cbct = write_cbct(tmp_path / "cbct", built.planning, KNOWN)
    message = register_offline(built.planning.directory, cbct.directory,
                               parse_config({"registration": {"roi_size_mm": list(BOX_MM)}}))
    assert message["status"] in ("ok", "review"), message["reasons"]
    assert len(made) == 1 and len(taken) == 1
    assert taken[0][0] is made[0] and taken[0][1].shared is made[0].shared


def test_a_single_registration_cuts_the_native_level_from_the_part_smoothed_ahead(
        built: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    """A single registration's planning side (``keep_levels`` False: the native level made in
    parts) is smoothed once at the native level, on the thread that smooths it ahead from the
    first level's answer; the result's and the restart's native runs are cut from that part,
    and the answer is the one a reference made whole gives."""
    import threading

    from igrt.registration import reference as reference_module

    case = built.case
    ct = load_series_files(scan(built.planning.directory).image_series[0].paths)
    grid = (case.cbct.spacing_mm, np.asarray(case.cbct.direction, dtype=np.float64))
    parts = build_reference(ct.volume, ct.info, isocenter_mm=case.isocenter_mm,
                            position=case.position, box_size_mm=BOX_MM, keep_levels=False,
                            cbct_grid=grid)
    whole = build_reference(ct.volume, ct.info, isocenter_mm=case.isocenter_mm,
                            position=case.position, box_size_mm=BOX_MM, cbct_grid=grid)
    whole.warm(*grid)
    parts.warm(*grid)  # the smoothed levels: the native one is left to the runs
    native_sigma = DEFAULT_LEVELS[-1].planning_smoothing_mm
    smoothed: list[str] = []
    real_smooth = reference_module.smooth

    def spy(image: object, sigma_mm: float) -> object:
        if sigma_mm == native_sigma:
            smoothed.append(threading.current_thread().name)
        return real_smooth(image, sigma_mm)  # type: ignore[arg-type]

    monkeypatch.setattr(reference_module, "smooth", spy)
    got = runner.measure(case, parts, CFG.registration, CFG.review)
    # the CBCT's own native pixels (the same sigma) are smoothed on the masks' thread
    assert smoothed.count("igrt-edge-masks") == 1
    assert [name for name in smoothed if name != "igrt-edge-masks"] == ["igrt-native-ahead"]
    wanted = runner.measure(case, whole, CFG.registration, CFG.review)
    np.testing.assert_allclose(got.transform, wanted.transform, atol=1e-9)


def test_a_side_that_cannot_be_made_ahead_leaves_the_registration_to_the_pipeline(
        built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever goes wrong making the side ahead (here: any error at all) is the pipeline's to
    meet and name: ``igrt register`` still gives its message, the side made as without the
    head start."""
    from igrt.offline import register_offline

    def broken(*args: object, **kwargs: object) -> cbct_side.CbctSide:
        raise RuntimeError("not ahead")

    monkeypatch.setattr("igrt.offline.cbct_side", broken)
    cbct = write_cbct(tmp_path / "cbct", built.planning, KNOWN)
    message = register_offline(built.planning.directory, cbct.directory, CFG)
    assert message["status"] in ("ok", "review"), message["reasons"]
    assert message["measured"] is not None
