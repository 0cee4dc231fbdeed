"""``igrt demo``: send a phantom planning set and a CBCT at a known couch correction to a
running service over DICOM, and print the correction received over ZeroMQ beside the known
answer. Each run uses a new Patient ID, so earlier demo plans never make the choice ambiguous."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

from igrt.config import Config, Role
from igrt.core.geometry import CouchCorrection, PatientPosition
from phantoms.generator import write_cbct, write_planning_set
from services.curve import ClientKeys
from services.listen import connect_endpoint
from services.scu import echo, send_directory

WAIT_S = 300.0


def demo(config: Config, *, shift: str, position: str, size: str,
         keys: ClientKeys | None = None) -> int:
    try:
        values = [float(v) for v in shift.split(",")]
        known = CouchCorrection(*values)
    except (ValueError, TypeError):
        print("igrt demo: --shift takes six numbers: lat,long,vert,pitch,roll,rotation",
              file=sys.stderr)
        return 2
    planning_ae = next(p.ae_title for p in config.dicom.peers if p.role is Role.PLANNING)
    imaging_ae = next(p.ae_title for p in config.dicom.peers if p.role is Role.IMAGING)
    dicom = {"host": _connect_host(config.dicom.host), "port": config.dicom.port,
             "called_ae": config.dicom.ae_title}
    where = f"{config.dicom.ae_title}@{dicom['host']}:{config.dicom.port}"
    if not _answers(imaging_ae, dicom):
        print(f"igrt demo: no igrt service answers at {where} (C-ECHO as {imaging_ae} failed); "
              "start it first (`igrt serve` with the same configuration, or ./dev run)",
              file=sys.stderr)
        return 1
    context: zmq.Context[Any] = zmq.Context.instance()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"correction")
    if keys is not None:
        keys.apply(sub)
    sub.connect(connect_endpoint(config.zmq.publish, "zmq.publish"))
    with tempfile.TemporaryDirectory(prefix="igrt-demo-") as tmp:
        patient_id = f"DEMO-{time.strftime('%Y%m%d-%H%M%S')}"
        print(f"writing a {size} body phantom for {patient_id} ({position}) ...", flush=True)
        plan = write_planning_set(Path(tmp) / "planning", patient_id=patient_id,
                                  patient_position=PatientPosition(position), size=size)
        frame = str(config.registration.cbct_isocenter)
        cbct = write_cbct(Path(tmp) / "cbct", plan, known, frame=frame)
        print(f"sending the planning set as {planning_ae} ...", flush=True)
        send_directory(plan.directory, calling_ae=planning_ae, **dicom)
        print(f"sending the CBCT {cbct.series_uid} as {imaging_ae} ...", flush=True)
        sent = time.monotonic()
        send_directory(cbct.directory, calling_ae=imaging_ae, **dicom)
    message = _wait_for(sub, cbct.series_uid)
    sub.close()
    if message is None:
        print(f"igrt demo: no correction for {cbct.series_uid} within {WAIT_S:.0f} s",
              file=sys.stderr)
        return 1
    latency = time.monotonic() - sent
    print(json.dumps(message, indent=2))
    print(f"\nstatus {message['status']}  seq {message['seq']}  "
          f"received {latency:.1f} s after the CBCT was sent")
    measured = message.get("measured") or {}
    print(f"{'':16}{'known':>10}{'received':>10}{'error':>8}")
    for name, value in known.as_dict().items():
        got = measured.get(name)
        shown = f"{got:10.2f}{got - value:8.2f}" if got is not None else f"{'-':>10}"
        print(f"{name:16}{value:10.2f}{shown}")
    return 0 if message["status"] != "failed" else 1


def _wait_for(sub: zmq.Socket[Any], series_uid: str) -> dict[str, Any] | None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if sub.poll(1000):
            _topic, body = sub.recv_multipart()
            message = json.loads(body)
            if (message.get("cbct") or {}).get("series_uid") == series_uid:
                return dict(message)
    return None


def _answers(calling_ae: str, dicom: dict[str, Any]) -> bool:
    """C-ECHO, with pynetdicom's own connection errors kept out of the demo's output."""
    quiet = logging.getLogger("pynetdicom")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return echo(calling_ae=calling_ae, **dicom)
    finally:
        quiet.setLevel(level)


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
