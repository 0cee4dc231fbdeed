"""igrt.registration.runner and the engines: a CBCT written at a known correction, registered
by each engine, must give that correction back (the ITKElastix way of testing registration);
the quality checks turn a result to review when they should."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from phantom_cases import planning_set

from igrt.config import EngineName, parse_config
from igrt.core import geometry
from igrt.core.case import Case, build_case, region_mask
from igrt.core.errors import NoOverlapError
from igrt.core.geometry import CouchCorrection, PatientPosition
from igrt.core.image_series import SeriesInfo
from igrt.core.types import FloatArray
from igrt.core.volume import Volume
from igrt.dicom.files import scan
from igrt.dicom.plan_reader import read_plan
from igrt.dicom.series_loader import load_series_files
from igrt.dicom.structure_reader import read_structure_set
from igrt.registration import elastix_engine, region
from igrt.registration.elastix_engine import ElastixEngine
from igrt.registration.elastix_engine import iterations as elastix_iterations
from igrt.registration.elastix_engine import warm_up as elastix_warm_up
from igrt.registration.problem import DEFAULT_LEVELS, Level, RegistrationProblem
from igrt.registration.reference import PlanningReference, build_reference
from igrt.registration.runner import Measurement, measure, prepare, to_iec
from igrt.registration.sitk_engine import SimpleItkEngine
from igrt.registration.sitk_images import to_sitk
from phantoms.generator import CbctCase, PlanningCase, write_cbct

KNOWN = CouchCorrection(7.0, -9.0, 4.0, 2.0, -1.5, 2.5)
BOX_MM = (160.0, 160.0, 120.0)


class Built(NamedTuple):
    case: Case
    reference: PlanningReference
    planning: PlanningCase


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("runner")
    plan_case = planning_set(root)
    cbct_case = write_cbct(root / "cbct", plan_case, KNOWN)
    planning = scan(plan_case.directory)
    ct = load_series_files(planning.image_series[0].paths)
    case = case_of(plan_case, cbct_case)
    reference = build_reference(ct.volume, ct.info, isocenter_mm=case.isocenter_mm,
                                position=case.position, box_size_mm=BOX_MM)
    return Built(case, reference, plan_case)


def case_of(plan_case: PlanningCase, cbct_case: CbctCase) -> Case:
    planning = scan(plan_case.directory)
    ct = load_series_files(planning.image_series[0].paths)
    plan = read_plan(pydicom.dcmread(planning.rt_plans[0].path))
    cbct = load_series_files(scan(cbct_case.directory).image_series[0].paths)
    case, _, _ = build_case(cbct=cbct, plan=plan, ct=ct.info)
    return case


def codes(m: Measurement) -> list[str]:
    return [r.split(":")[0] for r in m.reasons]


@pytest.fixture
def case(built: Built) -> Case:
    return built.case


@pytest.fixture
def reference(built: Built) -> PlanningReference:
    return built.reference


def assert_known(measured: CouchCorrection) -> None:
    err_mm = float(np.linalg.norm(measured.translation_mm - KNOWN.translation_mm))
    err_deg = float(np.abs(measured.angles_deg - KNOWN.angles_deg).max())
    assert err_mm <= 0.3 and err_deg <= 0.15, (err_mm, err_deg, measured)


@pytest.mark.parametrize("engine", [EngineName.SIMPLEITK, EngineName.ELASTIX])
def test_engine_recovers_the_known_correction(case: Case, reference: PlanningReference,
                                              engine: EngineName) -> None:
    cfg = parse_config({"registration": {"engine": str(engine), "perturbation_check": False}})
    m = measure(case, reference, cfg.registration, cfg.review)
    assert_known(m.measured)
    primary = m.details["primary"]
    assert primary["engine"] == str(engine)
    assert primary["iterations"] > 0
    assert primary["metric"] is not None and primary["metric"] < 0  # mutual information
    if engine is EngineName.SIMPLEITK:  # regular-step descent stops on a convergence criterion
        assert primary["converged"] is True
        assert primary["iterations"] < sum(level.iterations for level in DEFAULT_LEVELS)
    else:  # ASGD runs its budget by design: convergence is neither claimed nor denied
        assert primary["converged"] is None
        assert primary["iterations"] == sum(elastix_iterations(level) for level in DEFAULT_LEVELS)
        assert primary["iterations"] < sum(level.iterations for level in DEFAULT_LEVELS)
        assert "Maximum number of iterations" in primary["stop_condition"]
    assert not any(r.startswith("not_converged") for r in m.reasons)


def test_elastix_runs_a_registration_per_level_its_own_pyramid_at_native(
        case: Case, reference: PlanningReference,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cross-check after the primary: elastix's smoothed levels take the CBCT levels the
    SimpleITK engine made (none is made again) and elastix's pyramid copies them; its native
    level takes the CBCT region as it is and smooths it itself. One elastix run per level, each
    from where the last ended."""
    cfg = parse_config({"registration": {"perturbation_check": False}})
    problem = prepare(case, reference, cfg.registration)
    SimpleItkEngine().register(problem)
    made = cbct_images(problem)
    assert len(made) == len(DEFAULT_LEVELS)
    runs: list[tuple[tuple[str, ...], tuple[int, ...]]] = []
    real = elastix_engine._elastix

    def spy(itk: Any, parameters: dict[str, tuple[str, ...]], **images: Any) -> Any:
        runs.append((parameters["FixedImagePyramidSmoothingSchedule"],
                     tuple(images["fixed"].GetLargestPossibleRegion().GetSize())))
        return real(itk, parameters, **images)

    monkeypatch.setattr(elastix_engine, "_elastix", spy)
    result = ElastixEngine().register(problem)
    assert cbct_images(problem) == made
    assert [sigma for sigma, _ in runs] == [("0", "0", "0")] * 2 + [("0.6",) * 3]
    assert runs[-1][1] == problem.fixed.shape_ijk  # the CBCT region itself, unshrunk
    assert len(result.level_transforms) == len(DEFAULT_LEVELS)
    np.testing.assert_array_equal(result.level_transforms[-1], result.transform)
    assert_known(to_iec(result.transform, case))
    coarse = to_iec(result.level_transforms[0], case)  # the coarse level alone is close
    assert float(np.linalg.norm(coarse.translation_mm - KNOWN.translation_mm)) < 3.0


def test_elastix_is_given_float32_images_and_uint8_masks_only() -> None:
    with pytest.raises(ValueError, match="float32 images and uint8 masks"):
        elastix_engine._to_itk(None, sitk.Image(4, 4, 4, sitk.sitkInt16), None)


def test_the_elastix_warm_up_registers_as_a_level_does() -> None:
    """The service's warm-up goes through the same parameters, masks and pixel types as a
    level (elastix refuses a parameter map it cannot run: the warm-up would raise)."""
    elastix_warm_up()
    elastix_warm_up()  # and again: nothing is left behind that a second run trips over


def cbct_images(problem: RegistrationProblem) -> set[object]:
    """The CBCT level images made on ``problem`` (their memo keys)."""
    return {key for key in problem.memo if isinstance(key, tuple) and key[0] == "cbct-image"}


def test_simpleitk_is_deterministic(case: Case, reference: PlanningReference) -> None:
    cfg = parse_config({"registration": {"perturbation_check": False}})
    a = measure(case, reference, cfg.registration, cfg.review).measured
    b = measure(case, reference, cfg.registration, cfg.review).measured
    # no random sampling: equal up to floating-point summation order across threads
    np.testing.assert_allclose(a.translation_mm, b.translation_mm, atol=1e-6)
    np.testing.assert_allclose(a.angles_deg, b.angles_deg, atol=1e-6)


def test_perturbed_restart_agrees_and_a_tiny_tolerance_flags_it(
        case: Case, reference: PlanningReference) -> None:
    cfg = parse_config({})
    m = measure(case, reference, cfg.registration, cfg.review)
    assert m.details["perturbation"]["translation_mm"] <= 0.5
    assert not any(r.startswith("unstable") for r in m.reasons)
    strict = parse_config({"registration": {"perturbation_tolerance_mm": 0.0001,
                                            "perturbation_tolerance_deg": 0.0001}})
    flagged = measure(case, reference, strict.registration, strict.review)
    assert any(r.startswith("unstable:") for r in flagged.reasons), flagged.reasons


def test_cross_check_with_the_second_engine(case: Case, reference: PlanningReference) -> None:
    cfg = parse_config({"registration": {"cross_check": "elastix", "perturbation_check": False,
                                         "cross_check_tolerance_mm": 0.0001,
                                         "cross_check_tolerance_deg": 0.0001}})
    m = measure(case, reference, cfg.registration, cfg.review)
    cross = m.details["cross_check"]
    assert cross["engine"] == "elastix"
    assert cross["translation_mm"] <= 0.5  # the two engines agree to well under a millimetre
    assert_known(CouchCorrection(**cross["measured"]))
    assert any(r.startswith("engines_disagree:") for r in m.reasons)  # ... but not to 0.1 µm


def test_review_limits(case: Case, reference: PlanningReference) -> None:
    cfg = parse_config({"registration": {"perturbation_check": False},
                        "review": {"max_translation_mm": 5.0, "max_rotation_deg": 2.2}})
    m = measure(case, reference, cfg.registration, cfg.review)
    codes = [r.split(":")[0] for r in m.reasons]
    assert codes == ["translation_limit", "rotation_limit"]  # 12.1 mm; rotation 2.5° only


def test_region_outside_the_field_of_view_is_refused(case: Case,
                                                     reference: PlanningReference) -> None:
    far = dataclasses.replace(case, nominal=case.nominal @ geometry.translation((0, 0, -900.0)))
    with pytest.raises(NoOverlapError, match="field of view"):
        prepare(far, reference, parse_config({}).registration)


def test_prepare_masks_the_fov_and_the_body(case: Case, reference: PlanningReference) -> None:
    problem = prepare(case, reference, parse_config({}).registration)
    assert problem.fixed_mask is not None and problem.moving_mask is not None
    assert 0.3 < problem.fixed_mask.mean() < 1.0  # the box corners lie outside the cylinder
    assert 0.05 < problem.moving_mask.mean() < 0.95


def test_a_patients_cbct_is_never_flattened(case: Case, reference: PlanningReference) -> None:
    """The cupping correction is for QA phantoms: on the torso (its CBCT has cupping) the
    registration sees the CBCT's voxels as they are."""
    cfg = parse_config({}).registration
    problem = prepare(case, reference, cfg)
    iso_cbct = geometry.apply(geometry.invert_rigid(case.nominal), np.zeros(3))
    box = region.index_box(case.cbct, iso_cbct, np.asarray(cfg.roi_size_mm, dtype=np.float64))
    np.testing.assert_array_equal(problem.fixed.voxels, region.crop(case.cbct, box).voxels)


def test_planning_region_from_a_structure(tmp_path: Path) -> None:
    plan_case = planning_set(tmp_path)
    cbct_case = write_cbct(tmp_path / "cbct", plan_case, KNOWN)
    planning = scan(plan_case.directory)
    ct = load_series_files(planning.image_series[0].paths)
    plan = read_plan(pydicom.dcmread(planning.rt_plans[0].path))
    structures = [read_structure_set(pydicom.dcmread(f.path)) for f in planning.structure_sets]
    cbct = load_series_files(scan(cbct_case.directory).image_series[0].paths)
    cfg = parse_config({"registration": {"roi_structure": "reg_box",
                                         "perturbation_check": False}})
    case, _, _ = build_case(cbct=cbct, plan=plan, ct=ct.info)
    assert cfg.registration.roi_structure is not None
    mask = region_mask(plan, structures, ct.volume, cfg.registration.roi_structure)
    assert mask.any()
    structured = build_reference(ct.volume, ct.info, isocenter_mm=case.isocenter_mm,
                                 position=case.position, box_size_mm=BOX_MM, region_mask=mask)
    assert structured.mask.sum() < build_reference(
        ct.volume, ct.info, isocenter_mm=case.isocenter_mm, position=case.position,
        box_size_mm=BOX_MM).mask.sum()  # the 100 mm box, not the body
    assert_known(measure(case, structured, cfg.registration, cfg.review).measured)


def extruded(shape_kji: tuple[int, int, int], spacing: float, center: np.ndarray) -> Volume:
    """A phantom with structure in-plane and none along z (every slice the same)."""
    nk, nj, ni = shape_kji
    j, i = np.mgrid[0:nj, 0:ni]
    x = (i - (ni - 1) / 2) * spacing
    y = (j - (nj - 1) / 2) * spacing
    plane = np.full((nj, ni), -1000.0, dtype=np.float32)
    plane[(x / 70) ** 2 + (y / 55) ** 2 <= 1] = 20.0
    for cx, cy, r, hu in ((-25, -10, 12, 400.0), (20, 15, 9, -600.0), (5, -30, 6, 900.0)):
        plane[(x - cx) ** 2 + (y - cy) ** 2 <= r * r] = hu
    voxels = np.repeat(plane[None], nk, axis=0)
    origin = center - np.array([(ni - 1) / 2, (nj - 1) / 2, (nk - 1) / 2]) * spacing
    return Volume(voxels, (float(origin[0]), float(origin[1]), float(origin[2])),
                  (spacing, spacing, spacing))


def measured_at_nominal(ct: Volume, cbct: Volume, iso: np.ndarray) -> Measurement:
    """An HFS CBCT of ``cbct`` registered on ``ct`` from the nominal set-up (both about
    ``iso``), with the default configuration."""
    nk = ct.voxels.shape[0]
    ct_info = SeriesInfo("PAT", "1.2.3", f"1.2.826.0.1.3680043.10.{nk}", "1.2.4", "CT",
                         "1.2.840.10008.5.1.4.1.1.2", "HFS", "", nk, ())
    reference = build_reference(ct, ct_info, isocenter_mm=iso, position=PatientPosition.HFS,
                                box_size_mm=BOX_MM)
    case = Case(cbct=cbct, cbct_padding=None, nominal=geometry.translation(-iso),
                isocenter_mm=iso, position=PatientPosition.HFS)
    cfg = parse_config({})
    return measure(case, reference, cfg.registration, cfg.review)


def test_a_restart_that_lands_elsewhere_is_unstable() -> None:
    """Nothing pins the position along z: a restart 2 mm away along z stays there, and the
    robustness check must say so (while the primary result itself looks converged)."""
    iso = np.array([0.0, 0.0, -300.0])
    m = measured_at_nominal(extruded((150, 90, 90), 2.0, iso), extruded((90, 90, 90), 2.0, iso),
                            iso)
    assert m.details["perturbation"]["translation_mm"] > 1.0
    assert any(r.startswith("unstable:") for r in m.reasons), m.reasons


def turned(shape_kji: tuple[int, int, int], spacing: float, center: np.ndarray) -> Volume:
    """A phantom turned about the z axis through ``center``: rings in-plane and discs along z
    pin x, y and z and the two tilts, and nothing pins the turn about z."""
    nk, nj, ni = shape_kji
    k, j, i = np.mgrid[0:nk, 0:nj, 0:ni]
    r = np.hypot((i - (ni - 1) / 2) * spacing, (j - (nj - 1) / 2) * spacing)
    z = (k - (nk - 1) / 2) * spacing
    voxels = np.full(shape_kji, -1000.0, dtype=np.float32)
    voxels[r <= 70] = 20.0
    voxels[(r >= 20) & (r <= 26)] = 400.0
    voxels[(r >= 40) & (r <= 45)] = -600.0
    for z0, radius in ((-40.0, 15.0), (10.0, 55.0), (30.0, 8.0)):
        voxels[(np.abs(z - z0) <= 5) & (r <= radius)] = 900.0
    origin = center - np.array([(ni - 1) / 2, (nj - 1) / 2, (nk - 1) / 2]) * spacing
    return Volume(voxels, (float(origin[0]), float(origin[1]), float(origin[2])),
                  (spacing, spacing, spacing))


def test_a_restart_that_turns_elsewhere_is_unstable() -> None:
    """Nothing pins the turn about the longitudinal axis (the couch's roll for HFS): the
    restart, turned by 1° there, stays turned, and the robustness check must say so. The
    restart's middle level runs on the samples near edges only, without the whole box's run:
    this is the rotation it must still see."""
    iso = np.array([0.0, 0.0, -300.0])
    m = measured_at_nominal(turned((90, 90, 90), 2.0, iso), turned((70, 90, 90), 2.0, iso), iso)
    assert m.details["perturbation"]["rotation_deg"] > 0.5, m.details["perturbation"]
    assert any(r.startswith("unstable:") for r in m.reasons), m.reasons


def test_a_single_use_reference_gives_the_same_result(case: Case,
                                                      reference: PlanningReference) -> None:
    """``igrt register`` makes the native level only where a run samples it; the numbers are
    those of a cached reference whose level was made whole."""
    single = build_reference(
        Volume(np.array(reference.volume.voxels), reference.volume.origin_mm,
               reference.volume.spacing_mm, reference.volume.direction),
        reference.ct, isocenter_mm=case.isocenter_mm, position=case.position,
        box_size_mm=BOX_MM, region_mask=np.array(reference.mask), keep_levels=False)
    cfg = parse_config({"registration": {"perturbation_check": False}})
    a = measure(case, reference, cfg.registration, cfg.review).measured
    b = measure(case, single, cfg.registration, cfg.review).measured
    # equal up to floating-point summation order across threads
    np.testing.assert_allclose(a.translation_mm, b.translation_mm, atol=1e-6)
    np.testing.assert_allclose(a.angles_deg, b.angles_deg, atol=1e-6)
    native = DEFAULT_LEVELS[-1].smoothing_mm
    assert ((1, 1, 1), native) in reference._levels and ((1, 1, 1), native) not in single._levels


@pytest.mark.parametrize(("position", "known"), [
    # a longitudinal offset within the capture range, far enough that the coarse level must
    # carry the search (the speed rework once stopped there after 8 iterations at 2.8 mm)
    (PatientPosition.HFS, CouchCorrection(1.0, 28.0, -1.0, 0.0, 0.0, 0.0)),
    # shift set case 10 with write_cbct's default seed (once 11 mm / 29° wrong)
    (PatientPosition.HFP, CouchCorrection(-11.0, -12.0, -7.0, -2.5, 3.0, -2.5)),
])
def test_the_capture_range_holds(tmp_path_factory: pytest.TempPathFactory,
                                 position: PatientPosition, known: CouchCorrection) -> None:
    root = tmp_path_factory.mktemp("capture")
    plan_case = planning_set(root, position=position)
    cbct_case = write_cbct(root / "cbct", plan_case, known)
    planning = scan(plan_case.directory)
    ct = load_series_files(planning.image_series[0].paths)
    plan = read_plan(pydicom.dcmread(planning.rt_plans[0].path))
    cbct = load_series_files(scan(cbct_case.directory).image_series[0].paths)
    case, _, _ = build_case(cbct=cbct, plan=plan, ct=ct.info)
    reference = build_reference(ct.volume, ct.info, isocenter_mm=case.isocenter_mm,
                                position=case.position, box_size_mm=BOX_MM)
    cfg = parse_config({"registration": {"perturbation_check": False},
                        "review": {"max_translation_mm": 100.0, "max_rotation_deg": 30.0}})
    m = measure(case, reference, cfg.registration, cfg.review)
    err_mm = float(np.linalg.norm(m.measured.translation_mm - known.translation_mm))
    err_deg = float(np.abs(m.measured.angles_deg - known.angles_deg).max())
    assert err_mm <= 0.5 and err_deg <= 0.3, (err_mm, err_deg, m.measured)
    assert m.details["primary"]["converged"] is True


# --- issue 9: does the result correspond, is it the only level, does the CBCT cover the box -----
def test_a_true_match_passes_the_match_checks_with_its_figures(
        case: Case, reference: PlanningReference) -> None:
    cfg = parse_config({"registration": {"perturbation_check": False}})
    m = measure(case, reference, cfg.registration, cfg.review)
    quality = m.details["quality"]
    assert quality["match_score"] >= 0.9
    assert quality["match_score_min"] == cfg.registration.match_score_min
    assert quality["fov_fraction"] >= cfg.registration.fov_fraction_min
    assert quality["longitudinal_coverage"] == 1.0
    alternative = quality["alternative"]
    assert alternative is None or alternative["score"] < quality["match_score"] - 0.2
    assert not {"poor_match", "ambiguous_match", "partial_fov", "short_cbct"} & set(codes(m))


@pytest.mark.parametrize("variant", ["other", "mirrored"])
def test_another_body_under_the_patient_id_is_a_poor_match(built: Built, variant: str) -> None:
    plan_case = built.planning
    cbct = write_cbct(plan_case.directory.parent / f"cbct-{variant}", plan_case, KNOWN,
                      anatomy_variant=variant)
    cfg = parse_config({"registration": {"perturbation_check": False},
                        "review": {"max_translation_mm": 100.0, "max_rotation_deg": 30.0}})
    m = measure(case_of(plan_case, cbct), built.reference, cfg.registration, cfg.review)
    assert "poor_match" in codes(m), (m.reasons, m.details["quality"])
    assert m.details["quality"]["match_score"] < cfg.registration.match_score_min
    off = dataclasses.replace(cfg.registration, match_score_min=0.0)
    unchecked = measure(case_of(plan_case, cbct), built.reference, off, cfg.review)
    assert "poor_match" not in codes(unchecked)  # 0 turns the check off ...
    assert unchecked.details["quality"]["match_score"] is not None  # ... not the figure


def test_anatomy_repeating_along_the_long_axis_is_an_ambiguous_match(
        case: Case, reference: PlanningReference) -> None:
    """A planning CT made of one 27 mm slab repeated along z, and a CBCT of that anatomy at the
    known setup: every slab is an equally good answer."""
    cfg = parse_config({"registration": {"perturbation_check": False}})
    truth = measure(case, reference, cfg.registration, cfg.review).transform  # CBCT -> planning
    ct = reference.volume
    period = int(round(27.0 / ct.spacing_mm[2]))  # slices: one "vertebra" of about 27 mm
    iso_k = int(round(float(ct.point_to_index(case.isocenter_mm)[2])))
    first = iso_k - period // 2
    k = (np.arange(ct.voxels.shape[0]) - first) % period + first
    periodic = dataclasses.replace(ct, voxels=np.ascontiguousarray(ct.voxels[k]))
    repeating = build_reference(periodic, reference.ct, isocenter_mm=case.isocenter_mm,
                                position=case.position, box_size_mm=BOX_MM,
                                region_mask=np.ascontiguousarray(reference.mask[k]))
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in truth[:3, :3].ravel()])
    transform.SetTranslation([float(v) for v in truth[:3, 3]])
    seen = sitk.Resample(to_sitk(periodic), to_sitk(case.cbct), transform, sitk.sitkLinear,
                         -1000.0, sitk.sitkFloat32)
    cbct = dataclasses.replace(case.cbct, voxels=sitk.GetArrayFromImage(seen))
    m = measure(dataclasses.replace(case, cbct=cbct), repeating, cfg.registration, cfg.review)
    quality = m.details["quality"]
    assert quality["match_score"] >= cfg.registration.match_score_min, quality
    assert "ambiguous_match" in codes(m), (m.reasons, quality)
    alternative = quality["alternative"]
    assert alternative["registered"] is True
    spacing = ct.spacing_mm[2]
    assert abs(abs(alternative["offset_mm"]) - period * spacing) < spacing


def test_a_box_mostly_outside_the_field_of_view_is_partial_fov(
        case: Case, reference: PlanningReference) -> None:
    cfg = parse_config({"registration": {"perturbation_check": False,
                                         "roi_size_mm": [600.0, 600.0, 120.0]}})
    m = measure(case, reference, cfg.registration, cfg.review)
    assert "partial_fov" in codes(m), (m.reasons, m.details["quality"])
    assert m.details["quality"]["fov_fraction"] < cfg.registration.fov_fraction_min
    assert m.details["quality"]["fov_fraction"] >= 0.25


def test_too_few_cbct_slices_for_the_box_is_short_cbct(built: Built) -> None:
    plan_case = built.planning
    cbct = write_cbct(plan_case.directory.parent / "cbct-short", plan_case, KNOWN, slices=20)
    cfg = parse_config({"registration": {"perturbation_check": False}})
    m = measure(case_of(plan_case, cbct), built.reference, cfg.registration, cfg.review)
    assert "short_cbct" in codes(m), (m.reasons, m.details["quality"])
    assert m.details["quality"]["longitudinal_coverage"] < 0.75


class _Recording:
    """An engine that records each call (start, levels, thread) and answers: the first level's
    answer for it alone, the middle level's answer for the levels before the native one (the
    middle level over the whole box from the first level's answer, or unsplit), the
    near-edge answer for the middle level's run near edges from there, the final answer for
    the native level from where the result's middle level ended, and its start for anything
    else (the restart, a cross-check)."""

    def __init__(self, name: str, concurrent: bool, answers: dict[str, np.ndarray],
                 calls: list[tuple[str, np.ndarray | None, tuple[object, ...], str]]) -> None:
        self.name = name
        self.concurrent_runs = concurrent
        self._answers, self._calls = answers, calls
        self.memos: list[tuple[tuple[Level, ...], dict[object, object]]] = []

    def register(self, problem: RegistrationProblem, *, start: np.ndarray | None = None,
                 levels: tuple[Level, ...] = DEFAULT_LEVELS) -> Any:
        import threading

        from igrt.registration import runner
        from igrt.registration.problem import RegistrationResult

        self._calls.append((self.name, start, levels, threading.current_thread().name))
        self.memos.append((levels, problem.memo))  # one append: the calls come from 2 threads
        first, whole, near, final = (self._answers[k] for k in ("first", "whole", "near",
                                                                "final"))
        after: tuple[FloatArray, ...]
        if levels == DEFAULT_LEVELS[:-1] and start is None:
            answer, after = whole, (first, whole)
        elif levels == runner._WHOLE[:1] and start is None:
            answer, after = first, (first,)
        elif levels == runner._WHOLE[1:] and start is not None and np.array_equal(start, first):
            answer, after = whole, (whole,)
        elif levels == (runner._NEAR,) and start is not None and np.array_equal(start, whole):
            answer, after = near, (near,)
        elif levels == DEFAULT_LEVELS[-1:] and start is not None and (
                np.array_equal(start, near) or np.array_equal(start, whole)):
            answer, after = final, (final,)
        else:
            answer = problem.initial if start is None else start
            after = (answer,)
        return RegistrationResult(self.name, answer, -0.5, 10 * len(levels), "minimum step",
                                  True, 0.1, level_transforms=after)


@pytest.mark.parametrize("concurrent", [True, False], ids=["side-by-side", "one-after-another"])
def test_the_restart_starts_where_the_result_goes_on_from_and_runs_beside_it(
        concurrent: bool) -> None:
    """The robustness restart starts at the middle level's answer over the whole box, moved by
    2 mm and 1° per axis, and runs what the result runs from there: the middle level's samples
    near edges and the native level (they find their way back from that far; the native level
    alone stalled 0.5 mm off on the QA cube). For an engine that allows it, on a second thread
    beside the result's run near edges and native level (the middle level's run near edges
    split off for it); else after the result, through the levels unsplit, from the middle
    level's answer. The result is the one run through all the levels; a cross-check engine
    runs from the nominal start beside them."""
    import threading

    from igrt.registration import runner
    from igrt.registration.engines import EnginePool

    calls: list[tuple[str, np.ndarray | None, tuple[object, ...], str]] = []
    center = np.array([3.0, -2.0, 5.0])
    answers = {"first": geometry.translation((0.8, 2.1, 2.9)),
               "whole": geometry.translation((1.0, 2.0, 3.0)),
               "near": geometry.translation((1.05, 2.0, 3.0)),
               "final": geometry.translation((1.1, 2.0, 3.0))}
    first, whole, near, final = (answers[k] for k in ("first", "whole", "near", "final"))
    edges = np.zeros((2, 2, 2), bool)
    edges[0] = True
    problem = RegistrationProblem(
        fixed=Volume(voxels=np.zeros((2, 2, 2), np.float32), origin_mm=(0.0, 0.0, 0.0),
                     spacing_mm=(1.0, 1.0, 1.0)),
        fixed_mask=np.ones((2, 2, 2), bool), reference=cast(PlanningReference, None),
        initial=np.eye(4), center_mm=center, edge_masks=lambda: (edges, edges))
    primary = _Recording("primary", concurrent, answers, calls)
    crossing = _Recording("other", False, answers, calls)
    pool = cast(EnginePool, dataclasses.make_dataclass("Pool", ["primary", "cross_check"])(
        primary, crossing))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as side:
        runs = runner._register(pool, problem, side, restart=True)
        assert runs.restart is not None and runs.cross_check is not None
        again, crossed = runs.restart.result(), runs.cross_check.result()

    main = threading.current_thread().name
    by = {(name, lv): (start, thread) for name, start, lv, thread in calls}
    head = runner._WHOLE[:1] if concurrent else DEFAULT_LEVELS[:-1]
    assert DEFAULT_LEVELS[1].near_edges == "refine"  # the level _WHOLE and _NEAR split
    assert [lv.near_edges for lv in runner._WHOLE] == ["", ""]
    assert (runner._NEAR.voxel_mm, runner._NEAR.near_edges) == (2.0, "inset")
    assert len(calls) == (6 if concurrent else 4)
    start, thread = by[("primary", head)]
    assert start is None and thread == main
    if concurrent:  # the first level alone (the native planning part smoothed from its answer)
        start, thread = by[("primary", runner._WHOLE[1:])]
        np.testing.assert_array_equal(start, first)
        assert thread == main
        start, thread = by[("primary", (runner._NEAR,))]
        np.testing.assert_array_equal(start, whole)
        assert thread == main
    start, thread = by[("primary", DEFAULT_LEVELS[-1:])]
    np.testing.assert_array_equal(start, near if concurrent else whole)
    assert thread == main
    start, thread = by[("primary", runner.RESTART_LEVELS)]
    assert start is not None
    np.testing.assert_allclose(start, whole @ runner._perturbation(center))
    assert (thread != main) is concurrent
    moved = geometry.apply(start, center) - geometry.apply(whole, center)
    assert np.linalg.norm(moved) == pytest.approx(np.linalg.norm(runner.PERTURBATION_MM), abs=1e-6)
    assert [(lv.voxel_mm, lv.near_edges, lv.phases, lv.planning_smoothing_mm)
            for lv in runner.RESTART_LEVELS] == [
                (2.0, "inset", 1, DEFAULT_LEVELS[1].planning_smoothing_mm),  # the result's images
                (0.0, "only", 1, DEFAULT_LEVELS[2].smoothing_mm)]
    assert runner.RESTART_LEVELS[0] == runner._NEAR  # the very run the result makes near edges
    start, thread = by[("other", DEFAULT_LEVELS)]
    assert start is None and thread != main  # another engine: beside the primary
    np.testing.assert_array_equal(runs.result.transform, final)
    assert runs.result.iterations == 10 * (len(DEFAULT_LEVELS) + (1 if concurrent else 0))
    assert len(runs.result.level_transforms) == len(DEFAULT_LEVELS)
    np.testing.assert_array_equal(runs.result.level_transforms[0], first)
    np.testing.assert_array_equal(runs.result.level_transforms[1], near if concurrent else whole)
    np.testing.assert_array_equal(runs.result.level_transforms[-1], final)
    np.testing.assert_allclose(again.transform, whole @ runner._perturbation(center))
    assert crossed.engine == "other"
    # the result's runs share the problem's memo; a run on another thread has its own
    memo_of = dict(primary.memos)
    assert len(memo_of) == (5 if concurrent else 3)
    assert memo_of[head] is problem.memo
    assert memo_of[DEFAULT_LEVELS[-1:]] is problem.memo
    assert (memo_of[runner.RESTART_LEVELS] is problem.memo) is not concurrent
    assert crossing.memos[0][1] is not problem.memo


def test_measure_compares_the_restart_with_the_final_result_and_raises_its_errors(
        built: Built) -> None:
    """What the robustness check measures is the restart against the final result (not the
    middle level's answer it started from), and a restart that fails on its thread fails the
    registration."""
    from igrt.registration import runner
    from igrt.registration.engines import EnginePool

    final_moved = geometry.translation((1.0, 0.0, 0.0))
    restart_moved = geometry.translation((0.3, 0.0, 0.0))

    class Planned:
        name = "planned"
        concurrent_runs = True

        def __init__(self, fail: bool) -> None:
            self.fail = fail

        def register(self, problem: RegistrationProblem, *, start: np.ndarray | None = None,
                     levels: tuple[Level, ...] = DEFAULT_LEVELS) -> Any:
            from igrt.registration.problem import RegistrationResult

            if levels == runner.RESTART_LEVELS:
                if self.fail:
                    raise NoOverlapError("the restart's region maps outside the planning CT")
                answer = restart_moved @ final_moved @ problem.initial
            elif levels == DEFAULT_LEVELS[-1:]:
                answer = final_moved @ problem.initial
            else:
                answer = problem.initial
            return RegistrationResult(self.name, answer, -0.5, 5, "minimum step", True, 0.1,
                                      level_transforms=(answer,))

    cfg = parse_config({"registration": {"roi_size_mm": list(BOX_MM)}})
    make = dataclasses.make_dataclass("Pool", ["primary", "cross_check"])
    m = measure(built.case, built.reference, cfg.registration, cfg.review,
                engines=cast(EnginePool, make(Planned(False), None)))
    assert m.details["perturbation"]["translation_mm"] == pytest.approx(0.3, abs=1e-3)
    with pytest.raises(NoOverlapError, match="restart's region"):
        measure(built.case, built.reference, cfg.registration, cfg.review,
                engines=cast(EnginePool, make(Planned(True), None)))


def test_the_masks_near_edges_are_made_beside_and_only_the_levels_using_them_wait(
        built: Built) -> None:
    """``prepare`` hands the masks near edges over as a call (they are made on a thread while
    the first levels run): the whole box's mask never asks for them, ``"only"`` and
    ``"refine"`` get exactly the masks made from the CBCT's edges."""
    from igrt.registration import cbct_levels, runner, structure

    cfg = parse_config({"registration": {"roi_size_mm": list(BOX_MM)}})
    problem = runner.prepare(built.case, built.reference, cfg.registration)
    edges = structure.strong_edges(problem.fixed)
    inner = region.inside_box(problem.fixed, problem.center_mm,
                              np.asarray(BOX_MM) - 2 * structure.BOX_INSET_MM)
    expected = (structure.near_edges(edges, problem.fixed_mask),
                structure.near_edges(edges, problem.fixed_mask & inner, both_sides=False))
    assert problem.edge_masks is not None
    for made, wanted in zip(problem.edge_masks(), expected, strict=True):
        assert made is not None and wanted is not None
        np.testing.assert_array_equal(made, wanted)
    assert problem.sample_mask is not None and problem.refine_mask is not None

    def not_yet() -> tuple[None, None]:
        raise AssertionError("the masks near edges were waited for")

    waiting = dataclasses.replace(problem, edge_masks=not_yet, memo={})
    cbct_levels.mask(waiting, (2, 2, 1))  # the whole box's mask: made without them
    assert cbct_levels.mask_name(waiting, "") == ""
    for near in ("only", "refine"):
        with pytest.raises(AssertionError, match="waited for"):
            cbct_levels.mask(waiting, (1, 1, 1), near=near)


def test_the_native_cbct_level_is_made_once_beside_for_the_problem_and_its_copies(
        built: Built) -> None:
    """``prepare`` makes the native level's CBCT pixels on its thread, after the masks near
    edges; the problem and a copy with a memo of its own (the restart's, on another thread)
    read those same pixels, each through a SimpleITK image of its own, equal to the level made
    from scratch."""
    import threading

    from igrt.registration import cbct_levels, runner
    from igrt.registration.reference import fixed_factors, level_images
    from igrt.registration.sitk_images import to_sitk

    cfg = parse_config({"registration": {"roi_size_mm": list(BOX_MM)}})
    before = set(threading.enumerate())
    problem = runner.prepare(built.case, built.reference, cfg.registration)
    assert problem.edge_masks is not None
    problem.edge_masks()
    for thread in set(threading.enumerate()) - before:  # its own: on to the native level
        if thread.name == "igrt-edge-masks":
            thread.join(60)
    native = DEFAULT_LEVELS[-1]
    factors = fixed_factors(problem.fixed.spacing_mm, native)

    def again() -> cbct_levels.LevelPixels:
        raise AssertionError("made twice")

    made = problem.shared.get(("cbct-image", factors, float(native.smoothing_mm)), again)
    assert not made.pixels.flags.writeable
    copy = runner._own_memo(problem)
    assert copy.shared is problem.shared and copy.memo is not problem.memo
    mine = cbct_levels.image(problem, factors, native.smoothing_mm)
    theirs = cbct_levels.image(copy, factors, native.smoothing_mm)
    assert mine is not theirs
    assert cbct_levels.image(problem, factors, native.smoothing_mm) is mine  # the memo's
    other = dataclasses.replace(problem, fixed=dataclasses.replace(problem.fixed), memo={})
    with pytest.raises(ValueError, match="another CBCT region"):
        cbct_levels.image(other, factors, native.smoothing_mm)  # never another region's pixels
    scratch = level_images(to_sitk(problem.fixed), None, factors, native.smoothing_mm).image
    for image in (mine, theirs):
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image),
                                      sitk.GetArrayViewFromImage(scratch))
        assert image.GetOrigin() == scratch.GetOrigin()
        assert image.GetSpacing() == scratch.GetSpacing()


def test_the_middle_level_split_in_two_registrations_is_the_run_through_it(built: Built) -> None:
    """The first level alone, the middle level over the whole box from there (``runner._WHOLE``
    split, so that the native level's planning part is smoothed ahead from the first level's
    answer), then ``runner._NEAR`` (the result's middle level split, so that the restart can
    start beside its run near edges) give exactly what the engine's run through the levels
    before the native one gives, on the real engine."""
    from igrt.registration import runner
    from igrt.registration.sitk_engine import SimpleItkEngine

    cfg = parse_config({"registration": {"roi_size_mm": list(BOX_MM)}})
    problem = runner.prepare(built.case, built.reference, cfg.registration)
    assert problem.refine_mask is not None
    engine = SimpleItkEngine()
    through = engine.register(runner._own_memo(problem), levels=DEFAULT_LEVELS[:-1])
    split = runner._own_memo(problem)
    first = engine.register(split, levels=runner._WHOLE[:1])
    whole = engine.register(split, start=first.transform, levels=runner._WHOLE[1:])
    near = engine.register(split, start=whole.transform, levels=(runner._NEAR,))
    # the same optimisations (ITK's threads may sum in another order: 1e-13 apart)
    np.testing.assert_allclose(near.transform, through.transform, atol=1e-9)
    np.testing.assert_allclose(first.transform, through.level_transforms[0], atol=1e-9)
    assert first.iterations + whole.iterations + near.iterations == through.iterations


def test_without_samples_near_edges_the_middle_level_runs_over_the_whole_box_only() -> None:
    """No ``refine_mask`` (a CBCT with too few edges): no run near edges is split off; the
    native level starts at the whole box's answer, which is also the middle level's."""
    from concurrent.futures import ThreadPoolExecutor

    from igrt.registration import runner
    from igrt.registration.engines import EnginePool

    calls: list[tuple[str, np.ndarray | None, tuple[object, ...], str]] = []
    answers = {"first": geometry.translation((0.8, 2.1, 2.9)),
               "whole": geometry.translation((1.0, 2.0, 3.0)),
               "near": geometry.translation((1.05, 2.0, 3.0)),
               "final": geometry.translation((1.1, 2.0, 3.0))}
    problem = RegistrationProblem(
        fixed=Volume(voxels=np.zeros((2, 2, 2), np.float32), origin_mm=(0.0, 0.0, 0.0),
                     spacing_mm=(1.0, 1.0, 1.0)),
        fixed_mask=np.ones((2, 2, 2), bool), reference=cast(PlanningReference, None),
        initial=np.eye(4), center_mm=np.zeros(3), edge_masks=lambda: (None, None))
    primary = _Recording("primary", True, answers, calls)
    pool = cast(EnginePool, dataclasses.make_dataclass("Pool", ["primary", "cross_check"])(
        primary, None))
    with ThreadPoolExecutor(2) as side:
        runs = runner._register(pool, problem, side, restart=True)
        assert runs.restart is not None
        runs.restart.result()
    assert [lv for _, _, lv, _ in calls if lv == (runner._NEAR,)] == []
    native = next(start for _, start, lv, _ in calls if lv == DEFAULT_LEVELS[-1:])
    np.testing.assert_array_equal(native, answers["whole"])
    np.testing.assert_array_equal(runs.result.transform, answers["final"])
    np.testing.assert_array_equal(runs.result.level_transforms[1], answers["whole"])


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (3, 1), (8, 4)])
def test_each_optimisation_on_half_the_cores(monkeypatch: pytest.MonkeyPatch, cores: int,
                                             threads: int) -> None:
    """Two optimisations run side by side (the result and the restart): each one's ITK
    metric gets half the cores this process may use, at least one; a number given to the
    engine wins; ITK's own setting, when the environment gives one, is left alone."""
    from igrt.registration import threads as igrt_threads
    from igrt.registration.reference import LevelImages

    monkeypatch.delenv("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", raising=False)
    monkeypatch.setattr(igrt_threads, "usable_cores", lambda: cores)
    image = sitk.Image(8, 8, 8, sitk.sitkFloat32)
    images = LevelImages((1, 1, 1), 0.0, image, None)
    method = SimpleItkEngine()._method(DEFAULT_LEVELS[0], images, images, 1.0)
    assert method.GetNumberOfThreads() == threads
    method = SimpleItkEngine(threads=3)._method(DEFAULT_LEVELS[0], images, images, 1.0)
    assert method.GetNumberOfThreads() == 3
    monkeypatch.setenv("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "5")
    assert igrt_threads.run_threads() is None
    with pytest.raises(ValueError, match="at least 1"):
        SimpleItkEngine(threads=0)
