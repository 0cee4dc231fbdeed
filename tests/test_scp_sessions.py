"""services.scp.sessions: association negotiation and how associations end, over a real
network with real SCUs and a real store."""

from __future__ import annotations

import logging
import queue
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dicom_factory as factory
import pytest
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
)
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
)
from scp_client import (
    HOST,
    IGRT,
    associated,
    contexts_for,
    ct,
    dcmtk,
    make_config,
    next_events,
    reply,
    storescu,
    summary,
)

from igrt.store import AssociationOutcome, Store
from services.scp import SeriesEvent, StorageScp


# --- association negotiation ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("calling", "called", "diagnostic", "dcmtk_reason", "logged"),
    [
        pytest.param(
            "INTRUDER",
            IGRT,
            0x03,
            "Calling AE Title Not Recognized",
            "calling AE title 'INTRUDER' not recognised",
            id="unknown-calling-ae",
        ),
        pytest.param(
            "LINAC",
            "PACS",
            0x07,
            "Called AE Title Not Recognized",
            "called AE title 'PACS' not recognised",
            id="wrong-called-ae",
        ),
    ],
)
def test_association_from_unknown_or_to_wrong_ae_is_rejected(
    scp: StorageScp,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    calling: str,
    called: str,
    diagnostic: int,
    dcmtk_reason: str,
    logged: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="services.scp")
    with associated(scp.port, calling=calling, called=called) as assoc:
        assert assoc.is_rejected
        rejection = assoc.acceptor.primitive
        assert rejection is not None
        # rejected-permanent, by the service user (ACSE), diagnostic as the standard numbers it
        assert (rejection.result, rejection.result_source, rejection.diagnostic) == (
            0x01,
            0x01,
            diagnostic,
        )

    paths = factory.write([ct("rejected")], tmp_path / "send")
    done = dcmtk("storescu", "-aet", calling, "-aec", called, HOST, str(scp.port), *paths)
    assert done.returncode != 0
    assert "Association Rejected" in done.stderr and dcmtk_reason in done.stderr
    # pynetdicom's and storescu's: the service logs on its association thread, which may still
    # be at it when storescu has exited (seen once in CI on the loaded machine)
    deadline = time.monotonic() + 10.0
    while sum(logged in r.getMessage() for r in caplog.records) < 2 and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(logged in r.getMessage() for r in caplog.records) == 2


def test_negotiation_refuses_unsupported_classes_and_lossy_syntaxes_prefers_uncompressed(
    scp: StorageScp,
) -> None:
    requested = [
        (MRImageStorage, [ExplicitVRLittleEndian]),
        (CTImageStorage, [JPEGBaseline8Bit]),
        (CTImageStorage, [JPEGLSLossless, ImplicitVRLittleEndian, ExplicitVRLittleEndian]),
    ]
    with associated(scp.port, calling="LINAC", contexts=requested) as assoc:
        assert assoc.is_established
        accepted = [(cx.abstract_syntax, cx.transfer_syntax[0]) for cx in assoc.accepted_contexts]
        rejected = sorted((cx.abstract_syntax, cx.result) for cx in assoc.rejected_contexts)
        assert accepted == [(CTImageStorage, ExplicitVRLittleEndian)]  # uncompressed preferred
        # 0x03: abstract syntax not supported; 0x04: transfer syntaxes not supported
        assert rejected == [(CTImageStorage, 0x04), (MRImageStorage, 0x03)]
        mr = ct("mr")
        mr.SOPClassUID = mr.file_meta.MediaStorageSOPClassUID = MRImageStorage
        with pytest.raises(ValueError, match="No presentation context"):
            assoc.send_c_store(mr)


# --- how associations end ------------------------------------------------------------------------
def test_pynetdicom_abort_is_recorded_and_reported(
    scp: StorageScp, store: Store, events: queue.Queue[SeriesEvent]
) -> None:
    sent = ct("aborted")
    with associated(scp.port, calling="LINAC", contexts=contexts_for([sent])) as assoc:
        assert reply(assoc.send_c_store(sent)) == (0, None)
        assoc.abort()
    _assert_aborted(store, events, sent.SeriesInstanceUID)


def test_storescu_abort_is_recorded_and_reported(
    scp: StorageScp, store: Store, events: queue.Queue[SeriesEvent], tmp_path: Path
) -> None:
    sent = ct("storescu abort")
    paths = factory.write([sent], tmp_path / "send")
    done = storescu(scp.port, *paths, calling="LINAC", extra=["--abort"])
    assert done.returncode == 0, done.stderr
    _assert_aborted(store, events, sent.SeriesInstanceUID)


_CRASHING_SCU = textwrap.dedent(
    """
    import os, sys
    import pydicom
    from pynetdicom import AE
    ae = AE(ae_title="LINAC")
    ds = pydicom.dcmread(sys.argv[2])
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", int(sys.argv[1]), ae_title="IGRT")
    print(f"0x{assoc.send_c_store(ds).Status:04X}", flush=True)
    os._exit(0)  # no release, no abort: the kernel closes the connection
    """
)


def test_connection_closed_without_release_counts_as_aborted(
    scp: StorageScp, store: Store, events: queue.Queue[SeriesEvent], tmp_path: Path
) -> None:
    sent = ct("crashed scu")
    [path] = factory.write([sent], tmp_path / "send")
    done = subprocess.run(
        [sys.executable, "-c", _CRASHING_SCU, str(scp.port), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "0x0000\n"), done.stderr
    _assert_aborted(store, events, sent.SeriesInstanceUID)


def _assert_aborted(store: Store, events: queue.Queue[SeriesEvent], series_uid: str) -> None:
    received = next_events(events, 2)
    assert summary(received) == [("instance", series_uid), ("aborted", series_uid)]
    info = store.series_arrivals(series_uid)
    assert info is not None
    assert (info.last_association.outcome, info.released) == (AssociationOutcome.ABORTED, False)


def test_stop_aborts_open_associations(
    state_dir: Path, store: Store, events: queue.Queue[SeriesEvent]
) -> None:
    sent = ct("open at stop")
    server = StorageScp(make_config(state_dir), store, on_series_activity=events.put)
    server.start()
    with associated(server.port, calling="LINAC", contexts=contexts_for([sent])) as assoc:
        assert reply(assoc.send_c_store(sent)) == (0, None)
        server.stop()
        _assert_aborted(store, events, sent.SeriesInstanceUID)
    server.stop()  # idempotent


