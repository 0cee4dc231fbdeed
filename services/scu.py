"""A minimal Storage SCU (pynetdicom) for ``igrt demo`` and the integration tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pydicom
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from igrt.dicom.files import scan
from services.ae import make_ae


def send(paths: Iterable[Path], *, host: str, port: int, called_ae: str, calling_ae: str,
         timeout_s: float = 30.0, abort: bool = False) -> list[int]:
    """C-STORE every file in one association; returns the statuses. ``abort=True`` aborts the
    association instead of releasing it (to test that an aborted delivery never registers)."""
    files = [Path(p) for p in paths]
    datasets = [pydicom.dcmread(p) for p in files]
    ae = make_ae(calling_ae, timeout_s=timeout_s)
    contexts = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
                       for ds in datasets})
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(host, port, ae_title=called_ae)
    if not assoc.is_established:
        raise ConnectionError(f"association with {called_ae}@{host}:{port} as {calling_ae} "
                              "was rejected or failed")
    statuses = []
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            statuses.append(int(status.Status) if "Status" in status else -1)
    finally:
        if abort:
            assoc.abort()
        else:
            assoc.release()
    return statuses


def send_directory(directory: Path, **kwargs: object) -> list[int]:
    """Send every DICOM file of a directory (non-DICOM files such as phantom.json are left)."""
    found = scan(directory)
    paths: list[Path] = [p for s in found.image_series for p in s.paths]
    paths += [f.path for f in (*found.rt_plans, *found.structure_sets, *found.registrations)]
    return send(paths, **kwargs)  # type: ignore[arg-type]


def echo(*, host: str, port: int, called_ae: str, calling_ae: str,
         timeout_s: float = 5.0) -> bool:
    """C-ECHO: is the SCP there and does it accept this calling AE?"""
    ae = make_ae(calling_ae, timeout_s=timeout_s)
    ae.add_requested_context(Verification)
    assoc = ae.associate(host, port, ae_title=called_ae)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and int(status.Status) == 0
    finally:
        assoc.release()
