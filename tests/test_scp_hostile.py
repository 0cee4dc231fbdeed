"""The Storage SCP against hostile and broken input (issue 10, findings 2-5 and 7), over a real
network with real SCUs and a real store: idle connections never lock the linac out, a PDU too
large is refused before it is buffered, what cannot be read back is refused with a status (never
an abort), a re-send with other content is refused and the first one kept."""

from __future__ import annotations

import queue
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import hostile
import pytest
from scp_client import ct, echo, instance_files, make_config, store_all

from igrt.store import Store
from services.scp import SeriesEvent, StorageScp


def readable_by_dcmtk(paths: list[Path]) -> list[str]:
    """The stored files DCMTK's dcmdump cannot read (with its complaint)."""
    bad = []
    for path in paths:
        done = subprocess.run(["dcmdump", "-q", "+E", str(path)], capture_output=True,
                              text=True, timeout=60, check=False)
        if done.returncode != 0 or "E:" in done.stderr:
            bad.append(f"{path.name}: {done.stderr.strip()[:200]}")
    return bad


# --- finding 2: idle connections ------------------------------------------------------------------
@pytest.mark.parametrize("n_idle", [11, 40])
def test_idle_connections_do_not_delay_the_linacs_echo(scp: StorageScp, n_idle: int) -> None:
    idle = hostile.idle_connections(scp.port, n_idle)
    try:
        began = time.monotonic()
        assert echo(scp.port, calling="LINAC") == 0x0000
        assert time.monotonic() - began < 2.0
        assert echo(scp.port, calling="TPS") == 0x0000
    finally:
        for sock in idle:
            sock.close()


def test_one_idle_connection_is_closed_when_too_many_wait(scp: StorageScp) -> None:
    """One more than max_pending_connections (16): one of them is closed, an early one (the
    oldest in the order the SCP's connection threads saw them open, which a loaded machine
    may shuffle a little), and the other 16 stay open."""
    idle = hostile.idle_connections(scp.port, 17)
    try:
        closed = hostile.closed_among(idle, timeout_s=5.0, settle_s=1.0)
        assert len(closed) == 1 and closed[0] < 8, closed
    finally:
        for sock in idle:
            sock.close()


def test_an_idle_connection_is_closed_after_the_request_timeout(tmp_path: Path,
                                                                store: Store) -> None:
    cfg = make_config(tmp_path / "state")
    cfg = replace(cfg, dicom=replace(cfg.dicom, limits=replace(cfg.dicom.limits,
                                                               request_timeout_s=1.0)))
    with StorageScp(cfg, store, on_series_activity=lambda e: None) as server:
        [sock] = hostile.idle_connections(server.port, 1)
        began = time.monotonic()
        try:
            assert hostile.closed_by_peer(sock, 5.0)
        finally:
            sock.close()
        assert time.monotonic() - began < 3.0


# --- finding 3: PDU size -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pdu_type", "length"),
    [pytest.param(0x01, 0xFFFF_FFF0, id="associate-rq-4GiB"),
     pytest.param(0x01, 64 * 1024 * 1024, id="associate-rq-64MiB"),
     pytest.param(0x04, 0xFFFF_FFF0, id="p-data-4GiB")],
)
def test_a_pdu_announced_too_large_closes_the_connection_before_it_is_read(
    scp: StorageScp, pdu_type: int, length: int
) -> None:
    sent, closed = hostile.flood_after_header(scp.port, hostile.pdu_header(pdu_type, length),
                                      total_bytes=128 * 1024 * 1024, timeout_s=10.0)
    assert closed
    assert sent < 16 * 1024 * 1024, f"{sent} bytes were accepted before the connection closed"
    assert echo(scp.port) == 0x0000


# --- finding 4: refuse what cannot be read back ---------------------------------------------------
@pytest.mark.parametrize("syntax", hostile.CORRUPT_SYNTAXES, ids=lambda s: s.name)
def test_undecodable_compressed_pixel_data_is_refused(
    scp: StorageScp, store: Store, tmp_path: Path, syntax: str
) -> None:
    for path in (hostile.corrupt_pixels(f"corrupt {syntax}", syntax, tmp_path),
                 hostile.truncated_pixels(f"truncated {syntax}", syntax, tmp_path)):
        [(status, comment), echoed] = hostile.send_file(scp.port, path)
        assert status == 0xC000, (path.name, comment)
        assert comment is not None and "cannot be decoded" in comment
        assert echoed == (0x0000, None)
    assert instance_files(store.root) == []
    assert list((store.root / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("make", "comment"),
    [
        pytest.param(lambda d: hostile.explicit_on_implicit("evr on ivr", d),
                     "explicit VR data on an implicit VR context", id="explicit-on-implicit"),
        pytest.param(lambda d: hostile.implicit_on_explicit("ivr on evr", d),
                     "data set does not match the transfer syntax", id="implicit-on-explicit"),
        pytest.param(lambda d: hostile.with_trailing_bytes("garbage", d, bytes(range(256)) * 3),
                     "", id="garbage-after-the-data-set"),
        pytest.param(lambda d: hostile.with_trailing_bytes("odd tail", d, b"\x01\x02\x03"),
                     "", id="three-bytes-after-the-data-set"),
        pytest.param(lambda d: hostile.uncompressed_in_compressed_syntax("native as j2k", d),
                     "cannot be decoded", id="native-pixels-declared-jpeg2000"),
    ],
)
def test_data_that_dcmtk_could_not_read_back_is_refused(
    scp: StorageScp, store: Store, tmp_path: Path, make: object, comment: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    [(status, error), echoed] = hostile.send_file(scp.port, path)
    assert status == 0xC000, error
    assert error is not None and comment in error
    assert echoed == (0x0000, None)
    assert instance_files(store.root) == []


def test_everything_acknowledged_reads_back_with_dcmtk(scp: StorageScp, store: Store,
                                                       tmp_path: Path) -> None:
    from pydicom.uid import JPEG2000Lossless, RLELossless

    good = [ct("plain", size=16)]
    for syntax in (JPEG2000Lossless, RLELossless):
        ds = ct(f"good {syntax}", size=32)
        ds.compress(syntax, generate_instance_uid=False)
        good.append(ds)
    for ds in good:
        assert store_all(scp.port, [ds], calling="LINAC") == [(0x0000, None)]
    stored = instance_files(store.root)
    assert len(stored) == 3
    assert readable_by_dcmtk(stored) == []


# --- finding 5: over-long UIDs ------------------------------------------------------------------
def test_an_over_long_sop_instance_uid_gets_a_status_not_an_abort(
    scp: StorageScp, store: Store, tmp_path: Path
) -> None:
    long_uid = hostile.with_long_uid("long uid", tmp_path)
    [(status, comment), echoed] = hostile.send_file(scp.port, long_uid)
    assert status == 0xA900
    assert comment == "invalid SOP Instance UID: it has 204 characters, more than 64"
    assert echoed == (0x0000, None)  # the association is still there
    assert instance_files(store.root) == []


# --- finding 7: a re-sent SOP instance -----------------------------------------------------------
def test_a_resend_with_other_pixels_is_refused_and_an_identical_one_accepted(
    scp: StorageScp, store: Store, events: queue.Queue[SeriesEvent]
) -> None:
    first = ct("resent", size=16)
    assert store_all(scp.port, [first], calling="LINAC") == [(0x0000, None)]
    [path] = instance_files(store.root)
    kept = path.read_bytes()
    other = ct("resent", size=16)
    other.PixelData = bytes(b ^ 0xFF for b in other.PixelData)
    assert store_all(scp.port, [other], calling="LINAC") == [
        (0xC000, "UID already stored for another patient/series/role")]
    assert path.read_bytes() == kept
    assert store_all(scp.port, [ct("resent", size=16)], calling="LINAC") == [(0x0000, None)]
    assert path.read_bytes() == kept


# --- raw bytes ---------------------------------------------------------------------------------
@pytest.fixture
def quick_scp(tmp_path: Path, store: Store) -> Iterator[StorageScp]:
    """An SCP whose request timeout is 2 s, so a connection that sends garbage ends quickly."""
    cfg = make_config(tmp_path / "state")
    cfg = replace(cfg, dicom=replace(cfg.dicom, limits=replace(cfg.dicom.limits,
                                                               request_timeout_s=2.0)))
    with StorageScp(cfg, store, on_series_activity=lambda e: None) as server:
        yield server


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: igrt\r\n\r\n", id="http"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
                     id="tls-hello-on-plain"),
        pytest.param(hostile.pdu_header(0x09, 4) + b"\x00" * 4, id="unknown-pdu-type"),
        pytest.param(hostile.pdu_header(0x04, 12) + b"\x00" * 12, id="p-data-before-association"),
        pytest.param(hostile.pdu_header(0x01, 10) + b"\x00" * 10, id="malformed-associate-rq"),
        pytest.param(hostile.association_request()[:40], id="truncated-associate-rq"),
        pytest.param(b"\x00" * 100, id="zeros"),
    ],
)
def test_raw_garbage_ends_that_connection_only(quick_scp: StorageScp, data: bytes) -> None:
    sock = socket.create_connection(("127.0.0.1", quick_scp.port), timeout=5)
    try:
        sock.sendall(data)
        assert echo(quick_scp.port) == 0x0000  # answered while the garbage is still open
        assert hostile.closed_by_peer(sock, 2.0 + 3.0)
    finally:
        sock.close()


def test_a_valid_request_after_garbage_elsewhere_is_accepted(quick_scp: StorageScp) -> None:
    assert hostile.send_raw(quick_scp.port, b"\x00" * 100, timeout_s=5.0)
    sock = socket.create_connection(("127.0.0.1", quick_scp.port), timeout=5)
    try:
        sock.sendall(hostile.association_request())
        reply = sock.recv(6)
        assert reply[:1] == b"\x02"  # A-ASSOCIATE-AC
    finally:
        sock.close()
