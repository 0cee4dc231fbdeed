"""Hostile and broken inputs for the Storage SCP (issue 10): data sets that cannot be read back,
crafted PDUs, idle connections; and a pynetdicom sender of a file's bytes exactly as they are
(pynetdicom's chunked send), so that a data set can be sent that no encoder would produce."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_fragments
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import AE, _config
from pynetdicom.dsutils import split_dataset
from scp_client import HOST, IGRT, WAIT_S, ct

LONG_UID = "1." + ".".join(["12345678"] * 22) + ".1234"  # 204 characters


@contextlib.contextmanager
def lenient_sender() -> Iterator[None]:
    """Let this process's pynetdicom send a file's bytes as they are and UIDs it would refuse."""
    saved = (_config.STORE_SEND_CHUNKED_DATASET, _config.VALIDATORS["UI"])
    _config.STORE_SEND_CHUNKED_DATASET = True
    _config.VALIDATORS["UI"] = lambda value: (True, "")
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET, _config.VALIDATORS["UI"] = saved


def send_file(port: int, path: Path, *, calling: str = "LINAC") -> list[tuple[int, str | None]]:
    """C-STORE the file's data set bytes as they are, then C-ECHO in the same association (it
    must still be usable): ``[(store status, comment), (echo status, None)]``."""
    meta, _ = split_dataset(path)
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = WAIT_S
    ae.add_requested_context(meta.MediaStorageSOPClassUID, [meta.TransferSyntaxUID])
    ae.add_requested_context("1.2.840.10008.1.1")
    with lenient_sender():
        assoc = ae.associate(HOST, port, ae_title=IGRT)
        assert assoc.is_established
        try:
            status = assoc.send_c_store(path)
            result = [(int(status.Status) if "Status" in status else -1,
                       status.get("ErrorComment"))]
            echo = assoc.send_c_echo()
            result.append((int(echo.Status) if "Status" in echo else -1, None))
        finally:
            if assoc.is_established:
                assoc.release()
    return result


def _save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _compressed(name: str, syntax: str) -> Dataset:
    ds = ct(name, size=32)
    if syntax != JPEGLSLossless:
        ds.compress(syntax, generate_instance_uid=False)
        return ds
    with tempfile.TemporaryDirectory() as tmp:  # pydicom has no JPEG-LS encoder here: DCMTK
        plain, encoded = Path(tmp) / "plain.dcm", Path(tmp) / "jls.dcm"
        _save(ds, plain)
        done = subprocess.run(["dcmcjpls", "+el", str(plain), str(encoded)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return pydicom.dcmread(encoded)


def corrupt_pixels(name: str, syntax: str, directory: Path) -> Path:
    """A CT whose compressed frame is damaged past its first bytes (header intact)."""
    ds = _compressed(name, syntax)
    frame = bytearray(next(generate_fragments(ds.PixelData)))
    keep = 64 if syntax == RLELossless else 24
    frame[keep:] = b"\xff" * (len(frame) - keep)
    ds.PixelData = encapsulate([bytes(frame)])
    return _save(ds, directory / f"{name}.dcm")


def truncated_pixels(name: str, syntax: str, directory: Path) -> Path:
    ds = _compressed(name, syntax)
    frame = next(generate_fragments(ds.PixelData))
    ds.PixelData = encapsulate([frame[: len(frame) // 3]])
    return _save(ds, directory / f"{name}.dcm")


def uncompressed_in_compressed_syntax(name: str, directory: Path) -> Path:
    """Native pixel bytes declared as JPEG 2000 (encapsulated but not a codestream)."""
    ds = ct(name, size=32)
    raw = ds.PixelData
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([raw])
    return _save(ds, directory / f"{name}.dcm")


def explicit_on_implicit(name: str, directory: Path) -> Path:
    """An explicit VR data set in a file whose meta says implicit VR."""
    explicit = _save(ct(name, size=16), directory / f"{name}-explicit.dcm")
    return _with_meta_syntax(explicit, ImplicitVRLittleEndian, directory / f"{name}.dcm")


def implicit_on_explicit(name: str, directory: Path) -> Path:
    ds = ct(name, size=16)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    implicit = _save(ds, directory / f"{name}-implicit.dcm")
    return _with_meta_syntax(implicit, ExplicitVRLittleEndian, directory / f"{name}.dcm")


def _with_meta_syntax(source: Path, syntax: UID, target: Path) -> Path:
    """``source``'s data set as it is, behind a file meta that names ``syntax``."""
    meta = pydicom.dcmread(source).file_meta
    _, offset = split_dataset(source)
    meta.TransferSyntaxUID = syntax
    with target.open("wb") as f:
        f.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(f, meta)  # type: ignore[arg-type]
        f.write(source.read_bytes()[offset:])
    return target


def with_trailing_bytes(name: str, directory: Path, trailer: bytes) -> Path:
    path = _save(ct(name, size=16), directory / f"{name}.dcm")
    path.write_bytes(path.read_bytes() + trailer)
    return path


def with_long_uid(name: str, directory: Path) -> Path:
    ds = ct(name, size=16)
    ds.SOPInstanceUID = LONG_UID
    ds.file_meta.MediaStorageSOPInstanceUID = UID(LONG_UID)
    return _save(ds, directory / f"{name}.dcm")


CORRUPT_SYNTAXES = (JPEG2000Lossless, RLELossless, JPEGLSLossless)


# --- raw TCP -------------------------------------------------------------------------------------
def idle_connections(port: int, n: int) -> list[socket.socket]:
    """``n`` TCP connections that never send anything (close them when done)."""
    return [socket.create_connection((HOST, port), timeout=WAIT_S) for _ in range(n)]


def closed_by_peer(sock: socket.socket, timeout_s: float) -> bool:
    """Does the peer close ``sock`` within ``timeout_s`` (reading what it sends meanwhile)?"""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


def closed_among(socks: list[socket.socket], timeout_s: float, settle_s: float) -> list[int]:
    """The indexes of ``socks`` the peer closes: those closed within ``timeout_s``, and within
    ``settle_s`` after the first one closed."""
    closed: list[int] = []
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        open_ = [s for n, s in enumerate(socks) if n not in closed]
        readable, _, _ = select.select(open_, [], [], left)
        for sock in readable:
            try:
                gone = not sock.recv(65536)
            except OSError:
                gone = True
            if gone:
                closed.append(socks.index(sock))
                deadline = min(deadline, time.monotonic() + settle_s)
    return sorted(closed)


def pdu_header(pdu_type: int, length: int) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, length)


def flood_after_header(port: int, header: bytes, total_bytes: int,
                       timeout_s: float) -> tuple[int, bool]:
    """Send ``header`` then zeros up to ``total_bytes``; returns (bytes accepted before the peer
    closed, closed). A service that buffers the announced PDU accepts everything."""
    sock = socket.create_connection((HOST, port), timeout=timeout_s)
    sent = 0
    try:
        sock.sendall(header)
        chunk = b"\x00" * 65536
        deadline = time.monotonic() + timeout_s
        while sent < total_bytes and time.monotonic() < deadline:
            try:
                sent += sock.send(chunk)
            except TimeoutError:
                continue
            except OSError:
                return sent, True
        return sent, closed_by_peer(sock, 2.0)
    finally:
        sock.close()


def send_raw(port: int, data: bytes, timeout_s: float = 5.0) -> bool:
    """Send ``data`` on a new connection; True if the service closes the connection."""
    sock = socket.create_connection((HOST, port), timeout=timeout_s)
    try:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        return closed_by_peer(sock, timeout_s)
    finally:
        sock.close()


def association_request(calling: str = "LINAC", called: str = IGRT) -> bytes:
    """A valid A-ASSOCIATE-RQ PDU (Verification) as pynetdicom encodes it."""
    from pynetdicom.pdu import A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
    from pynetdicom.presentation import build_context

    primitive: Any = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    context = build_context("1.2.840.10008.1.1")
    context.context_id = 1
    primitive.presentation_context_definition_list = [context]
    item = MaximumLengthNotification()
    item.maximum_length_received = 16384
    primitive.user_information = [item]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())
