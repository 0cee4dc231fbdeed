"""A bounded load on the real ``igrt serve`` (issue 10): ``patients`` patients at once, each one
sender (half DCMTK ``storescu``, half pynetdicom) that delivers the planning set and then a CBCT at
a known couch correction; a SUB socket watches heartbeats and corrections meanwhile. Optionally
``hogs`` busy processes occupy the CPU beside it. Everything is bounded: every send has its
timeouts, the wait for the corrections has a deadline, the hogs are ended by their pid.

Used by ``tests/test_load.py`` (the pass/fail test) and ``benchmarks/load.py`` (the figures)."""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from service_process import ServiceProcess

from igrt.core.geometry import CouchCorrection
from phantoms.generator import write_cbct, write_planning_set
from services.scu import send

HOST = "127.0.0.1"
SHIFTS = (
    CouchCorrection(3.0, -5.0, 2.0, 1.0, -0.5, 1.5),
    CouchCorrection(-4.0, 2.0, -3.0, -1.0, 0.5, -1.0),
    CouchCorrection(0.0, -5.0, 0.0, 0.0, 0.0, 0.0),
    CouchCorrection(6.0, 4.0, 2.5, 1.5, -1.0, 0.5),
    CouchCorrection(-1.0, 1.0, 5.0, 0.0, 1.0, 0.5),
)
_SUCCESS_RE = re.compile(r"Received Store Response \(Success\)")


@dataclass
class Patient:
    patient_id: str
    planning: list[Path]
    cbct: list[Path]
    series_uid: str
    known: CouchCorrection
    sender: str  # "storescu" or "pynetdicom"
    acknowledged: int = 0
    sent: int = 0
    error: str = ""
    released_s: float | None = None  # monotonic, when the CBCT association ended


@dataclass
class LoadReport:
    patients: int
    hogs: int
    sent: int
    acknowledged: int
    stored: int
    corrections: int
    not_failed: int
    statuses: dict[str, int]
    max_error_mm: float
    max_heartbeat_gap_s: float  # between the heartbeats' own times (the service's clock)
    max_received_gap_s: float  # between their receptions by this (perhaps starved) process
    latencies_s: list[float]
    send_s: float
    sender_errors: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lat = self.latencies_s
        median = statistics.median(lat) if lat else float("nan")
        return [
            f"patients {self.patients}, CPU hog processes {self.hogs}",
            f"instances acknowledged {self.acknowledged} of {self.sent} sent; stored "
            f"{self.stored}",
            f"corrections {self.corrections} of {self.patients} expected "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.statuses.items()))}); "
            f"largest translation error {self.max_error_mm:.2f} mm",
            f"largest heartbeat gap {self.max_heartbeat_gap_s:.2f} s (contract: at most 2 s; "
            f"between receptions here {self.max_received_gap_s:.2f} s)",
            f"latency CBCT release -> correction: median {median:.1f} s, max "
            f"{max(lat) if lat else float('nan'):.1f} s (one registration at a time)",
            f"all senders done after {self.send_s:.1f} s",
            *(f"sender error: {e}" for e in self.sender_errors),
        ]

    @property
    def passed(self) -> bool:
        return (self.acknowledged == self.sent == self.stored
                and self.corrections == self.not_failed == self.patients
                and self.max_heartbeat_gap_s <= 2.0 and not self.sender_errors)


def prepare(work: Path, patients: int, size: str) -> list[Patient]:
    out = []
    for n in range(patients):
        pid = f"LOAD-{n:02d}"
        plan = write_planning_set(work / pid / "planning", patient_id=pid, size=size)
        known = SHIFTS[n % len(SHIFTS)]
        cbct = write_cbct(work / pid / "cbct", plan, known, seed=100 + n)
        out.append(Patient(pid, sorted(plan.directory.glob("*.dcm")),
                           sorted(cbct.directory.glob("*.dcm")), cbct.series_uid, known,
                           "storescu" if n % 2 == 0 else "pynetdicom"))
    return out


def _storescu(port: int, calling: str, paths: list[Path]) -> tuple[int, str]:
    done = subprocess.run(["storescu", "-v", "-aet", calling, "-aec", "IGRT", HOST, str(port),
                           *map(str, paths)], capture_output=True, text=True, timeout=600,
                          check=False)
    output = done.stdout + done.stderr
    return len(_SUCCESS_RE.findall(output)), "" if done.returncode == 0 else output[-400:]


def _deliver(patient: Patient, port: int) -> None:
    try:
        for calling, paths in (("TPS", patient.planning), ("LINAC", patient.cbct)):
            patient.sent += len(paths)
            if patient.sender == "storescu":
                ok, error = _storescu(port, calling, paths)
                patient.acknowledged += ok
                patient.error = patient.error or error
            else:
                statuses = send(paths, host=HOST, port=port, called_ae="IGRT",
                                calling_ae=calling, timeout_s=120.0)
                patient.acknowledged += sum(1 for s in statuses if s == 0)
            if calling == "LINAC":
                patient.released_s = time.monotonic()
    except Exception as exc:  # noqa: BLE001 - reported, never hidden
        patient.error = f"{patient.patient_id}: {type(exc).__name__}: {exc}"


class _Watcher(threading.Thread):
    """Heartbeat gaps and corrections on the feed (a SUB socket on its own thread). A gap is
    measured between the heartbeats' own ``time`` (when the service sent them): this process
    runs five senders and may itself be starved of the CPU beside the hogs, and then receives
    late what was sent in time (``max_received_gap_s``, for information)."""

    def __init__(self, svc: ServiceProcess, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.sub = svc.subscriber()
        self.stop_event = stop
        self.max_gap_s = 0.0
        self.max_received_gap_s = 0.0
        self.corrections: dict[str, tuple[dict[str, Any], float]] = {}

    def run(self) -> None:
        last = time.monotonic()
        last_sent: datetime | None = None
        while not self.stop_event.is_set():
            if not self.sub.poll(100):
                self.max_received_gap_s = max(self.max_received_gap_s, time.monotonic() - last)
                continue
            topic, body = self.sub.recv_multipart()
            now = time.monotonic()
            if topic == b"heartbeat":
                sent = datetime.fromisoformat(json.loads(body)["time"].replace("Z", "+00:00"))
                if last_sent is not None:
                    self.max_gap_s = max(self.max_gap_s, (sent - last_sent).total_seconds())
                last_sent = sent
                self.max_received_gap_s = max(self.max_received_gap_s, now - last)
                last = now
            elif topic == b"correction":
                message = json.loads(body)
                self.corrections[message["cbct"]["series_uid"]] = (message, now)
        self.sub.close(linger=0)


def start_hogs(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_hogs(hogs: list[subprocess.Popen[bytes]]) -> None:
    for hog in hogs:
        os.kill(hog.pid, signal.SIGKILL)
        hog.wait(timeout=10)


def run_load(work: Path, *, patients: int = 10, size: str = "small", hogs: int = 0,
             settle_s: float = 1.0, deadline_s: float = 900.0) -> LoadReport:
    cases = prepare(work / "cases", patients, size)
    (work / "service").mkdir(parents=True, exist_ok=True)
    svc = ServiceProcess(work / "service", settle_s=settle_s).start()
    stop = threading.Event()
    hog_procs = start_hogs(hogs)
    try:
        watcher = _Watcher(svc, stop)
        watcher.start()
        began = time.monotonic()
        senders = [threading.Thread(target=_deliver, args=(p, svc.dicom_port), daemon=True)
                   for p in cases]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(deadline_s)
        send_s = time.monotonic() - began
        expected = {p.series_uid for p in cases if not p.error}
        end = began + deadline_s
        while not expected <= set(watcher.corrections) and time.monotonic() < end:
            time.sleep(0.2)
        stop.set()
        watcher.join(10)
    finally:
        stop.set()
        stop_hogs(hog_procs)
        svc.close()
    stored = sum(1 for _ in (work / "service" / "state" / "instances").rglob("*.dcm"))
    statuses: dict[str, int] = {}
    errors_mm = []
    latencies = []
    for p in cases:
        found = watcher.corrections.get(p.series_uid)
        if found is None:
            continue
        message, at = found
        statuses[message["status"]] = statuses.get(message["status"], 0) + 1
        if message["measured"]:
            got = CouchCorrection(**message["measured"])
            errors_mm.append(float(((got.translation_mm - p.known.translation_mm) ** 2).sum()
                                   ** 0.5))
        if p.released_s is not None:
            latencies.append(at - p.released_s)
    return LoadReport(
        patients=patients, hogs=hogs, sent=sum(p.sent for p in cases),
        acknowledged=sum(p.acknowledged for p in cases), stored=stored,
        corrections=len(latencies), not_failed=sum(v for k, v in statuses.items()
                                                   if k != "failed"),
        statuses=statuses, max_error_mm=max(errors_mm, default=float("nan")),
        max_heartbeat_gap_s=watcher.max_gap_s, max_received_gap_s=watcher.max_received_gap_s,
        latencies_s=latencies, send_s=send_s,
        sender_errors=[p.error for p in cases if p.error])

