"""``igrt register``: the offline path from DICOM directories to a correction message, with
phantoms at known corrections, and every refusal of the issue with its reason."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from phantom_cases import errors, planning_set

from igrt.config import default_config, parse_config
from igrt.core.geometry import CouchCorrection, PatientPosition
from igrt.offline import register_offline
from phantoms.generator import write_cbct, write_planning_set

HFS, FFS, HFP, FFP = (PatientPosition.HFS, PatientPosition.FFS, PatientPosition.HFP,
                      PatientPosition.FFP)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("offline")


# --- CONTRACT §1 worked examples, end to end: exact to 0.05 mm / 0.05° --------------------------
@pytest.mark.parametrize(
    ("position", "known"),
    [
        pytest.param(HFS, CouchCorrection(0, -5.0, 0, 0, 0, 0), id="HFS-toward-gantry"),
        pytest.param(FFS, CouchCorrection(0, -5.0, 0, 0, 0, 0), id="FFS-toward-gantry"),
        pytest.param(HFS, CouchCorrection(0, 0, 3.0, 0, 0, 0), id="HFS-lowered"),
        pytest.param(HFS, CouchCorrection(0, 0, 0, 0, 0, -1.5), id="HFS-yaw"),
    ],
)
def test_worked_examples(root: Path, position: PatientPosition, known: CouchCorrection) -> None:
    plan = planning_set(root, position=position)
    cbct = write_cbct(root / f"we-{position}-{known}", plan, known, frame="origin")
    message = register_offline(plan.directory, cbct.directory, default_config())
    assert message["status"] == "ok", message["reasons"]
    err_mm, err_deg = errors(message["measured"], known)
    assert err_mm <= 0.05 and err_deg <= 0.05, (err_mm, err_deg, message["measured"])


# --- all positions and frame conventions, degraded CBCT ---------------------------------------
@pytest.mark.parametrize(
    ("position", "frame", "known"),
    [
        pytest.param(HFS, "planning", CouchCorrection(6, -4, 3, 1.5, -1, 2), id="HFS-planning"),
        pytest.param(FFS, "sro", CouchCorrection(-7, 9, -5, -2, 2.5, -1), id="FFS-sro"),
        pytest.param(HFP, "origin", CouchCorrection(4, 6, 12, 3, -1.5, 2), id="HFP-origin"),
        pytest.param(FFP, "center", CouchCorrection(-11, -3, 5.5, 1, 2, -3), id="FFP-center"),
    ],
)
def test_positions_and_frames(root: Path, position: PatientPosition, frame: str,
                              known: CouchCorrection) -> None:
    plan = planning_set(root, position=position)
    cbct = write_cbct(root / f"pf-{position}-{frame}", plan, known, frame=frame, deform_mm=1.0)
    config = parse_config({"registration": {"cbct_isocenter": "center"}}) \
        if frame == "center" else default_config()
    message = register_offline(plan.directory, cbct.directory, config)
    assert message["registration"]["nominal"] == {
        "planning": "frame_of_reference", "sro": "spatial_registration",
        "origin": "origin", "center": "center"}[frame]
    err_mm, err_deg = errors(message["measured"], known)
    assert err_mm <= 0.3 and err_deg <= 0.15, (err_mm, err_deg)


def test_capture_range_30mm_5deg(root: Path) -> None:
    plan = planning_set(root)
    known = CouchCorrection(18.0, -17.0, 16.0, 5.0, -5.0, 5.0)
    cbct = write_cbct(root / "capture", plan, known)
    message = register_offline(plan.directory, cbct.directory, default_config())
    err_mm, err_deg = errors(message["measured"], known)
    assert err_mm <= 0.3 and err_deg <= 0.15, (err_mm, err_deg)
    # beyond the default review limits (10 mm, 3°): computed, but for review, with the reasons
    assert message["status"] == "review"
    codes = {r.split(":")[0] for r in message["reasons"]}
    assert codes == {"translation_limit", "rotation_limit"}


def test_cube_phantom_sanity_band(root: Path) -> None:
    # A sanity band, not the accuracy bar: the near-uniform QA cube with CBCT cupping is not yet
    # within 0.3 mm / 0.15° (measured 0.42 mm here; README, known limitations).
    plan = planning_set(root, phantom="cube", patient_id="CUBE-1")
    known = CouchCorrection(2.0, 3.0, -1.0, 0.0, 0.0, 0.0)
    cbct = write_cbct(root / "cube", plan, known)
    message = register_offline(plan.directory, cbct.directory, default_config())
    err_mm, err_deg = errors(message["measured"], known)
    assert err_mm <= 1.0 and err_deg <= 0.5, (err_mm, err_deg)


@pytest.mark.parametrize(("dof", "expected_rotations"), [(6, (1.0, -1.0, 2.0)), (4, (0, 0, 2.0)),
                                                          (3, (0, 0, 0))])
def test_couch_dof(root: Path, dof: int, expected_rotations: tuple[float, ...]) -> None:
    plan = planning_set(root)
    known = CouchCorrection(2.0, -3.0, 1.0, 1.0, -1.0, 2.0)
    cbct = write_cbct(root / f"dof-{dof}", plan, known)
    message = register_offline(plan.directory, cbct.directory,
                               parse_config({"couch": {"dof": dof}}))
    c = message["correction"]
    assert (c["pitch_deg"], c["roll_deg"], c["rotation_deg"]) == pytest.approx(
        expected_rotations, abs=0.1)
    assert c["lateral_mm"] == pytest.approx(2.0, abs=0.2)
    assert message["measured"]["pitch_deg"] == pytest.approx(1.0, abs=0.15)


# --- the command itself -----------------------------------------------------------------------
def _igrt() -> str:
    return str(Path(sys.executable).with_name("igrt"))


def test_cli_prints_one_message_and_exits_0(root: Path) -> None:
    plan = planning_set(root)
    known = CouchCorrection(1.0, 2.0, -1.5, 0, 0, 0.5)
    cbct = write_cbct(root / "cli-ok", plan, known)
    proc = subprocess.run([_igrt(), "register", "--planning", str(plan.directory), "--cbct",
                           str(cbct.directory)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    message = json.loads(proc.stdout)
    assert message["schema"] == "igrt/correction/v1"
    assert message["patient_id"] == plan.patient_id
    assert message["cbct"]["series_uid"] == cbct.series_uid
    assert message["plan"]["sop_instance_uid"] == plan.plan_uid
    err_mm, err_deg = errors(message["measured"], known)
    assert err_mm <= 0.3 and err_deg <= 0.15


def test_cli_refusal_prints_failed_and_exits_nonzero(root: Path) -> None:
    plan = planning_set(root)
    cbct = write_cbct(root / "cli-wrong-patient", plan, CouchCorrection.zero(),
                      patient_id="SOMEONE-ELSE")
    proc = subprocess.run([_igrt(), "register", "--planning", str(plan.directory), "--cbct",
                           str(cbct.directory)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 1
    message = json.loads(proc.stdout)
    assert message["status"] == "failed"
    assert message["correction"] is None and message["measured"] is None
    assert message["reasons"][0].startswith("patient_mismatch:")
    assert "SOMEONE-ELSE" in message["reasons"][0]


def test_cli_config_error_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[couch]\ndof = 5\n")
    proc = subprocess.run([_igrt(), "register", "--planning", str(tmp_path), "--cbct",
                           str(tmp_path), "--config", str(bad)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2
    assert "couch.dof" in proc.stderr


# --- refusals (issue points 2, 3, 7), each with its reason -------------------------------------
def _failed(message: dict, code: str) -> str:
    assert message["status"] == "failed", message
    assert message["correction"] is None and message["measured"] is None
    assert message["reasons"][0].startswith(f"{code}:"), message["reasons"]
    return str(message["reasons"][0])


def test_wrong_patient_is_refused(root: Path) -> None:
    plan = planning_set(root)
    cbct = write_cbct(root / "wrong-patient", plan, CouchCorrection.zero(), patient_id="P-2")
    message = register_offline(plan.directory, cbct.directory, default_config())
    assert "'P-2'" in _failed(message, "patient_mismatch")


def test_no_plan_is_refused(root: Path, tmp_path: Path) -> None:
    plan = planning_set(root)
    cbct = write_cbct(root / "no-plan", plan, CouchCorrection.zero())
    planning = tmp_path / "planning"
    shutil.copytree(plan.directory, planning)
    for f in planning.iterdir():
        if f.is_file() and f.suffix == ".dcm" and pydicom.dcmread(
                f, stop_before_pixels=True).Modality == "RTPLAN":
            f.unlink()
    message = register_offline(planning, cbct.directory, default_config())
    _failed(message, "no_plan")


def test_incomplete_series_is_refused(root: Path, tmp_path: Path) -> None:
    plan = planning_set(root)
    cbct = write_cbct(root / "incomplete", plan, CouchCorrection.zero())
    partial = tmp_path / "cbct"
    shutil.copytree(cbct.directory, partial)
    slices = sorted(partial.glob("*.dcm"),
                    key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True)
                                        .ImagePositionPatient[2]))
    slices[len(slices) // 2].unlink()
    message = register_offline(plan.directory, partial, default_config())
    assert "missing" in _failed(message, "missing_slice")


def test_mixed_cbct_directory_is_refused(root: Path, tmp_path: Path) -> None:
    plan = planning_set(root)
    a = write_cbct(root / "mixed-a", plan, CouchCorrection.zero(), seed=3)
    b = write_cbct(root / "mixed-b", plan, CouchCorrection.zero(), seed=4)
    both = tmp_path / "both"
    shutil.copytree(a.directory, both / "a")
    shutil.copytree(b.directory, both / "b")
    message = register_offline(plan.directory, both, default_config())
    _failed(message, "mixed_series")


def test_not_ct_is_refused(root: Path, tmp_path: Path) -> None:
    plan = planning_set(root)
    only_plan = tmp_path / "cbct"
    only_plan.mkdir()
    for f in plan.directory.glob("*.dcm"):
        if pydicom.dcmread(f, stop_before_pixels=True).Modality == "RTPLAN":
            shutil.copy(f, only_plan / f.name)
    message = register_offline(plan.directory, only_plan, default_config())
    assert "no CT image series" in _failed(message, "series")


def test_several_isocentres_refused_unless_one_is_chosen(root: Path) -> None:
    base = planning_set(root)
    iso = base.isocenter_mm
    plan = write_planning_set(root / "two-isos", patient_id="TWO-ISO", size="small",
                              isocenters_mm=[iso, (iso[0] + 40.0, iso[1], iso[2] + 20.0)])
    known = CouchCorrection(1.0, -2.0, 1.5, 0, 0, 0)
    cbct = write_cbct(root / "two-isos-cbct", plan, known)
    refused = register_offline(plan.directory, cbct.directory, default_config())
    assert "isocentres" in _failed(refused, "multiple_isocentres")
    chosen = register_offline(plan.directory, cbct.directory, default_config(),
                              isocenter_index=0)
    err_mm, _ = errors(chosen["measured"], known)
    assert err_mm <= 0.3


def test_several_plans_refused_unless_one_is_selected(root: Path, tmp_path: Path) -> None:
    plan = planning_set(root)
    known = CouchCorrection(0.5, 1.0, -0.5, 0, 0, 0)
    cbct = write_cbct(root / "two-plans", plan, known)
    planning = tmp_path / "planning"
    shutil.copytree(plan.directory, planning)
    for f in list(planning.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        if ds.Modality == "RTPLAN":
            ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.99" + str(len(ds.SOPInstanceUID))
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.RTPlanLabel = "SECOND"
            ds.save_as(planning / "second-plan.dcm")
    refused = register_offline(planning, cbct.directory, default_config())
    _failed(refused, "ambiguous_plan")
    chosen = register_offline(planning, cbct.directory, default_config(),
                              plan_uid=plan.plan_uid)
    assert chosen["plan"]["sop_instance_uid"] == plan.plan_uid
    assert chosen["status"] == "ok"


def test_the_planning_side_is_prepared_ahead_for_the_cbcts_grid(root: Path) -> None:
    """The planning thread prepares the planning CT for the grid the CBCT's headers give, before
    its pixels are assembled; the pipeline finds it under the key of the assembled CBCT's grid
    (a different grid would be a cache miss: prepared again, ``planning_prepared_before``
    false)."""
    plan = planning_set(root)
    cbct = write_cbct(root / "ahead", plan, CouchCorrection(1.0, -2.0, 0.5, 0, 0, 0),
                      frame="origin")
    message = register_offline(plan.directory, cbct.directory, default_config())
    assert message["status"] == "ok", message["reasons"]
    assert message["registration"]["planning_prepared_before"] is True


def test_a_grid_given_before_the_cbct_is_read_prepares_the_planning_side_for_it(
        root: Path) -> None:
    """``OfflineRegistration.cbct_grid`` (the grid ``igrt register``'s child sends from the
    headers): the planning side is prepared for it before the CBCT series is handed over, and
    the pipeline finds it prepared; ``cancel`` after a grid stops the planning thread before
    it prepares anything for it."""
    from igrt.offline import OfflineRegistration
    from igrt.planning.directory import DirectoryCbct, header_grid

    plan = planning_set(root)
    cbct = write_cbct(root / "grid-first", plan, CouchCorrection(0.5, 1.0, -1.0, 0, 0, 0),
                      frame="origin")
    grid = header_grid(DirectoryCbct(cbct.directory).decoded())
    assert grid is not None
    run = OfflineRegistration(plan.directory, default_config())
    run.cbct_grid(grid)
    assert run._built.wait(60)  # built for the grid, with no CBCT series handed over yet
    assert len(run._references) == 1
    message = run.register(cbct.directory)
    assert message["status"] == "ok", message["reasons"]
    assert message["registration"]["planning_prepared_before"] is True

    stopped = OfflineRegistration(plan.directory, default_config())
    stopped._stop.set()  # as cancel() does, before the grid arrives
    stopped.cbct_grid(grid)
    stopped.cancel()
    assert not stopped._ahead.is_alive()
    assert len(stopped._references) == 0  # nothing was prepared for the grid


def test_simpleitk_is_warmed_while_the_planning_side_is_built_and_only_then(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While ``register`` waits for the planning thread it pays SimpleITK's one-time start-up
    (``sitk_engine.warm_up``); not when the planning side is built already."""
    from igrt import offline
    from igrt.planning.directory import DirectoryCbct, header_grid

    plan = planning_set(root)
    cbct = write_cbct(root / "warm", plan, CouchCorrection(0.5, -1.0, 1.0, 0, 0, 0),
                      frame="origin")
    calls: list[bool] = []
    real = offline.warm_up

    def warm() -> None:
        calls.append(True)
        real()

    monkeypatch.setattr(offline, "warm_up", warm)
    waiting = offline.OfflineRegistration(plan.directory, default_config())
    message = waiting.register(cbct.directory)  # the grid comes with the series: not built yet
    assert message["status"] == "ok", message["reasons"]
    assert calls == [True]

    grid = header_grid(DirectoryCbct(cbct.directory).decoded())
    built = offline.OfflineRegistration(plan.directory, default_config())
    built.cbct_grid(grid)
    assert built._built.wait(60)
    assert built.register(cbct.directory)["status"] == "ok"
    assert calls == [True]  # a planning side built already: nothing to wait for, no warm-up
