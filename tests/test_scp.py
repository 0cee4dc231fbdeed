"""The Storage SCP over a real network: real SCUs (pynetdicom and DCMTK), a real store in a temp
directory, free ports. Every wait has a timeout; events are awaited on a queue, never slept for."""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from pathlib import Path

import dicom_factory as factory
import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
)
from scp_client import (
    HOST,
    IGRT,
    associated,
    ct,
    dcmtk,
    echo,
    instance_files,
    make_config,
    next_events,
    registration,
    reply,
    rt_plan,
    store_all,
    storescu,
    structure_set,
    summary,
)
from small_disk import run_on_small_tmpfs

from igrt.core.kinds import InstanceKind, Role
from igrt.store import Store
from services.scp import ActivityKind, SeriesEvent, StorageScp


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
    assert stored.file_meta.TransferSyntaxUID == uid.ExplicitVRLittleEndian
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
        pytest.param(("dcmcrle",), ("storescu", "-R", "-xr"), uid.RLELossless, id="rle"),
        pytest.param(
            ("dcmcjpeg", "+e1"), ("storescu", "-R", "-xs"), uid.JPEGLosslessSV1,
            id="jpeg-lossless-sv1"
        ),
        pytest.param(
            ("dcmcjpls", "+el"), ("storescu", "-R", "-xt"), uid.JPEGLSLossless,
            id="jpeg-ls-lossless"
        ),
        pytest.param((), ("storescu", "-R", "-xv"), uid.JPEG2000Lossless, id="jpeg2000-lossless"),
        pytest.param(
            ("dcmconv", "+td"),
            ("storescu", "-R", "-xd"),
            uid.DeflatedExplicitVRLittleEndian,
            id="deflated",
        ),
        pytest.param(
            ("dcmconv", "+ti"), ("storescu", "-R", "-xi"), uid.ImplicitVRLittleEndian, id="implicit"
        ),
        # storescu has no option for process 14 without selection value 1
        pytest.param(("dcmcjpeg", "+el"), ("pynetdicom",), uid.JPEGLossless,
                     id="jpeg-lossless-p14"),
        pytest.param((), ("pynetdicom",), uid.JPEG2000Lossless, id="jpeg2000-lossless-pynetdicom"),
        pytest.param((), ("pynetdicom",), uid.RLELossless, id="rle-pynetdicom"),
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
    bad.file_meta.MediaStorageSOPInstanceUID = uid.UID("1.2.03")
    with pytest.warns(UserWarning, match="Invalid value for VR UI"):
        replies = store_all(scp.port, [bad], calling="LINAC")
    assert replies == [
        (0xA900, "invalid SOP Instance UID: component 3 ('03') has a leading zero")]
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
    sent.file_meta.TransferSyntaxUID = uid.DeflatedExplicitVRLittleEndian
    lying = tmp_path / "lying.dcm"
    pydicom.dcmwrite(lying, sent, enforce_file_format=True)  # deflates; replace the data set:
    header = lying.read_bytes()[: _data_set_offset(lying)]
    lying.write_bytes(header + path.read_bytes()[_data_set_offset(path) :])

    with associated(
        scp.port, calling="LINAC", contexts=[(CTImageStorage, [uid.DeflatedExplicitVRLittleEndian])]
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


# --- out of space (a real full file system) ------------------------------------------------------
# The SCP and its SCU run in a child whose own user and mount namespace holds a 2 MiB tmpfs
# (tests/small_disk.py): a real ENOSPC, with or without root.
_FULL_DISK_CHILD = """
import json, os, queue, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import dicom_factory as factory
from pynetdicom import AE
from igrt.config import parse_config
from igrt.store import Store
from services.scp import StorageScp
small = Path(sys.argv[1]); root = small / "state"
config = parse_config({"dicom": {"port": 0}, "storage": {"dir": str(root)}})
big = factory.ct_series(n_slices=1, rows=256, columns=256, name="too big")[0]  # 128 KiB
events = queue.Queue()
def store_one(port):
    ae = AE(ae_title="LINAC")
    ae.add_requested_context(big.SOPClassUID, [big.file_meta.TransferSyntaxUID])
    assoc = ae.associate("127.0.0.1", port, ae_title="IGRT")
    status = assoc.send_c_store(big)
    assoc.release()
    return [int(status.Status), status.get("ErrorComment")]
def echo(port):
    ae = AE(ae_title="LINAC")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="IGRT")
    status = int(assoc.send_c_echo().Status)
    assoc.release()
    return status
out = {}
with Store.open(root) as store, StorageScp(config, store, on_series_activity=events.put) as scp:
    stat = os.statvfs(small)
    filler = small / "filler"
    filler.write_bytes(b"f" * (stat.f_bavail * stat.f_frsize - 64 * 1024))  # 64 KiB free
    out["full"] = store_one(scp.port)
    out["recorded"] = store.series_arrivals(big.SeriesInstanceUID) is not None
    out["tmp"] = sorted(p.name for p in (root / "tmp").iterdir())
    out["echo"] = echo(scp.port)
    filler.unlink()
    out["after"] = store_one(scp.port)
    out["events"] = [[e.event.value, e.series_uid == big.SeriesInstanceUID]
                     for e in (events.get(timeout=10), events.get(timeout=10))]
print(json.dumps(out))
"""


def test_out_of_space_is_refused_out_of_resources_and_the_service_recovers(
    tmp_path: Path,
) -> None:
    result = run_on_small_tmpfs(tmp_path / "small", 2 * 1024 * 1024, _FULL_DISK_CHILD,
                                str(Path(__file__).parent))
    assert result == {
        "full": [0xA700, "igrt store out of disk space; instance not kept, retry later"],
        "recorded": False,
        "tmp": [],
        "echo": 0x0000,
        "after": [0, None],
        "events": [["instance", True], ["released", True]],
    }


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
