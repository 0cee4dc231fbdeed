"""services.housekeeping: the disk-space watermark (fake free space and clock) and, on the real
service, the warning in every heartbeat; one summary line per association and pynetdicom's
per-instance lines off at INFO."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from phantom_cases import planning_set
from service_process import ServiceProcess

from igrt.config.model import FREE_SPACE_WARNING_MAX_MB
from services.housekeeping import DiskWatch, free_mb
from services.scu import send_directory


class Free:
    def __init__(self, mb: float) -> None:
        self.mb = mb
        self.reads = 0

    def __call__(self, path: Path) -> float:
        self.reads += 1
        return self.mb


class Tick:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_watermark_warns_while_below_and_logs_each_change(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    free, tick = Free(5000.0), Tick()
    watch = DiskWatch(tmp_path, 2048, free=free, clock=tick, interval_s=5.0)
    caplog.set_level(logging.INFO, logger="services.housekeeping")
    assert watch.warnings() == []
    free.mb = 1000.0
    assert watch.warnings() == []  # read at most every interval
    tick.t = 5.0
    (warning,) = watch.warnings()
    assert warning.startswith("low_disk_space: 1000 MB free under ")
    assert "free_space_warning_mb (2048 MB)" in warning and "0xA700" in warning
    tick.t = 10.0
    assert watch.warnings() == [warning]
    free.mb = 3000.0
    tick.t = 15.0
    assert watch.warnings() == []
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]  # once each way
    assert free.reads == 4


def test_watermark_zero_is_off(tmp_path: Path) -> None:
    free = Free(0.0)
    assert DiskWatch(tmp_path, 0, free=free).warnings() == []
    assert free.reads == 0


def test_free_space_is_read_from_the_file_system(tmp_path: Path) -> None:
    assert free_mb(tmp_path) > 0


def test_service_heartbeats_warn_and_the_log_summarises_associations(tmp_path: Path) -> None:
    svc = ServiceProcess(tmp_path, extra={
        "storage": {"free_space_warning_mb": FREE_SPACE_WARNING_MAX_MB}})  # 10 TB: always low
    try:
        svc.start()
        sub = svc.subscriber()
        deadline = time.monotonic() + 10
        warnings: list[str] = []
        while not warnings and time.monotonic() < deadline:
            if sub.poll(500):
                topic, body = sub.recv_multipart()
                if topic == b"heartbeat":
                    warnings = json.loads(body)["warnings"]
        sub.close()
        assert warnings and warnings[0].startswith("low_disk_space: ")
        plan = planning_set(tmp_path)
        statuses = send_directory(plan.directory, host="127.0.0.1", port=svc.dicom_port,
                                  called_ae="IGRT", calling_ae="TPS")
        log_deadline = time.monotonic() + 10
        while "released: " not in svc.log():
            assert time.monotonic() < log_deadline, svc.log()[-2000:]
            time.sleep(0.1)  # polling the service's log, bounded by the deadline
    finally:
        svc.close()
    log = svc.log()
    summary = next(line for line in log.splitlines() if "released: " in line)
    assert "from TPS (127.0.0.1:" in summary
    assert f"{len(statuses)} instances, " in summary and " MB, " in summary
    assert f"statuses 0x0000 x{len(statuses)}" in summary
    assert " INFO pynetdicom" not in log  # per-PDU / per-instance lines are off at INFO
    assert "WARNING services.housekeeping: low_disk_space" in log
