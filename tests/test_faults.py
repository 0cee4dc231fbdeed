"""The fault and bad-input suite (issue 10, deliver 6): the real ``igrt serve`` on free ports with a
temporary store, attacked over DICOM (pynetdicom and DCMTK), raw TCP and ZeroMQ. Every case
asserts its own outcome (a status or an error with a reason) and then the same four things: the
service still answers C-ECHO and ``ping``, nothing is half-written in the store (no temporary
file left, every stored instance readable), and nothing was written outside the store (the
service's TMPDIR stays empty)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dicom_factory as factory
import pydicom
import pytest
import zmq
from hostile import (
    CORRUPT_SYNTAXES,
    association_request,
    closed_by_peer,
    corrupt_pixels,
    explicit_on_implicit,
    flood_after_header,
    idle_connections,
    implicit_on_explicit,
    pdu_header,
    send_file,
    truncated_pixels,
    uncompressed_in_compressed_syntax,
    with_long_uid,
    with_trailing_bytes,
)
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE
from pynetdicom.dsutils import split_dataset
from scp_client import ct, registration, reply, rt_plan
from service_process import ServiceProcess

from services.scu import echo

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def service(work: Path) -> Iterator[ServiceProcess]:
    outside = work / "outside-tmp"
    outside.mkdir()
    svc = ServiceProcess(work, env={"TMPDIR": str(outside)},
                         extra={"dicom": {"limits": {"request_timeout_s": 3.0}}}).start()
    yield svc
    svc.close()


@pytest.fixture(autouse=True)
def still_healthy(service: ServiceProcess, work: Path) -> Iterator[None]:
    yield
    assert service.alive, service.log()[-3000:]
    assert echo(host=HOST, port=service.dicom_port, called_ae="IGRT", calling_ae="LINAC")
    assert service.request({"cmd": "ping"})["ok"] is True
    state = work / "state"
    deadline = time.monotonic() + 5.0  # a refused C-STORE's spool file goes with its reply
    while (left := list((state / "tmp").iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], "half-written files left in the store's tmp/"
    for path in (state / "instances").rglob("*.dcm"):
        pydicom.dcmread(path)  # every stored instance is whole
    assert list((work / "outside-tmp").iterdir()) == [], "files written outside the store"


# --- DICOM: refused with a status ---------------------------------------------------------------
def _store(svc: ServiceProcess, ds: Any, calling: str = "LINAC") -> tuple[int, str | None]:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(ds.SOPClassUID, [ds.file_meta.TransferSyntaxUID])
    assoc = ae.associate(HOST, svc.dicom_port, ae_title="IGRT")
    assert assoc.is_established
    try:
        return reply(assoc.send_c_store(ds))
    finally:
        assoc.release()


def _without(keyword: str) -> Callable[[str], Any]:
    def make(name: str) -> Any:
        ds = ct(name)
        delattr(ds, keyword)
        return ds
    return make


def _with(**values: Any) -> Callable[[str], Any]:
    def make(name: str) -> Any:
        ds = ct(name)
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        return ds
    return make


def _truncated(name: str) -> Any:
    ds = ct(name)
    ds.PixelData = ds.PixelData[:-10]
    return ds


def _other_sop_uid(directory: Path) -> Path:
    """The C-STORE request (from the file meta) names another SOP instance than the data set."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "other-uid-source.dcm"
    ct("fault other uid").save_as(source, enforce_file_format=True)
    meta, offset = split_dataset(source)
    meta.MediaStorageSOPInstanceUID = factory.uid("fault other uid", "request")
    path = directory / "other-uid.dcm"
    with path.open("wb") as f:
        f.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(f, meta)  # type: ignore[arg-type]
        f.write(source.read_bytes()[offset:])
    return path


HEADER_CASES = [
    pytest.param(_without("PatientID"), "LINAC", 0xA900, "Patient ID", id="no-patient-id"),
    pytest.param(_with(SeriesInstanceUID="1.2.03"), "LINAC", 0xA900, "invalid UID",
                 id="invalid-series-uid"),
    pytest.param(_without("ImagePositionPatient"), "LINAC", 0xA900, "Image Position",
                 id="no-position"),
    pytest.param(_with(PixelSpacing=[-0.5, 0.5]), "LINAC", 0xA900, "Pixel Spacing",
                 id="negative-spacing"),
    pytest.param(_truncated, "LINAC", 0xA900, "Pixel Data has", id="truncated-native-pixels"),
    pytest.param(_without("PixelData"), "LINAC", 0xA900, "Pixel Data", id="no-pixel-data"),
    pytest.param(_with(Rows=0), "LINAC", 0xA900, "Rows", id="zero-rows"),
    pytest.param(lambda name: rt_plan(name), "LINAC", 0x0124, "not accepted from imaging",
                 id="plan-from-the-linac"),
    pytest.param(lambda name: registration(name), "TPS", 0x0124, "not accepted from planning",
                 id="registration-from-the-tps"),
]


@pytest.mark.parametrize(("make", "calling", "status", "comment"), HEADER_CASES)
def test_dicom_refusal_with_a_reason(service: ServiceProcess, make: Callable[[str], Any],
                                     calling: str, status: int, comment: str,
                                     request: pytest.FixtureRequest) -> None:
    got, error = _store(service, make(f"fault {request.node.callspec.id}"), calling)
    assert got == status
    assert error is not None and comment in error


def _bytes_case(make: Callable[[Path], Path], status: int, comment: str, case_id: str) -> Any:
    return pytest.param(make, status, comment, id=case_id)


def _damaged(how: Callable[[str, str, Path], Path], syntax: str) -> Callable[[Path], Path]:
    return lambda directory: how(f"{how.__name__} {syntax}", syntax, directory)


BYTES_CASES = [
    *(_bytes_case(_damaged(how, s), 0xC000, "cannot be decoded",
                  f"{how.__name__}-{s.name.split()[0].lower()}")
      for how in (corrupt_pixels, truncated_pixels) for s in CORRUPT_SYNTAXES),
    _bytes_case(lambda d: uncompressed_in_compressed_syntax("native as j2k", d), 0xC000,
                "cannot be decoded", "native-declared-jpeg2000"),
    _bytes_case(lambda d: explicit_on_implicit("evr on ivr", d), 0xC000, "explicit VR",
                "explicit-on-implicit"),
    _bytes_case(lambda d: implicit_on_explicit("ivr on evr", d), 0xC000,
                "does not match the transfer syntax", "implicit-on-explicit"),
    _bytes_case(lambda d: with_trailing_bytes("garbage", d, bytes(range(256)) * 3), 0xC000, "",
                "garbage-after-the-data-set"),
    _bytes_case(lambda d: with_trailing_bytes("tail", d, b"\x01\x02\x03"), 0xC000, "garbage",
                "three-bytes-after-the-data-set"),
    _bytes_case(lambda d: with_long_uid("long uid", d), 0xA900, "it has 204 characters",
                "uid-of-204-characters"),
    _bytes_case(_other_sop_uid, 0xA900, "differs from the C-STORE request", "sop-uid-differs"),
]


@pytest.mark.parametrize(("make", "status", "comment"), BYTES_CASES)
def test_bytes_that_cannot_be_read_back_are_refused(service: ServiceProcess, work: Path,
                                                    make: Callable[[Path], Path], status: int,
                                                    comment: str) -> None:
    path = make(work / "sent")
    [(got, error), echoed] = send_file(service.dicom_port, path)
    assert (got, echoed) == (status, (0x0000, None)), error
    assert error is not None and comment in error


def test_a_resend_with_other_content_is_refused(service: ServiceProcess) -> None:
    first = ct("fault resend")
    assert _store(service, first) == (0x0000, None)
    other = ct("fault resend")
    other.PixelData = bytes(b ^ 0x55 for b in other.PixelData)
    got, error = _store(service, other)
    assert got == 0xC000 and error is not None


@pytest.mark.parametrize(("calling", "called"), [pytest.param("INTRUDER", "IGRT", id="calling"),
                                                 pytest.param("LINAC", "PACS", id="called")])
def test_an_unknown_ae_title_is_rejected(service: ServiceProcess, calling: str,
                                         called: str) -> None:
    done = subprocess.run(["echoscu", "-aet", calling, "-aec", called, HOST,
                           str(service.dicom_port)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode != 0
    assert "Not Recognized" in done.stderr


# --- raw TCP -----------------------------------------------------------------------------------
def test_eleven_idle_connections_do_not_delay_the_linac(service: ServiceProcess) -> None:
    idle = idle_connections(service.dicom_port, 11)
    try:
        began = time.monotonic()
        done = subprocess.run(["echoscu", "-aet", "LINAC", "-aec", "IGRT", HOST,
                               str(service.dicom_port)], capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - began < 2.0
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.parametrize(("pdu_type", "length"), [pytest.param(0x01, 0xFFFF_FFF0, id="rq-4GiB"),
                                                  pytest.param(0x04, 64 << 20, id="p-data-64MiB")])
def test_a_pdu_too_large_is_refused_before_it_is_buffered(service: ServiceProcess,
                                                          pdu_type: int, length: int) -> None:
    sent, closed = flood_after_header(service.dicom_port, pdu_header(pdu_type, length),
                                      total_bytes=128 << 20, timeout_s=10.0)
    assert closed and sent < 16 << 20


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="http"),
        pytest.param(b"\x16\x03\x01\x00\x05hello", id="tls-on-plain"),
        pytest.param(b"\x00" * 64, id="zeros"),
        pytest.param(pdu_header(0x09, 2) + b"\x00\x00", id="unknown-pdu"),
        pytest.param(association_request()[:30], id="truncated-request"),
        pytest.param(association_request(calling="LINAC", called="IGRT") + b"\xff" * 40,
                     id="request-then-garbage"),
    ],
)
def test_raw_garbage_on_the_dicom_port(service: ServiceProcess, data: bytes) -> None:
    sock = socket.create_connection((HOST, service.dicom_port), timeout=5)
    try:
        sock.sendall(data)
        assert echo(host=HOST, port=service.dicom_port, called_ae="IGRT", calling_ae="TPS")
        assert closed_by_peer(sock, 3.0 + 3.0)
    finally:
        sock.close()


def test_fifty_connections_opened_and_closed_at_once(service: ServiceProcess) -> None:
    for _ in range(50):
        socket.create_connection((HOST, service.dicom_port), timeout=5).close()


# --- ZeroMQ ------------------------------------------------------------------------------------
def _ask_raw(svc: ServiceProcess, frames: list[bytes], timeout_s: float = 5.0) -> Any:
    req = svc.context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(svc.command)
    try:
        req.send_multipart(frames)
        assert req.poll(round(timeout_s * 1000)), f"no reply to {frames[0][:40]!r}"
        return json.loads(req.recv())
    finally:
        req.close()


ZMQ_CASES = [
    pytest.param([b"not json"], "not valid JSON", id="not-json"),
    pytest.param([b"\xff\xfe\x00"], "not UTF-8", id="binary"),
    pytest.param([b'{"cmd": "ping", "pad": "' + b"x" * 100_000 + b'"}'], "more than the 65536",
                 id="over-the-limit"),
    pytest.param([b'{"x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"], "nested too deeply",
                 id="deep-nesting"),
    pytest.param([b'{"cmd": "ping"}', b"{}"], "2 frames", id="two-frames"),
    pytest.param([b'{"cmd": "format_disk"}'], "unknown cmd", id="unknown-cmd"),
    pytest.param([b'{"cmd": "select_plan", "patient_id": "P", "plan_uid": "1.2.3"}'],
                 "cannot be selected", id="unknown-plan"),
    pytest.param([b'{"cmd": "result", "series_uid": "../../etc/passwd"}'],
                 "not a valid DICOM UID", id="path-as-uid"),
    pytest.param([b"[]"], "not an object", id="array"),
]


@pytest.mark.parametrize(("frames", "error"), ZMQ_CASES)
def test_bad_commands_get_a_sentence(service: ServiceProcess, frames: list[bytes],
                                     error: str) -> None:
    reply_ = _ask_raw(service, frames)
    assert reply_["ok"] is False and error in reply_["error"]


def _endpoint_port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


@pytest.mark.parametrize("which", ["command", "publish"])
def test_raw_tcp_garbage_on_a_zeromq_port(service: ServiceProcess, which: str) -> None:
    port = _endpoint_port(service.command if which == "command" else service.publish)
    sock = socket.create_connection((HOST, port), timeout=5)
    try:
        sock.sendall(b"\xff" * 10 + b"\x7f" + b"NOT ZMTP" * 100)
        assert closed_by_peer(sock, 5.0)
    finally:
        sock.close()


def test_a_requester_that_leaves_before_the_reply(service: ServiceProcess) -> None:
    for _ in range(20):
        req = service.context.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(service.command)
        req.send(b'{"cmd": "status"}')
        req.close()


def test_a_message_beyond_the_frame_limit_drops_only_that_client(
    service: ServiceProcess
) -> None:
    req = service.context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(service.command)
    try:
        req.send(b"x" * (17 << 20))
        assert req.poll(1000) == 0  # libzmq drops that peer; the others are served
    finally:
        req.close()
