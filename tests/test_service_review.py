"""Integration, on the real ``igrt serve``: a CBCT with its Spatial Registration through DCMTK
``storescu`` gives exactly one correction; a CBCT sent before its plan fails ``no_plan`` and
``register_again`` after the plan arrived gives the known correction with the next seq, the
earlier one superseded; decisions and review images survive a restart."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from phantom_cases import errors
from service_process import ServiceProcess, corrections_within, wait_for_correction

from igrt.core.geometry import CouchCorrection
from phantoms.generator import write_cbct, write_planning_set
from services.scu import send_directory

NO_MORE_S = 4.0  # settle_s is 0.5 s: 8x that without another correction


def test_cbct_and_its_spatial_registration_through_storescu_give_one_correction(
        service: ServiceProcess, work: Path) -> None:
    plan = write_planning_set(work / "plan-sro", patient_id="SRO-1", size="small")
    assert set(send_directory(plan.directory, calling_ae="TPS", **service.dicom())) == {0}
    known = CouchCorrection(-4.0, 3.0, 1.5, 0.5, 1.0, -1.0)
    cbct = write_cbct(work / "cbct-sro", plan, known, frame="sro")
    files = sorted(str(p) for p in cbct.directory.glob("*.dcm"))
    assert cbct.sro_uid is not None  # the registration is sent with the CBCT, in one go
    sub = service.subscriber()
    done = subprocess.run(["storescu", "-aet", "LINAC", "-aec", "IGRT", "127.0.0.1",
                           str(service.dicom_port), *files], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    message, _ = wait_for_correction(sub, cbct.series_uid)
    assert message["registration"]["nominal"] == "spatial_registration"
    assert message["registration"]["spatial_registration_uid"] == cbct.sro_uid
    err_mm, err_deg = errors(message["measured"], known)
    assert err_mm <= 0.3 and err_deg <= 0.15, (err_mm, err_deg)
    assert corrections_within(sub, NO_MORE_S) == []  # nothing for the registration's series
    assert service.request({"cmd": "latest"})["message"] == message
    sub.close()


def test_a_cbct_before_its_plan_is_registered_again_once_the_plan_arrived(
        service: ServiceProcess, work: Path) -> None:
    plan = write_planning_set(work / "plan-late", patient_id="LATE-1", size="small")
    known = CouchCorrection(2.0, -3.0, 4.0, 1.0, 0.0, -0.5)
    cbct = write_cbct(work / "cbct-late", plan, known)
    sub = service.subscriber()
    assert set(send_directory(cbct.directory, calling_ae="LINAC", **service.dicom())) == {0}
    failed, _ = wait_for_correction(sub, cbct.series_uid)
    assert failed["status"] == "failed" and failed["reasons"][0].startswith("no_plan:")
    assert "review_url" not in failed
    assert set(send_directory(plan.directory, calling_ae="TPS", **service.dicom())) == {0}
    reply = service.request({"cmd": "register_again", "series_uid": cbct.series_uid,
                             "plan_uid": plan.plan_uid})
    assert reply == {"ok": True, "cmd": "register_again", "series_uid": cbct.series_uid,
                     "plan_uid": plan.plan_uid, "queued": True}
    again, _ = wait_for_correction(sub, cbct.series_uid)
    assert again["seq"] == failed["seq"] + 1
    assert again["status"] == "ok", again["reasons"]
    err_mm, err_deg = errors(again["measured"], known)
    assert err_mm <= 0.3 and err_deg <= 0.15, (err_mm, err_deg)
    assert service.request({"cmd": "result", "series_uid": cbct.series_uid})["message"] == again
    refused = service.request({"cmd": "reject", "seq": failed["seq"], "operator": "J. Smith",
                               "reason": "old"})
    assert refused["ok"] is False and "failed" in refused["error"]
    sub.close()


def test_decisions_and_images_survive_a_restart(work: Path) -> None:
    directory = work / "restart"
    directory.mkdir()
    svc = ServiceProcess(directory).start()
    try:
        plan = write_planning_set(work / "plan-restart", patient_id="RESTART-1", size="small")
        assert set(send_directory(plan.directory, calling_ae="TPS", **svc.dicom())) == {0}
        cbct = write_cbct(work / "cbct-restart", plan, CouchCorrection(1.0, 2.0, -1.0, 0, 0, 0))
        sub = svc.subscriber()
        assert set(send_directory(cbct.directory, calling_ae="LINAC", **svc.dicom())) == {0}
        message, _ = wait_for_correction(sub, cbct.series_uid)
        sub.close()
        seq = message["seq"]
        image = f"{message['review_url']}/coronal_after_blend_bone.png"
        deadline = time.monotonic() + 60
        while True:  # the images are rendered after the message
            try:
                first = urllib.request.urlopen(image).read()
                break
            except urllib.error.HTTPError:
                assert time.monotonic() < deadline, "no review image"
                time.sleep(0.2)
        decided = svc.request({"cmd": "approve", "seq": seq, "operator": "J. Smith"})
        assert decided["ok"], decided
        assert svc.stop() == 0
        svc.start()
        assert svc.request({"cmd": "decision", "seq": seq})["message"] == decided["message"]
        page = f"{svc.review}/review/{seq}"
        assert urllib.request.urlopen(f"{page}/coronal_after_blend_bone.png").read() == first
        html = urllib.request.urlopen(page).read().decode()
        assert "Approved by J. Smith" in html
        again = svc.request({"cmd": "approve", "seq": seq, "operator": "Other"})
        assert again["ok"] is False and "already approved by J. Smith" in again["error"]
    finally:
        svc.close()
