"""Integration (CONTRACT §8): two corrections approved on the command channel of the real
``igrt serve``; their records go to DCMTK's ``storescp`` playing the OIS. The destination is
down when they are approved, the service is restarted, then the destination starts: each object
arrives once, passes dciodvfy, and its matrix maps CBCT points to the planning points the
phantom's known correction predicts (≤ 0.5 mm over the registration box). A rejection sends
nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom3tools import dciodvfy_errors
from phantom_cases import planning_set
from service_process import ServiceProcess, wait_for_correction
from storescp import Storescp, free_port

from igrt.core import geometry
from igrt.core.geometry import CouchCorrection
from igrt.core.spatial_registration import nominal_matrix
from igrt.dicom.registration_reader import read_spatial_registration
from phantoms.generator import expected_registration, write_cbct
from services.scu import send_directory

KNOWN = (CouchCorrection(3.0, -5.0, 2.0, 1.0, -0.5, 1.5),
         CouchCorrection(-2.0, 4.0, -1.5, 0.0, 0.5, -1.0))
ACCURACY_MM = 0.5
WAIT_S = 60.0


@pytest.fixture
def ois_port() -> int:
    return free_port()


@pytest.fixture
def service(tmp_path: Path, ois_port: int) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(tmp_path, extra={"record": {
        "destinations": [{"ae_title": "OIS", "host": "127.0.0.1", "port": ois_port}],
        "retry_initial_s": 0.2, "retry_max_s": 0.5}})
    yield svc
    svc.close()


def _wait_log(svc: ServiceProcess, text: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in svc.log():
        assert time.monotonic() < deadline, f"{text!r} not in the log: {svc.log()[-3000:]}"
        time.sleep(0.1)  # polling the service's log, bounded by the deadline


def _wait_pending(svc: ServiceProcess, count: int, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while (pending := svc.request({"cmd": "status"})["record_pending"]) != count:
        assert time.monotonic() < deadline, f"record_pending stayed {pending}: {svc.log()[-3000:]}"
        time.sleep(0.1)  # polling the status command, bounded by the deadline


def test_records_reach_the_ois_once_across_a_restart(service: ServiceProcess, tmp_path: Path,
                                                     ois_port: int) -> None:
    plan = planning_set(tmp_path)
    service.start()
    dicom = {"host": "127.0.0.1", "port": service.dicom_port, "called_ae": "IGRT"}
    assert set(send_directory(plan.directory, calling_ae="TPS", **dicom)) == {0}
    sub = service.subscriber()
    seqs, cbcts = [], []
    for n, known in enumerate(KNOWN):
        cbct = write_cbct(tmp_path / f"cbct{n}", plan, known, frame="origin")
        assert set(send_directory(cbct.directory, calling_ae="LINAC", **dicom)) == {0}
        message, _ = wait_for_correction(sub, cbct.series_uid)
        assert message["status"] == "ok", message["reasons"]
        seqs.append(message["seq"])
        cbcts.append(cbct)
        assert service.request({"cmd": "status"})["record_pending"] == n
        # approved at the couch before the next fraction; the OIS is down: nothing is lost
        decided = service.request({"cmd": "approve", "seq": message["seq"],
                                   "operator": "J. Smith"})
        assert decided["ok"], decided
    _wait_log(service, "not delivered (attempt 2)")
    assert service.request({"cmd": "status"})["record_pending"] == 2
    service.stop()
    service.start()  # restarted with the deliveries pending
    assert service.request({"cmd": "status"})["record_pending"] == 2
    ois = Storescp(tmp_path / "ois", ois_port).start()
    try:
        _wait_pending(service, 0)
        received = ois.files()
    finally:
        ois.stop()
    assert len(received) == 2, ois.log()  # unique file names: one file per C-STORE received
    by_label = {str(pydicom.dcmread(p).ContentLabel): p for p in received}
    assert set(by_label) == {f"IGRT_SEQ_{seq}" for seq in seqs}

    for seq, cbct, known in zip(seqs, cbcts, KNOWN, strict=True):
        path = by_label[f"IGRT_SEQ_{seq}"]
        assert dciodvfy_errors(path) == []
        reg = pydicom.dcmread(path)
        assert str(reg.OperatorsName) == "J. Smith"
        matrix = nominal_matrix(read_spatial_registration(reg),
                                cbct_frame_uid=cbct.frame_of_reference_uid,
                                planning_frame_uid=plan.frame_of_reference_uid)
        truth = expected_registration(plan, known, "origin")
        assert _box_error_mm(matrix, truth, plan.isocenter_mm) <= ACCURACY_MM

    # a rejection is not recorded (the service was restarted: new ports)
    sub.close()
    sub = service.subscriber()
    dicom = {"host": "127.0.0.1", "port": service.dicom_port, "called_ae": "IGRT"}
    cbct = write_cbct(tmp_path / "cbct-rejected", plan, CouchCorrection(1, 1, 1, 0, 0, 0))
    assert set(send_directory(cbct.directory, calling_ae="LINAC", **dicom)) == {0}
    message, _ = wait_for_correction(sub, cbct.series_uid)
    sub.close()
    rejected = service.request({"cmd": "reject", "seq": message["seq"], "operator": "J. Smith",
                                "reason": "repeat the CBCT"})
    assert rejected["ok"], rejected
    assert service.request({"cmd": "status"})["record_pending"] == 0


def _box_error_mm(matrix: np.ndarray, truth: np.ndarray,
                  isocenter_mm: tuple[float, float, float]) -> float:
    """Largest distance between the planning points the two matrices give for the corners of
    the default registration box (160 x 160 x 120 mm about the isocentre as the CBCT sees it)."""
    iso_cbct = geometry.apply(geometry.invert_rigid(truth), isocenter_mm)
    half = np.array([80.0, 80.0, 60.0])
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    points = iso_cbct + corners * half
    return float(np.max(np.linalg.norm(geometry.apply(matrix, points)
                                       - geometry.apply(truth, points), axis=1)))
