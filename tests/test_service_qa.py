"""Integration: physics QA through the running service. A physicist declares the offset of the
image-quality cylinder on the command socket; the declaration survives a restart; the next CBCT
of the phantom is published as a correction as usual and scored, recorded in the QA history and
published on the ``qa`` topic; ``igrt qa run`` writes to the same history while the service runs
(and holds its store lock); the declaration is used once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from service_process import ServiceProcess, wait_for_correction

from igrt.core.geometry import CouchCorrection
from igrt.store.qa_history import QaHistory
from phantoms.generator import write_cbct, write_planning_set
from services.scu import send_directory

OFFSET = CouchCorrection(0.0, -5.0, 0.0, 0.0, 0.0, 0.0)
PATIENT = "QA-CATPHAN-TB1"


def wait_for_qa(sub: zmq.Socket[Any], seq: int, timeout_s: float = 120.0) -> tuple[dict[str, Any],
                                                                                  bytes]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sub.poll(200):
            topic, body = sub.recv_multipart()
            if topic == b"qa" and json.loads(body).get("seq") == seq:
                return dict(json.loads(body)), body
    raise TimeoutError(f"no qa message for seq {seq} in {timeout_s} s")


def dicom(svc: ServiceProcess) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": svc.dicom_port, "called_ae": "IGRT"}


@pytest.mark.slow
def test_a_declared_qa_run_through_the_service(tmp_path: Path) -> None:
    planning = write_planning_set(tmp_path / "planning", phantom="iq_cylinder", size="small",
                                  patient_id=PATIENT)
    svc = ServiceProcess(tmp_path).start()
    try:
        send_directory(planning.directory, calling_ae="TPS", **dicom(svc))
        refused = svc.request({"cmd": "qa_expect", "patient_id": PATIENT, "lateral_mm": "1"})
        assert refused["ok"] is False and "'lateral_mm' is a JSON string" in refused["error"]
        implausible = svc.request({"cmd": "qa_expect", "patient_id": PATIENT, "lateral_mm": 0,
                                   "longitudinal_mm": 500, "vertical_mm": 0})
        assert implausible["ok"] is False and "not a QA offset" in implausible["error"]
        reply = svc.request({"cmd": "qa_expect", "patient_id": PATIENT, "lateral_mm": 0,
                             "longitudinal_mm": -5, "vertical_mm": 0.0, "phantom": "CatPhan 504"})
        assert reply["ok"] is True, reply
        assert reply["declaration"]["expected"] == OFFSET.as_dict()
        assert svc.stop() == 0  # the declaration is durable
        svc.start()

        cbct = write_cbct(tmp_path / "cbct", planning, OFFSET)
        sub = svc.subscriber()
        send_directory(cbct.directory, calling_ae="LINAC", **dicom(svc))
        correction, _ = wait_for_correction(sub, cbct.series_uid)
        assert correction["status"] == "ok", correction["reasons"]  # published as usual
        qa, raw = wait_for_qa(sub, correction["seq"])
        assert qa["schema"] == "igrt/qa/v1" and qa["source"] == "service"
        assert qa["passed"] is True and qa["level"] == "pass", qa["findings"]
        assert qa["phantom"] == "CatPhan 504" and qa["patient_id"] == PATIENT
        assert qa["measured"] == correction["measured"]
        assert qa["cbct"]["series_uid"] == cbct.series_uid
        assert svc.request({"cmd": "qa_result", "seq": correction["seq"]})["message"] == qa
        with QaHistory.open(svc.config.storage.dir) as history:  # beside the running service
            (stored,) = [r for r in history.runs() if r.message.get("seq") == correction["seq"]]
        assert json.loads(raw) == stored.message
        assert "coronal_after_blend_bone" in stored.images
        # the fused images are the review page's: rendered once, for both
        log = svc.log()
        assert log.count(f"review images of seq {correction['seq']}:") == 1, log[-3000:]
        assert f"QA run of seq {correction['seq']}: {len(stored.images)} fused images, the " \
            "review page's" in log
        assert "the QA desk renders its own" not in log

        # igrt qa run appends to the same history while the service holds the store
        config = tmp_path / "qa.toml"
        config.write_text(f'room = "TEST"\n[storage]\ndir = "{svc.config.storage.dir}"\n')
        proc = subprocess.run([str(Path(sys.executable).with_name("igrt")), "qa", "run",
                               "--planning", str(planning.directory), "--cbct",
                               str(cbct.directory), "--expected=0,-5,0", "--config",
                               str(config)], capture_output=True, text=True, timeout=300,
                              check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        with QaHistory.open(svc.config.storage.dir) as history:
            sources = [r.message["source"] for r in history.runs()]
        assert sources == ["service", "command_line"]

        # the declaration was used once: the next CBCT of the phantom is not scored
        again = write_cbct(tmp_path / "cbct-2", planning, OFFSET, seed=9)
        send_directory(again.directory, calling_ae="LINAC", **dicom(svc))
        second, _ = wait_for_correction(sub, again.series_uid)
        assert second["status"] == "ok"
        assert svc.request({"cmd": "qa_result", "seq": second["seq"]})["message"] is None
        with QaHistory.open(svc.config.storage.dir) as history:
            assert history.expectation(PATIENT) is None
        sub.close()
    finally:
        svc.close()
