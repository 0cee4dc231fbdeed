"""igrt.store.planning_index: plans, planning CTs, structure sets, spatial registrations and
the plan selection, on a real store."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_factory import (
    CBCT_FRAME,
    CT_CLASS,
    PLAN_CLASS,
    PLAN_FRAME,
    REG_CLASS,
    STRUCT_CLASS,
    meta,
)

from igrt.core.errors import (
    InvalidUidError,
    StoreError,
    UnknownPlanError,
)
from igrt.core.kinds import InstanceKind, Role
from igrt.store import (
    InstanceMeta,
    Store,
)


# --- planning index and plan selection -----------------------------------------------------------
def planning(sop: str, kind: InstanceKind, **overrides: object) -> InstanceMeta:
    classes = {
        InstanceKind.CT_IMAGE: CT_CLASS,
        InstanceKind.RT_PLAN: PLAN_CLASS,
        InstanceKind.RT_STRUCT: STRUCT_CLASS,
        InstanceKind.SPATIAL_REGISTRATION: REG_CLASS,
    }
    fields: dict[str, object] = {
        "sop_class_uid": classes[kind],
        "sop_instance_uid": sop,
        "series_uid": sop.rsplit(".", 1)[0],
        "patient_id": "PAT-001",
        "frame_of_reference_uid": PLAN_FRAME,
        "modality": {InstanceKind.RT_PLAN: "RTPLAN", InstanceKind.RT_STRUCT: "RTSTRUCT"}.get(
            kind, "CT"
        ),
        "kind": kind,
        "role": Role.PLANNING,
        "calling_ae": "TPS",
        "association_id": "tps-1",
    }
    fields.update(overrides)
    return meta(**fields)


@pytest.fixture
def planned(store: Store) -> Store:
    received: list[tuple[str, InstanceKind, dict[str, object]]] = [
        ("1.5.10.1", InstanceKind.CT_IMAGE, {}),
        ("1.5.10.2", InstanceKind.CT_IMAGE, {}),
        ("1.5.11.1", InstanceKind.CT_IMAGE, {"frame_of_reference_uid": "1.9.9"}),
        ("1.5.20.1", InstanceKind.RT_PLAN, {"label": "Prostate"}),
        ("1.5.21.1", InstanceKind.RT_PLAN, {"label": "Boost", "frame_of_reference_uid": None}),
        (
            "1.5.30.1",
            InstanceKind.RT_STRUCT,
            {"frame_of_reference_uid": None, "referenced_frame_uids": (PLAN_FRAME,)},
        ),
        ("1.6.20.1", InstanceKind.RT_PLAN, {"patient_id": "PAT-002", "study_uid": "1.2.3.2"}),
    ]
    for sop, kind, extra in received:
        store.store_instance(data=b"p", meta=planning(sop, kind, **extra))
    # a CBCT in the planning frame (CONTRACT §2 case 1) from the imaging peer, and its SRO
    store.store_instance(
        data=b"c", meta=meta(patient_id="PAT-001", frame_of_reference_uid=PLAN_FRAME)
    )
    store.store_instance(
        data=b"r",
        meta=meta(
            sop_class_uid=REG_CLASS,
            sop_instance_uid="1.7.40.1",
            series_uid="1.7.40",
            patient_id="PAT-001",
            frame_of_reference_uid=PLAN_FRAME,
            modality="REG",
            kind=InstanceKind.SPATIAL_REGISTRATION,
            referenced_frame_uids=(CBCT_FRAME,),
            referenced_series_uids=("1.2.3.100",),
        ),
    )
    return store


def test_planning_index_queries(planned: Store) -> None:
    plans = planned.plans_for_patient("PAT-001")
    assert [(p.sop_instance_uid, p.label, p.frame_of_reference_uid) for p in plans] == [
        ("1.5.20.1", "Prostate", PLAN_FRAME),
        ("1.5.21.1", "Boost", None),
    ]
    assert plans[0].path.read_bytes() == b"p"
    assert plans[0].received_at == "2026-11-21T18:30:03.000Z"
    assert planned.plans_for_patient("PAT-404") == []
    # the CBCT shares the planning frame but comes from the imaging peer: never a planning CT
    assert planned.ct_series_for_frame("PAT-001", PLAN_FRAME) == ["1.5.10"]
    assert planned.ct_series_for_frame("PAT-002", PLAN_FRAME) == []
    structs = planned.structure_sets_for_frame("PAT-001", PLAN_FRAME)
    assert [(s.sop_instance_uid, s.referenced_frame_uids) for s in structs] == [
        ("1.5.30.1", (PLAN_FRAME,))
    ]
    assert [r.sop_instance_uid for r in planned.spatial_registrations_for_series("1.2.3.100")] == [
        "1.7.40.1"
    ]
    for frame in (PLAN_FRAME, CBCT_FRAME):
        found = planned.spatial_registrations_for_frame("PAT-001", frame)
        assert [r.sop_instance_uid for r in found] == ["1.7.40.1"]
    assert planned.spatial_registrations_for_frame("PAT-002", PLAN_FRAME) == []
    record = planned.instance("1.7.40.1")
    assert record is not None and record.referenced_series_uids == ("1.2.3.100",)


@pytest.mark.parametrize(
    ("patient", "plan", "error", "message"),
    [
        pytest.param(
            "PAT-001",
            "1.5.99.1",
            UnknownPlanError,
            "RT Plan 1.5.99.1 cannot be selected for patient 'PAT-001': no such plan was "
            "received from a planning peer; plans received for this patient: 1.5.20.1, 1.5.21.1",
            id="unknown-plan",
        ),
        pytest.param(
            "PAT-001",
            "1.6.20.1",
            UnknownPlanError,
            "RT Plan 1.6.20.1 cannot be selected for patient 'PAT-001': that plan was received "
            "for another patient; plans received for this patient: 1.5.20.1, 1.5.21.1",
            id="other-patients-plan",
        ),
        pytest.param(
            "PAT-404",
            "1.5.20.1",
            UnknownPlanError,
            "RT Plan 1.5.20.1 cannot be selected for patient 'PAT-404': that plan was received "
            "for another patient; plans received for this patient: none",
            id="unknown-patient",
        ),
        pytest.param(
            "PAT-001",
            "1.5.10.1",
            UnknownPlanError,
            "RT Plan 1.5.10.1 cannot be selected for patient 'PAT-001': no such plan",
            id="a-ct-is-not-a-plan",
        ),
        pytest.param(
            "PAT-001", "1.5.x", InvalidUidError, "the plan UID '1.5.x' is not", id="bad-uid"
        ),
    ],
)
def test_select_plan_refuses_what_was_not_received_for_the_patient(
    planned: Store, patient: str, plan: str, error: type[StoreError], message: str
) -> None:
    with pytest.raises(error) as caught:
        planned.select_plan(patient, plan)
    assert str(caught.value).startswith(message)
    assert planned.selected_plan(patient) is None


def test_plan_selection_is_durable(tmp_path: Path) -> None:
    root = tmp_path / "state"
    with Store.open(root) as store:
        store.store_instance(data=b"1", meta=planning("1.5.20.1", InstanceKind.RT_PLAN))
        store.store_instance(data=b"2", meta=planning("1.5.21.1", InstanceKind.RT_PLAN))
        assert store.selected_plan("PAT-001") is None
        store.select_plan("PAT-001", "1.5.20.1")
        store.select_plan("PAT-001", "1.5.21.1")
    with Store.open(root) as store:
        assert store.selected_plan("PAT-001") == "1.5.21.1"
        assert store.selected_plan("PAT-002") is None


