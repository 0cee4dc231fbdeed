"""The Storage SCP over a real network: real SCUs (pynetdicom and DCMTK), a real store in a temp
directory, free ports. Every wait has a timeout; events are awaited on a queue, never slept for."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import dicom_factory as factory
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    SpatialRegistrationStorage,
    Verification,
)

from igrt.config import Config, parse_config
from igrt.core.kinds import InstanceKind, Role
from igrt.store import AssociationOutcome, Store
from services.scp import ActivityKind, SeriesEvent, StorageScp

WAIT_S = 10.0  # upper bound of every wait; the tests normally finish their waits in milliseconds
IGRT = "IGRT"
HOST = "127.0.0.1"


# --- fixtures ------------------------------------------------------------------------------------
def make_config(state_dir: Path) -> Config:
    """Defaults (AE IGRT; peers LINAC = imaging, TPS = planning) on a free loopback port."""
    return parse_config({"dicom": {"port": 0}, "storage": {"dir": str(state_dir)}})


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state_dir: Path) -> Iterator[Store]:
    with Store.open(state_dir) as opened:
        yield opened


@pytest.fixture
def events() -> queue.Queue[SeriesEvent]:
    return queue.Queue()


@pytest.fixture
def scp(state_dir: Path, store: Store, events: queue.Queue[SeriesEvent]) -> Iterator[StorageScp]:
    with StorageScp(make_config(state_dir), store, on_series_activity=events.put) as server:
        yield server


# --- data sets -----------------------------------------------------------------------------------
def ct(name: str, *, size: int = 8, patient_id: str = "PAT-001") -> Dataset:
    """One single-frame CT slice (``size`` x ``size``) with everything igrt needs."""
    return factory.ct_series(n_slices=1, rows=size, columns=size, name=name, patient_id=patient_id)[
        0
    ]


def rt_plan(name: str) -> Dataset:
    ds = factory.instance(RTPlanStorage, name=name)
    ds.RTPlanLabel = "PELVIS"
    return ds


def structure_set(name: str) -> Dataset:
    ds = factory.instance(RTStructureSetStorage, name=name, modality="RTSTRUCT")
    frame = ds.FrameOfReferenceUID
    del ds.FrameOfReferenceUID
    ds.StructureSetLabel = "CTV"
    series = Dataset()
    series.SeriesInstanceUID = factory.uid(name, "planning ct")
    study = Dataset()
    study.RTReferencedSeriesSequence = DicomSequence([series])
    item = Dataset()
    item.FrameOfReferenceUID = frame
    item.RTReferencedStudySequence = DicomSequence([study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([item])
    return ds


def registration(name: str) -> Dataset:
    ds = factory.instance(SpatialRegistrationStorage, name=name, modality="REG")
    item = Dataset()
    item.FrameOfReferenceUID = factory.uid(name, "cbct frame")
    ds.RegistrationSequence = DicomSequence([item])
    return ds


# --- SCU helpers ---------------------------------------------------------------------------------
@contextlib.contextmanager
def associated(
    port: int,
    *,
    calling: str = "TPS",
    called: str = IGRT,
    contexts: Sequence[tuple[str, Sequence[str]]] = ((Verification, [ImplicitVRLittleEndian]),),
) -> Iterator[Association]:
    """A pynetdicom association (released on exit unless the test ended it)."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = WAIT_S
    for sop_class, syntaxes in contexts:
        ae.add_requested_context(sop_class, list(syntaxes))
    assoc = ae.associate(HOST, port, ae_title=called)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def contexts_for(datasets: Sequence[Dataset]) -> list[tuple[str, list[str]]]:
    return [(ds.SOPClassUID, [ds.file_meta.TransferSyntaxUID]) for ds in datasets]


def store_all(
    port: int, datasets: Sequence[Dataset], *, calling: str = "TPS"
) -> list[tuple[int, str | None]]:
    """C-STORE each data set in one association (then released): [(status, error comment)]."""
    with associated(port, calling=calling, contexts=contexts_for(datasets)) as assoc:
        assert assoc.is_established
        return [reply(assoc.send_c_store(ds)) for ds in datasets]


def reply(status: Dataset) -> tuple[int, str | None]:
    return int(status.Status), status.get("ErrorComment")


def echo(port: int, *, calling: str = "LINAC") -> int:
    with associated(port, calling=calling) as assoc:
        assert assoc.is_established
        return int(assoc.send_c_echo().Status)


def dcmtk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, check=False
    )


def storescu(
    port: int, *paths: Path, calling: str = "TPS", extra: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    return dcmtk("storescu", *extra, "-aet", calling, "-aec", IGRT, HOST, str(port), *paths)


def next_events(events: queue.Queue[SeriesEvent], n: int) -> list[SeriesEvent]:
    return [events.get(timeout=WAIT_S) for _ in range(n)]


def summary(received: Sequence[SeriesEvent]) -> list[tuple[str, str]]:
    return [(e.event.value, e.series_uid) for e in received]


def instance_files(state_dir: Path) -> list[Path]:
    return sorted(p for p in (state_dir / "instances").rglob("*") if p.is_file())


# --- verification --------------------------------------------------------------------------------
def test_c_echo_answers_pynetdicom_and_echoscu(scp: StorageScp) -> None:
    assert echo(scp.port) == 0x0000
    done = dcmtk("echoscu", "-aet", "LINAC", "-aec", IGRT, HOST, str(scp.port))
    assert (done.returncode, done.stderr) == (0, "")


# --- storage -------------------------------------------------------------------------------------
def test_pynetdicom_c_store_is_on_disk_byte_for_byte(
    scp: StorageScp, store: Store, events: queue.Queue[SeriesEvent]
) -> None:
    sent = ct("pynetdicom")
    assert store_all(scp.port, [sent], calling="LINAC") == [(0x0000, None)]

    received = next_events(events, 2)
    series = sent.SeriesInstanceUID
    assert summary(received) == [("instance", series), ("released", series)]
    first, last = received
    assert (first.kind, first.role, first.calling_ae) == (
        InstanceKind.CT_IMAGE,
        Role.IMAGING,
        "LINAC",
    )
    assert first.sop_instance_uid == sent.SOPInstanceUID
    assert first.association_id == last.association_id and len(first.association_id) == 32
    assert first.monotonic_s <= last.monotonic_s

    [path] = store.series_instances(series)
    stored = pydicom.dcmread(path)
    assert stored == sent  # every element, pixel data included
    assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert stored.file_meta.MediaStorageSOPInstanceUID == sent.SOPInstanceUID
    assert stored.file_meta.SourceApplicationEntityTitle == "LINAC"
    assert np.array_equal(stored.pixel_array, sent.pixel_array)
    info = store.series_arrivals(series)
    assert info is not None
    assert (info.instance_count, info.released, info.last_association.association_id) == (
        1,
        True,
        first.association_id,
    )


def test_storescu_sends_plan_structures_and_ct(
    scp: StorageScp, store: Store, events: queue.Queue[SeriesEvent], tmp_path: Path
) -> None:
    slices = factory.ct_series(n_slices=2, rows=8, columns=8, name="dcmtk")
    plan, rtstruct = rt_plan("dcmtk plan"), structure_set("dcmtk rtss")
    paths = factory.write([plan, rtstruct, *slices], tmp_path / "send", prefix="obj")

    done = storescu(scp.port, *paths, calling="TPS")

    assert done.returncode == 0, done.stderr
    [stored_plan] = store.plans_for_patient("PAT-001")
    assert (stored_plan.sop_instance_uid, stored_plan.label, stored_plan.role) == (
        plan.SOPInstanceUID,
        "PELVIS",
        Role.PLANNING,
    )
    assert pydicom.dcmread(stored_plan.path) == plan
    frame = rtstruct.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    [stored_rtss] = store.structure_sets_for_frame("PAT-001", frame)
    assert stored_rtss.referenced_series_uids == (factory.uid("dcmtk rtss", "planning ct"),)
    ct_series = slices[0].SeriesInstanceUID
    assert [pydicom.dcmread(p).SOPInstanceUID for p in store.series_instances(ct_series)] == sorted(
        s.SOPInstanceUID for s in slices
    )
    assert store.ct_series_for_frame("PAT-001", slices[0].FrameOfReferenceUID) == [ct_series]
    received = next_events(events, 7)  # 4 instances, then one "released" per series
    assert [e.event for e in received] == [ActivityKind.INSTANCE] * 4 + [ActivityKind.RELEASED] * 3
    assert {e.series_uid for e in received[4:]} == {
        plan.SeriesInstanceUID,
        rtstruct.SeriesInstanceUID,
        ct_series,
    }


@pytest.mark.parametrize(
    ("encode", "sender", "transfer_syntax"),
    [
        # storescu proposes a compressed syntax only when told to (-R: only the files' classes)
        pytest.param(("dcmcrle",), ("storescu", "-R", "-xr"), RLELossless, id="rle"),
        pytest.param(
            ("dcmcjpeg", "+e1"), ("storescu", "-R", "-xs"), JPEGLosslessSV1, id="jpeg-lossless-sv1"
        ),
        pytest.param(
            ("dcmcjpls", "+el"), ("storescu", "-R", "-xt"), JPEGLSLossless, id="jpeg-ls-lossless"
        ),
        pytest.param((), ("storescu", "-R", "-xv"), JPEG2000Lossless, id="jpeg2000-lossless"),
        pytest.param(
            ("dcmconv", "+td"),
            ("storescu", "-R", "-xd"),
            DeflatedExplicitVRLittleEndian,
            id="deflated",
        ),
        pytest.param(
            ("dcmconv", "+ti"), ("storescu", "-R", "-xi"), ImplicitVRLittleEndian, id="implicit"
        ),
        # storescu has no option for process 14 without selection value 1
        pytest.param(("dcmcjpeg", "+el"), ("pynetdicom",), JPEGLossless, id="jpeg-lossless-p14"),
        pytest.param((), ("pynetdicom",), JPEG2000Lossless, id="jpeg2000-lossless-pynetdicom"),
        pytest.param((), ("pynetdicom",), RLELossless, id="rle-pynetdicom"),
    ],
)
def test_lossless_transfer_syntaxes_are_stored_as_received(
    scp: StorageScp,
    store: Store,
    events: queue.Queue[SeriesEvent],
    tmp_path: Path,
    encode: tuple[str, ...],
    sender: tuple[str, ...],
    transfer_syntax: str,
) -> None:
    original = ct(f"ts {transfer_syntax}", size=32)
    [plain] = factory.write([original], tmp_path / "plain")
    sent_path = tmp_path / "sent.dcm"
    if encode:
        done = dcmtk(*encode, plain, sent_path)
        assert done.returncode == 0, done.stderr
    else:
        compressed = pydicom.dcmread(plain)
        compressed.compress(transfer_syntax, generate_instance_uid=False)
        compressed.save_as(sent_path)
    sent = pydicom.dcmread(sent_path)
    assert sent.file_meta.TransferSyntaxUID == transfer_syntax

    if sender[0] == "storescu":
        done = storescu(scp.port, sent_path, calling="LINAC", extra=sender[1:])
        assert (done.returncode, done.stderr) == (0, "")
    else:
        assert store_all(scp.port, [sent], calling="LINAC") == [(0x0000, None)]

    assert summary(next_events(events, 2)) == [
        ("instance", original.SeriesInstanceUID),
        ("released", original.SeriesInstanceUID),
    ]
    [path] = store.series_instances(original.SeriesInstanceUID)
    stored = pydicom.dcmread(path)
    assert stored.file_meta.TransferSyntaxUID == transfer_syntax
    assert stored == sent  # every element; compressed pixel data byte for byte
    assert np.array_equal(stored.pixel_array, original.pixel_array)


def test_enhanced_ct_from_imaging_peer_is_stored(
    scp: StorageScp, store: Store, events: queue.Queue[SeriesEvent]
) -> None:
    enhanced = factory.enhanced_ct(factory.ct_series(n_slices=3, rows=8, columns=8, name="ect"))
    assert store_all(scp.port, [enhanced], calling="LINAC") == [(0x0000, None)]
    assert [e.kind for e in next_events(events, 2)] == [InstanceKind.ENHANCED_CT] * 2
    [path] = store.series_instances(enhanced.SeriesInstanceUID)
    assert pydicom.dcmread(path).NumberOfFrames == 3


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
    assert sum(logged in r.getMessage() for r in caplog.records) == 2  # pynetdicom + storescu


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


# --- refusals ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("calling", "refused", "comment"),
    [
        pytest.param(
            "LINAC",
            rt_plan("plan from linac"),
            "RT Plan not accepted from imaging peer LINAC",
            id="rt-plan-from-imaging",
        ),
        pytest.param(
            "LINAC",
            structure_set("rtss from linac"),
            "RT Structure Set not accepted from imaging peer LINAC",
            id="rt-struct-from-imaging",
        ),
        pytest.param(
            "TPS",
            registration("sro from tps"),
            "Spatial Registration not accepted from planning peer TPS",
            id="registration-from-planning",
        ),
    ],
)
def test_object_from_the_wrong_role_is_refused_not_authorized(
    scp: StorageScp,
    store: Store,
    events: queue.Queue[SeriesEvent],
    calling: str,
    refused: Dataset,
    comment: str,
) -> None:
    accepted = ct(f"after {comment}")
    replies = store_all(scp.port, [refused, accepted], calling=calling)

    assert replies == [(0x0124, comment), (0x0000, None)]
    assert store.instance(refused.SOPInstanceUID) is None
    series = accepted.SeriesInstanceUID
    assert summary(next_events(events, 2)) == [("instance", series), ("released", series)]


def _without(keyword: str) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        delattr(ds, keyword)

    return change


def _set(keyword: str, value: object) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        setattr(ds, keyword, value)

    return change


@pytest.mark.parametrize(
    ("change", "status", "comment"),
    [
        pytest.param(
            _without("PatientID"),
            0xA900,
            "Patient ID (0010,0020) is missing or empty",
            id="no-patient-id",
        ),
        pytest.param(
            _without("FrameOfReferenceUID"),
            0xA900,
            "Frame of Reference UID (0020,0052) is missing or empty",
            id="no-frame-of-reference",
        ),
        pytest.param(
            _without("ImageOrientationPatient"),
            0xA900,
            "Image Orientation (Patient) (0020,0037) missing or invalid",
            id="no-orientation",
        ),
        pytest.param(
            _set("SeriesInstanceUID", "1.2.3.04"),
            0xA900,
            "invalid UID (0020,000E): component 4 ('04') has a leading zero",
            id="invalid-series-uid",
        ),
        pytest.param(
            _set("PixelData", b"\x00" * 100),
            0xA900,
            "Pixel Data has 100 bytes, the image needs 128",
            id="short-pixel-data",
        ),
    ],
)
def test_instance_missing_what_igrt_needs_is_refused_with_the_reason(
    scp: StorageScp,
    store: Store,
    state_dir: Path,
    events: queue.Queue[SeriesEvent],
    change: Callable[[Dataset], None],
    status: int,
    comment: str,
) -> None:
    bad = ct("incomplete")
    change(bad)
    good = ct("complete")
    assert store_all(scp.port, [bad, good], calling="LINAC") == [(status, comment), (0, None)]
    assert store.instance(bad.SOPInstanceUID) is None
    assert summary(next_events(events, 2)) == [
        ("instance", good.SeriesInstanceUID),
        ("released", good.SeriesInstanceUID),
    ]
    assert [p.name for p in instance_files(state_dir)] == [f"{good.SOPInstanceUID}.dcm"]


def test_invalid_sop_instance_uid_never_becomes_a_file(
    scp: StorageScp, store: Store, state_dir: Path
) -> None:
    bad = ct("bad uid")
    bad.SOPInstanceUID = "1.2.03"
    bad.file_meta.MediaStorageSOPInstanceUID = UID("1.2.03")
    with pytest.warns(UserWarning, match="Invalid value for VR UI"):
        replies = store_all(scp.port, [bad], calling="LINAC")
    assert replies == [(0xA900, "invalid SOP Instance UID: component 3 ('03') has a leading zero")]
    assert instance_files(state_dir) == []
    assert list((state_dir / "tmp").iterdir()) == []
    assert store.series_arrivals(bad.SeriesInstanceUID) is None


def test_undecodable_data_set_is_refused_cannot_understand(
    scp: StorageScp, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose meta says deflated but whose data set is not: the bytes reach the SCP as
    sent (pynetdicom's documented chunked sending reads a file without decoding it) and cannot
    be inflated."""
    monkeypatch.setattr(pynetdicom_config, "STORE_SEND_CHUNKED_DATASET", True)
    sent = ct("not deflated")
    [path] = factory.write([sent], tmp_path / "send")
    sent.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    lying = tmp_path / "lying.dcm"
    pydicom.dcmwrite(lying, sent, enforce_file_format=True)  # deflates; replace the data set:
    header = lying.read_bytes()[: _data_set_offset(lying)]
    lying.write_bytes(header + path.read_bytes()[_data_set_offset(path) :])

    with associated(
        scp.port, calling="LINAC", contexts=[(CTImageStorage, [DeflatedExplicitVRLittleEndian])]
    ) as assoc:
        status, comment = reply(assoc.send_c_store(lying))
    assert status == 0xC000
    assert comment is not None and comment.startswith("data set cannot be decoded: ")
    assert store.instance(sent.SOPInstanceUID) is None


def _data_set_offset(path: Path) -> int:
    """Where the data set starts in a Part-10 file (after preamble, prefix and file meta)."""
    with pydicom.dcmread(path, stop_before_pixels=True) as ds:
        group_length = int(ds.file_meta.FileMetaInformationGroupLength)
    return 128 + 4 + 12 + group_length


def test_uid_conflict_with_a_stored_instance_is_refused(scp: StorageScp, store: Store) -> None:
    first = ct("conflict")
    other_patient = ct("conflict", patient_id="PAT-002")
    assert store_all(scp.port, [first], calling="LINAC") == [(0, None)]
    assert store_all(scp.port, [other_patient], calling="LINAC") == [
        (0xC000, "UID already stored for another patient/series/role")
    ]
    record = store.instance(first.SOPInstanceUID)
    assert record is not None and record.patient_id == "PAT-001"


def test_store_failure_is_an_error_status_and_the_service_stays_up(
    scp: StorageScp, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.close()
    assert store_all(scp.port, [ct("closed store")], calling="LINAC") == [
        (0xC000, "igrt could not store the instance; see igrt log")
    ]
    assert any("is closed" in r.getMessage() for r in caplog.records)
    assert echo(scp.port) == 0x0000


def test_a_failing_callback_does_not_change_the_status(
    state_dir: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: SeriesEvent) -> None:
        raise RuntimeError(f"queue full for {event.event.value}")

    sent = ct("callback")
    with StorageScp(make_config(state_dir), store, on_series_activity=broken) as server:
        assert store_all(server.port, [sent], calling="LINAC") == [(0, None)]
        assert echo(server.port) == 0x0000
    assert store.instance(sent.SOPInstanceUID) is not None
    assert any("series activity callback failed" in r.getMessage() for r in caplog.records)


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


# --- out of space (a real full file system) ------------------------------------------------------
@contextlib.contextmanager
def small_tmpfs(directory: Path, size_bytes: int) -> Iterator[None]:
    directory.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(directory)],
        check=True,
        timeout=30,
        capture_output=True,
    )
    try:
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True, timeout=30)


def test_out_of_space_is_refused_out_of_resources_and_the_service_recovers(
    tmp_path: Path, events: queue.Queue[SeriesEvent]
) -> None:
    small = tmp_path / "small"
    root = small / "state"
    with small_tmpfs(small, 2 * 1024 * 1024), Store.open(root) as store:
        server = StorageScp(make_config(root), store, on_series_activity=events.put)
        with server:
            stat = os.statvfs(small)
            filler = small / "filler"
            filler.write_bytes(b"f" * (stat.f_bavail * stat.f_frsize - 64 * 1024))
            big = ct("too big", size=256)  # 128 KiB of pixels, 64 KiB free
            assert store_all(server.port, [big], calling="LINAC") == [
                (0xA700, "igrt store out of disk space; instance not kept, retry later")
            ]
            assert store.series_arrivals(big.SeriesInstanceUID) is None
            assert list((root / "tmp").iterdir()) == []
            assert echo(server.port) == 0x0000

            filler.unlink()
            assert store_all(server.port, [big], calling="LINAC") == [(0, None)]
            assert summary(next_events(events, 2)) == [
                ("instance", big.SeriesInstanceUID),
                ("released", big.SeriesInstanceUID),
            ]


# --- privacy -------------------------------------------------------------------------------------
def test_logs_never_hold_the_patient_name_or_id(
    scp: StorageScp,
    store: Store,
    events: queue.Queue[SeriesEvent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    accepted, refused = ct("private"), ct("private refused")
    for ds in (accepted, refused):
        ds.PatientName, ds.PatientID = "Doe^Jane", "MRN-4711"
    del refused.PixelSpacing
    assert store_all(scp.port, [accepted, refused], calling="LINAC") == [
        (0x0000, None),
        (0xA900, "Pixel Spacing (0028,0030) missing or invalid"),
    ]
    next_events(events, 2)  # the association's end is logged before its event
    ours = [r.getMessage() for r in caplog.records if r.name.startswith(("services", "igrt"))]
    assert any(accepted.SOPInstanceUID in m for m in ours)
    assert any("Pixel Spacing" in m for m in ours)
    assert [m for m in ours if "Doe" in m or "MRN-4711" in m] == []
