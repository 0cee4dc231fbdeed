"""The integrator examples of ``examples/``, built and run against the real ``igrt serve``: a
console that joins late gets the current correction from ``latest``, then the next one from the
feed (plain Python with pyzmq, and C against libzmq)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from schema_check import check_message
from service_process import ServiceProcess, wait_for_correction

from igrt.core.geometry import CouchCorrection
from phantoms.generator import write_cbct, write_planning_set
from services.scu import send_directory

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(tmp_path_factory.mktemp("examples")).start()
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def c_console(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("c") / "subscriber"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libzmq"], capture_output=True,
                           text=True, check=True).stdout.split()
    cc = shutil.which("cc") or "gcc"
    subprocess.run([cc, "-Wall", "-Wextra", "-Werror", "-o", str(out),
                    str(EXAMPLES / "c" / "subscriber.c"), *flags], check=True, timeout=120)
    return out


def corrections(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        topic, _, body = line.partition("\t")
        if topic == "correction":
            message = json.loads(body)
            check_message("correction", message)
            out.append(message)
    return out


@pytest.mark.parametrize("language", ["python", "c"])
def test_a_late_console_gets_latest_then_the_feed(service: ServiceProcess, tmp_path: Path,
                                                  c_console: Path, language: str) -> None:
    plan = write_planning_set(tmp_path / "plan", patient_id=f"EX-{language}", size="small")
    dicom = {"host": "127.0.0.1", "port": service.dicom_port, "called_ae": "IGRT"}
    assert set(send_directory(plan.directory, calling_ae="TPS", **dicom)) == {0}
    sub = service.subscriber()
    first = write_cbct(tmp_path / "cbct-1", plan, CouchCorrection(1, 2, 3, 0, 0, 0))
    assert set(send_directory(first.directory, calling_ae="LINAC", **dicom)) == {0}
    before, _ = wait_for_correction(sub, first.series_uid)  # published before the console
    command = ([sys.executable, str(EXAMPLES / "subscriber.py"), "--publish", service.publish,
                "--command", service.command, "--count", "1", "--timeout", "120"]
               if language == "python" else
               [str(c_console), service.publish, service.command, "1"])
    console = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert console.stdout is not None
        shown = console.stdout.readline()  # the late joiner's first line: the latest correction
        assert corrections(shown)[0]["seq"] == before["seq"]
        second = write_cbct(tmp_path / "cbct-2", plan, CouchCorrection(-1, 0, 1, 0, 0, 0))
        assert set(send_directory(second.directory, calling_ae="LINAC", **dicom)) == {0}
        rest, err = console.communicate(timeout=180)
    finally:
        console.kill()
    assert console.returncode == 0, err
    got = corrections(rest)
    assert [m["cbct"]["series_uid"] for m in got] == [second.series_uid], rest
    assert got[0]["seq"] == before["seq"] + 1
    sub.close()
