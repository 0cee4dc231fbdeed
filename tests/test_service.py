"""Integration: the real ``igrt serve`` on free ports with a temporary store; phantom cases
delivered by DCMTK ``storescu`` and by a pynetdicom SCU; corrections received on a real SUB
socket; the command channel over a real REQ socket (service issue acceptance)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from phantom_cases import errors, planning_set
from service_process import ServiceProcess, corrections_within, wait_for_correction

from igrt.core.geometry import CouchCorrection
from phantoms.generator import PlanningCase, write_cbct
from services.scu import echo, send, send_directory

NO_REGISTRATION_WAIT_S = 4.0  # settle_s is 0.5 s here: 8x that without a correction


def dcm_files(directory: Path) -> list[str]:
    return sorted(str(p) for p in directory.glob("*.dcm"))


def storescu(svc: ServiceProcess, calling_ae: str,
             files: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["storescu", "-aet", calling_ae, "-aec", "IGRT", "127.0.0.1",
                           str(svc.dicom_port), *files], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture(scope="module")
def planned(service: ServiceProcess, work: Path) -> PlanningCase:
    """The body phantom's planning set, delivered by DCMTK storescu as the planning peer."""
    plan = planning_set(work)
    proc = storescu(service, "TPS", dcm_files(plan.directory))
    assert proc.returncode == 0, proc.stderr
    return plan


def test_echo_with_dcmtk_and_pynetdicom(service: ServiceProcess) -> None:
    proc = subprocess.run(["echoscu", "-aet", "LINAC", "-aec", "IGRT", "127.0.0.1",
                           str(service.dicom_port)], capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert echo(calling_ae="TPS", **service.dicom())


def test_storescu_cbct_gives_the_known_correction(service: ServiceProcess, planned: PlanningCase,
                                                  work: Path) -> None:
    known = CouchCorrection(4.0, -6.0, 2.5, 1.0, -1.0, 1.5)
    cbct = write_cbct(work / "cbct-dcmtk", planned, known)
    sub = service.subscriber()
    proc = storescu(service, "LINAC", dcm_files(cbct.directory))
    assert proc.returncode == 0, proc.stderr
    message, raw = wait_for_correction(sub, cbct.series_uid)
    assert message["status"] == "ok", message["reasons"]
    assert message["patient_id"] == planned.patient_id
    assert message["plan"]["sop_instance_uid"] == planned.plan_uid
    err_mm, err_deg = errors(message["measured"], known)
    assert err_mm <= 0.3 and err_deg <= 0.15, (err_mm, err_deg)
    latest = service.request({"cmd": "latest"})
    assert latest["ok"] and latest["message"] == message
    assert raw.decode() in _reply_text(service, {"cmd": "latest"})
    result = service.request({"cmd": "result", "series_uid": cbct.series_uid})
    assert result["message"] == message


def _reply_text(svc: ServiceProcess, payload: dict[str, object]) -> str:
    import json

    import zmq

    req = svc.context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(svc.command)
    try:
        req.send(json.dumps(payload).encode())
        assert req.poll(10000)
        return req.recv().decode()
    finally:
        req.close()


def test_pynetdicom_cbct_gives_the_known_correction(service: ServiceProcess,
                                                    planned: PlanningCase, work: Path) -> None:
    known = CouchCorrection(-3.0, 5.0, -2.0, -1.5, 0.5, -1.0)
    cbct = write_cbct(work / "cbct-pynetdicom", planned, known, frame="planning")
    sub = service.subscriber()
    statuses = send_directory(cbct.directory, calling_ae="LINAC", **service.dicom())
    assert set(statuses) == {0}
    message, _ = wait_for_correction(sub, cbct.series_uid)
    err_mm, err_deg = errors(message["measured"], known)
    assert err_mm <= 0.3 and err_deg <= 0.15, (err_mm, err_deg)
    status = service.request({"cmd": "status"})
    assert status["ok"] and status["last_seq"] == message["seq"]


def test_a_cbcts_spatial_registration_is_used_and_never_registered_itself(
        service: ServiceProcess, planned: PlanningCase, work: Path) -> None:
    known = CouchCorrection(1.0, -2.0, 3.0, 0.5, 0.5, -0.5)
    cbct = write_cbct(work / "cbct-sro", planned, known, frame="sro")
    sub = service.subscriber()
    assert set(send_directory(cbct.directory, calling_ae="LINAC", **service.dicom())) == {0}
    message, _ = wait_for_correction(sub, cbct.series_uid)
    assert message["registration"]["nominal"] == "spatial_registration"
    err_mm, err_deg = errors(message["measured"], known)
    assert err_mm <= 0.3 and err_deg <= 0.15, (err_mm, err_deg)
    assert corrections_within(sub, NO_REGISTRATION_WAIT_S) == []  # none for the SRO's series
    sub.close()


# --- refusals -----------------------------------------------------------------------------------
def test_unknown_calling_ae_is_rejected(service: ServiceProcess, planned: PlanningCase) -> None:
    with pytest.raises(ConnectionError):
        send([Path(f) for f in dcm_files(planned.directory)[:1]], calling_ae="STRANGER",
             **service.dicom())
    proc = storescu(service, "STRANGER", dcm_files(planned.directory)[:1])
    assert proc.returncode != 0
    assert "reject" in (proc.stdout + proc.stderr).lower()


def test_wrong_role_is_refused_with_an_error_status(service: ServiceProcess,
                                                    planned: PlanningCase) -> None:
    plan_file = next(p for p in planned.directory.glob("*.dcm")
                     if pydicom.dcmread(p, stop_before_pixels=True).Modality == "RTPLAN")
    statuses = send([plan_file], calling_ae="LINAC", **service.dicom())
    assert statuses == [0x0124]  # Refused: Not Authorized (README, DICOM statuses)


def test_cbct_of_another_patient_fails_without_correction(service: ServiceProcess,
                                                          planned: PlanningCase,
                                                          work: Path) -> None:
    cbct = write_cbct(work / "cbct-other", planned, CouchCorrection.zero(),
                      patient_id="SOMEBODY-ELSE")
    sub = service.subscriber()
    assert set(send_directory(cbct.directory, calling_ae="LINAC", **service.dicom())) == {0}
    message, _ = wait_for_correction(sub, cbct.series_uid)
    assert message["status"] == "failed"
    assert message["correction"] is None and message["measured"] is None
    assert message["reasons"][0].split(":")[0] in ("no_plan", "patient_mismatch")


def test_no_plan_fails(service: ServiceProcess, work: Path) -> None:
    other = planning_set(work, patient_id="NO-PLAN-1")
    ct_only = [f for f in dcm_files(other.directory)
               if pydicom.dcmread(f, stop_before_pixels=True).Modality == "CT"]
    assert storescu(service, "TPS", ct_only).returncode == 0
    cbct = write_cbct(work / "cbct-no-plan", other, CouchCorrection.zero())
    sub = service.subscriber()
    assert set(send_directory(cbct.directory, calling_ae="LINAC", **service.dicom())) == {0}
    message, _ = wait_for_correction(sub, cbct.series_uid)
    assert message["status"] == "failed"
    assert message["reasons"][0].startswith("no_plan:")


def test_aborted_association_never_registers(service: ServiceProcess, planned: PlanningCase,
                                             work: Path) -> None:
    cbct = write_cbct(work / "cbct-aborted", planned, CouchCorrection.zero(), seed=11)
    sub = service.subscriber()
    before = service.request({"cmd": "status"})["last_seq"]
    send_directory(cbct.directory, calling_ae="LINAC", abort=True, **service.dicom())
    assert corrections_within(sub, NO_REGISTRATION_WAIT_S) == []
    assert service.request({"cmd": "status"})["last_seq"] == before
    assert not service.request({"cmd": "result", "series_uid": cbct.series_uid})["ok"]


def test_resent_series_is_not_registered_again(service: ServiceProcess, planned: PlanningCase,
                                               work: Path) -> None:
    cbct = write_cbct(work / "cbct-twice", planned, CouchCorrection(1.0, 1.0, 1.0, 0, 0, 0))
    sub = service.subscriber()
    send_directory(cbct.directory, calling_ae="LINAC", **service.dicom())
    first, _ = wait_for_correction(sub, cbct.series_uid)
    assert set(send_directory(cbct.directory, calling_ae="LINAC", **service.dicom())) == {0}
    assert corrections_within(sub, NO_REGISTRATION_WAIT_S) == []
    assert service.request({"cmd": "status"})["last_seq"] == first["seq"]
    again = service.request({"cmd": "result", "series_uid": cbct.series_uid})
    assert again["message"] == first


def test_unreadable_file_gets_an_error_status_and_the_service_lives_on(
        service: ServiceProcess, planned: PlanningCase, work: Path) -> None:
    source = dcm_files(planned.directory)[0]
    ds = pydicom.dcmread(source)
    del ds.PatientID
    broken = work / "no-patient-id.dcm"
    ds.save_as(broken)
    statuses = send([broken], calling_ae="TPS", **service.dicom())
    assert statuses == [0xA900]  # Patient ID missing (README, DICOM statuses)
    assert echo(calling_ae="TPS", **service.dicom())
    assert service.request({"cmd": "ping"})["ok"]


# --- restart: latest and seq survive --------------------------------------------------------
def test_restart_keeps_latest_and_seq(work: Path) -> None:
    directory = work / "restart"
    directory.mkdir()
    svc = ServiceProcess(directory).start()
    try:
        plan = planning_set(directory, patient_id="RESTART-1")
        assert storescu(svc, "TPS", dcm_files(plan.directory)).returncode == 0
        first = write_cbct(directory / "cbct-1", plan, CouchCorrection(2, 0, 0, 0, 0, 0))
        sub = svc.subscriber()
        send_directory(first.directory, calling_ae="LINAC", **svc.dicom())
        published, raw = wait_for_correction(sub, first.series_uid)
        sub.close()
        assert svc.stop() == 0
        svc.start()
        latest = svc.request({"cmd": "latest"})
        assert latest["message"] == published
        assert raw.decode() in _reply_text(svc, {"cmd": "latest"})
        second = write_cbct(directory / "cbct-2", plan, CouchCorrection(0, 2, 0, 0, 0, 0))
        sub = svc.subscriber()
        send_directory(second.directory, calling_ae="LINAC", **svc.dicom())
        nxt, _ = wait_for_correction(sub, second.series_uid)
        assert nxt["seq"] == published["seq"] + 1
        # the planning set was prepared again before READY; the CBCT decoded as it arrived
        assert nxt["registration"]["planning_prepared_before"] is True
        assert nxt["registration"]["cbct_decoded_on_arrival"] == len(dcm_files(second.directory))
    finally:
        svc.close()
        shutil.rmtree(directory / "state", ignore_errors=True)


# --- systemd notifications from the real process -------------------------------------------------
def test_ready_after_sockets_are_bound_and_watchdog_fed(work: Path) -> None:
    import os
    import socket as pysocket

    directory = work / "notify"
    directory.mkdir()
    address = str(directory / "notify.sock")
    listener = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(30.0)
    saved = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    os.environ["NOTIFY_SOCKET"] = address
    os.environ["WATCHDOG_USEC"] = "1000000"  # 1 s: pings expected every 0.5 s
    svc = ServiceProcess(directory)
    try:
        svc.start()
        messages: list[str] = []
        while not any(m.startswith("READY=1") for m in messages):
            messages.append(listener.recv(4096).decode())
        # READY was sent: every socket answers
        assert echo(calling_ae="LINAC", **svc.dicom())
        assert svc.request({"cmd": "ping"})["ok"]
        while "WATCHDOG=1" not in messages:
            messages.append(listener.recv(4096).decode())
        assert svc.stop() == 0
        while not any(m.startswith("STOPPING=1") for m in messages):
            messages.append(listener.recv(4096).decode())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        svc.close()
        listener.close()


def test_select_plan_resolves_an_ambiguous_choice(service: ServiceProcess, work: Path) -> None:
    plan = planning_set(work, patient_id="TWO-PLANS")
    files = dcm_files(plan.directory)
    assert storescu(service, "TPS", files).returncode == 0
    plan_file = next(f for f in files
                     if pydicom.dcmread(f, stop_before_pixels=True).Modality == "RTPLAN")
    second = pydicom.dcmread(plan_file)
    second.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.4242"
    second.file_meta.MediaStorageSOPInstanceUID = second.SOPInstanceUID
    second.RTPlanLabel = "BOOST"
    second_path = work / "second-plan.dcm"
    second.save_as(second_path)
    assert storescu(service, "TPS", [str(second_path)]).returncode == 0
    sub = service.subscriber()
    first = write_cbct(work / "cbct-two-plans-1", plan, CouchCorrection(1, 0, 0, 0, 0, 0))
    send_directory(first.directory, calling_ae="LINAC", **service.dicom())
    refused, _ = wait_for_correction(sub, first.series_uid)
    assert refused["status"] == "failed" and refused["reasons"][0].startswith("ambiguous_plan")
    reply = service.request({"cmd": "select_plan", "patient_id": "TWO-PLANS",
                             "plan_uid": plan.plan_uid})
    assert reply["ok"], reply
    bad = service.request({"cmd": "select_plan", "patient_id": "TWO-PLANS",
                           "plan_uid": "1.2.3.4.5"})
    assert not bad["ok"] and bad["error"]
    known = CouchCorrection(0, 2.0, -1.0, 0, 0, 0)
    second_cbct = write_cbct(work / "cbct-two-plans-2", plan, known)
    send_directory(second_cbct.directory, calling_ae="LINAC", **service.dicom())
    chosen, _ = wait_for_correction(sub, second_cbct.series_uid)
    assert chosen["plan"]["sop_instance_uid"] == plan.plan_uid
    err_mm, _ = errors(chosen["measured"], known)
    assert err_mm <= 0.3
