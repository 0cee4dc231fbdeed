"""igrt.registrar: the service's hot path against a real store holding phantom files stored as
the SCP stores them. A planning set is prepared before any CBCT; a CBCT decoded as it arrives
gives the known correction; a second registrar on the same store (a restarted service, or the
child process of a later design) rebuilds what the first had, from the store alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from phantom_cases import errors, planning_set
from stored_files import replace_file, store_directory

from igrt.config import Config, parse_config
from igrt.core.geometry import CouchCorrection
from igrt.core.kinds import InstanceKind, Role
from igrt.core.messages import Outcome
from igrt.registrar import Registrar
from igrt.store import AssociationOutcome, Store
from phantoms.generator import PlanningCase, write_cbct

KNOWN = CouchCorrection(4.0, -6.0, 2.5, 1.0, -1.0, 1.5)


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> PlanningCase:
    return planning_set(tmp_path_factory.mktemp("registrar"))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config({"storage": {"dir": str(tmp_path / "state")}})


@pytest.fixture
def stored(tmp_path: Path, planned: PlanningCase) -> Iterator[Store]:
    with Store.open(tmp_path / "state") as store:
        store_directory(store, planned.directory, role=Role.PLANNING, association_id="tps-1")
        store.record_association("tps-1", "TPS", AssociationOutcome.RELEASED)
        yield store


def deliver_cbct(registrar: Registrar, store: Store, directory: Path, association: str,
                 *, announce: bool = True) -> str:
    metas = store_directory(store, directory, role=Role.IMAGING, association_id=association)
    if announce:
        for meta in metas:
            registrar.on_instance(meta.series_uid, meta.sop_instance_uid, meta.role, meta.kind)
    store.record_association(association, "LINAC", AssociationOutcome.RELEASED)
    return metas[0].series_uid


def check(outcome: Outcome, known: CouchCorrection) -> dict[str, object]:
    assert outcome.measured is not None, outcome.reasons
    err_mm, err_deg = errors(outcome.measured.as_dict(), known)
    assert err_mm <= 0.3 and err_deg <= 0.15
    registration = outcome.details["registration"]
    assert isinstance(registration, dict)
    return registration


def test_planning_prepared_before_the_cbct_which_is_decoded_as_it_arrives(
        config: Config, stored: Store, planned: PlanningCase, tmp_path: Path) -> None:
    registrar = Registrar(config, stored)
    assert registrar.prepare_planning(planned.patient_id) == 1
    assert len(registrar.references) == 1
    cbct = write_cbct(tmp_path / "cbct", planned, KNOWN)
    series_uid = deliver_cbct(registrar, stored, cbct.directory, "linac-1")
    registration = check(registrar.register(series_uid), KNOWN)
    assert registration["planning_prepared_before"] is True
    assert registration["cbct_decoded_on_arrival"] == len(list(cbct.directory.glob("CT*.dcm")))
    assert registrar.cbct_grid is not None and registrar.cbct_grid[0] == (2.8, 2.8, 3.5)


def test_without_preparation_the_planning_ct_is_read_at_the_cbct(
        config: Config, stored: Store, planned: PlanningCase, tmp_path: Path) -> None:
    registrar = Registrar(config, stored)
    cbct = write_cbct(tmp_path / "cbct", planned, KNOWN)
    series_uid = deliver_cbct(registrar, stored, cbct.directory, "linac-1", announce=False)
    registration = check(registrar.register(series_uid), KNOWN)
    assert registration["planning_prepared_before"] is False
    assert registration["cbct_decoded_on_arrival"] == 0
    again = write_cbct(tmp_path / "again", planned, KNOWN, seed=9)
    uid = deliver_cbct(registrar, stored, again.directory, "linac-2")
    assert check(registrar.register(uid), KNOWN)["planning_prepared_before"] is True


def test_a_second_registrar_rebuilds_from_the_store(config: Config, stored: Store,
                                                    planned: PlanningCase,
                                                    tmp_path: Path) -> None:
    first = Registrar(config, stored)
    cbct = write_cbct(tmp_path / "cbct", planned, KNOWN)
    first.register(deliver_cbct(first, stored, cbct.directory, "linac-1"))
    second = Registrar(config, stored)
    report = second.warm()
    assert report.patients == 1 and report.references == 1 and len(second.references) == 1
    assert second.cbct_grid is not None and second.cbct_grid[0] == first.cbct_grid[0]  # type: ignore[index]
    later = write_cbct(tmp_path / "later", planned, KNOWN, seed=5)
    registration = check(second.register(deliver_cbct(second, stored, later.directory,
                                                      "linac-2")), KNOWN)
    assert registration["planning_prepared_before"] is True


def test_a_spatial_registration_is_not_fed_as_a_cbct_slice(config: Config, stored: Store,
                                                           planned: PlanningCase,
                                                           tmp_path: Path) -> None:
    registrar = Registrar(config, stored)
    cbct = write_cbct(tmp_path / "cbct", planned, KNOWN, frame="sro")
    metas = store_directory(stored, cbct.directory, role=Role.IMAGING, association_id="l1")
    sro = [m for m in metas if m.kind is InstanceKind.SPATIAL_REGISTRATION]
    assert len(sro) == 1
    registrar.on_instance(sro[0].series_uid, sro[0].sop_instance_uid, Role.IMAGING,
                          InstanceKind.SPATIAL_REGISTRATION)
    assert registrar.assembler.held_series() == []
    images = [m for m in metas if m.kind is InstanceKind.CT_IMAGE]
    for meta in images:
        registrar.on_instance(meta.series_uid, meta.sop_instance_uid, meta.role, meta.kind)
    outcome = registrar.register(images[0].series_uid)
    registration = check(outcome, KNOWN)
    assert registration["nominal"] == "spatial_registration"


def test_a_registration_ahead_of_settle_is_used_only_if_nothing_it_read_changed(
        config: Config, stored: Store, planned: PlanningCase, tmp_path: Path) -> None:
    registrar = Registrar(config, stored)
    cbct = write_cbct(tmp_path / "cbct", planned, KNOWN)
    uid = deliver_cbct(registrar, stored, cbct.directory, "linac-1")
    registrar.register_ahead(uid)
    taken = registrar.take_ahead(uid)
    assert taken is not None
    assert taken.details["registration"]["registered_ahead_of_settle"] is True
    assert registrar.take_ahead(uid) is None  # handed over once

    # a stored slice's file replaced after the head start (the store refuses other content
    # under a held SOP Instance UID, but a purged series may be received again): the
    # registration is made again, from the store
    registrar.register_ahead(uid)
    replace_file(stored.series_instances(uid)[0])
    assert registrar.take_ahead(uid) is None
    again = registrar.register(uid)
    assert "registered_ahead_of_settle" not in again.details["registration"]
    check(again, KNOWN)

    # another planning object of the patient (here: the plan selected) after the head start
    registrar.register_ahead(uid)
    stored.select_plan(planned.patient_id, planned.plan_uid)
    assert registrar.take_ahead(uid) is None
