"""``igrt register`` with the plans planning systems really export: a plan without a Frame of
Reference of its own (Eclipse, Monaco) takes its structure set's; one whose structure set is
absent is refused with the reason; UNAPPROVED gives at most review, REJECTED is never used. The
correction message names the patient and the CBCT's acquisition time."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from phantom_cases import errors, planning_set

from igrt.config import default_config
from igrt.core.geometry import CouchCorrection
from igrt.offline import register_offline
from phantoms.generator import PlanningCase, write_cbct

KNOWN = CouchCorrection(2.0, -3.0, 1.5, 0.5, 0.0, -0.5)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("offline-plans")


def edited_copy(plan: PlanningCase, target: Path, *, drop_frame: bool = False,
                approval: str | None = None, drop_structure_set: bool = False) -> Path:
    shutil.copytree(plan.directory, target)
    for path in target.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        if ds.Modality == "RTSTRUCT" and drop_structure_set:
            path.unlink()
        elif ds.Modality == "RTPLAN":
            if drop_frame:
                del ds.FrameOfReferenceUID
            if approval is not None:
                ds.ApprovalStatus = approval
            ds.save_as(path)
    return target


def test_a_plan_without_a_frame_takes_its_structure_sets(root: Path) -> None:
    plan = planning_set(root)
    planning = edited_copy(plan, root / "no-frame", drop_frame=True)
    cbct = write_cbct(root / "cbct-1", plan, KNOWN)
    message = register_offline(planning, cbct.directory, default_config())
    assert message["status"] == "ok", message["reasons"]
    err_mm, err_deg = errors(message["measured"], KNOWN)
    assert err_mm <= 0.3 and err_deg <= 0.15
    assert message["patient_name"] == "PHANTOM^BODY"
    assert message["cbct"]["acquisition_datetime"] == "2026-03-16T10:15:00"


def test_without_frame_and_without_its_structure_set_it_is_refused(root: Path) -> None:
    plan = planning_set(root)
    planning = edited_copy(plan, root / "no-frame-no-ss", drop_frame=True,
                           drop_structure_set=True)
    cbct = write_cbct(root / "cbct-2", plan, KNOWN)
    message = register_offline(planning, cbct.directory, default_config())
    assert message["status"] == "failed"
    assert message["reasons"] == [
        f"plan: RT Plan {plan.plan_uid} has no Frame of Reference UID (0020,0052) and its "
        f"referenced RT Structure Set {plan.structure_set_uid} has not been received or names "
        "no frame; send the structure set or a plan with a frame"]


def test_an_unapproved_plan_gives_at_most_review(root: Path) -> None:
    plan = planning_set(root)
    planning = edited_copy(plan, root / "unapproved", approval="UNAPPROVED")
    cbct = write_cbct(root / "cbct-3", plan, KNOWN)
    message = register_offline(planning, cbct.directory, default_config())
    assert message["status"] == "review"
    assert [r.split(":")[0] for r in message["reasons"]] == ["unapproved_plan"]
    assert message["measured"] is not None


def test_a_rejected_plan_is_never_used(root: Path) -> None:
    plan = planning_set(root)
    planning = edited_copy(plan, root / "rejected", approval="REJECTED")
    cbct = write_cbct(root / "cbct-4", plan, KNOWN)
    message = register_offline(planning, cbct.directory, default_config())
    assert message["status"] == "failed" and message["correction"] is None
    assert message["reasons"][0].startswith(f"rejected_plan: plan {plan.plan_uid}")
