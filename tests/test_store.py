"""The durable store (base, instances), on real files and a real sqlite database under
``tmp_path``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from small_disk import run_on_small_tmpfs
from store_factory import CT_CLASS, T0, correction, files_under, meta

from igrt.core.clock import iso_utc
from igrt.core.errors import (
    InstanceConflictError,
    InvalidInstanceError,
    InvalidUidError,
    StoreError,
    StoreInUseError,
)
from igrt.core.kinds import Role
from igrt.core.uids import is_valid_uid, uid_problem
from igrt.store import (
    SCHEMA_VERSION,
    AssociationOutcome,
    InstanceContent,
    InstanceMeta,
    Store,
)


# --- UIDs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uid", "problem"),
    [
        pytest.param("1.2.3", None, id="plain"),
        pytest.param("0", None, id="single-zero"),
        pytest.param("1.0.2", None, id="zero-component"),
        pytest.param(CT_CLASS, None, id="sop-class"),
        pytest.param("1." + "2" * 62, None, id="64-chars"),
        pytest.param("1." + "2" * 63, "it has 65 characters, more than 64", id="65-chars"),
        pytest.param("", "it is empty", id="empty"),
        pytest.param("1..2", "component 2 is empty", id="empty-component"),
        pytest.param(".1.2", "component 1 is empty", id="leading-dot"),
        pytest.param("1.2.", "component 3 is empty", id="trailing-dot"),
        pytest.param("01.2", "component 1 ('01') has a leading zero", id="leading-zero"),
        pytest.param("1.2.00", "component 3 ('00') has a leading zero", id="double-zero"),
        pytest.param("../etc", "component 1 is empty", id="path-traversal"),
        pytest.param("1.2.a", "component 3 ('a') is not made of digits 0-9", id="letter"),
        pytest.param("1.2/3", "component 2 ('2/3') is not made of digits 0-9", id="slash"),
        pytest.param("1.2.3\n", "component 3 ('3\\n') is not made of digits 0-9", id="newline"),
        pytest.param("1.\u0662", "component 2 ('\u0662') is not made of digits 0-9", id="arabic"),
        pytest.param(123, "it is a int, not a string", id="not-str"),
    ],
)
def test_uid_validation(uid: object, problem: str | None) -> None:
    assert uid_problem(uid) == problem
    assert is_valid_uid(uid) is (problem is None)


# --- storing instances ---------------------------------------------------------------------------
def test_store_instance_writes_the_exact_bytes_under_a_hashed_patient_key(store: Store) -> None:
    data = b"DICM-part10-bytes\x00\x01\x02" * 100  # 20 bytes * 100
    stored = store.store_instance(data=data, meta=meta())

    key = hashlib.sha256(b"PAT/001").hexdigest()[:32]
    expected = store.root / "instances" / key / "1.2.3.100" / "1.2.3.100.1.dcm"
    assert stored.path == expected
    assert expected.read_bytes() == data
    assert stored.size_bytes == 2000
    assert stored.replaced is False
    assert stored.received_at == "2026-11-21T18:30:00.000Z"
    assert files_under(store.root / "tmp") == []
    assert files_under(store.root / "instances") == [expected]
    assert store.series_instances("1.2.3.100") == [expected]


def test_fsync_order_file_then_rename_then_directory(tmp_path: Path) -> None:
    events: list[tuple[str, bool]] = []  # (what was fsync'ed, did the final file exist yet)
    patient_dir = tmp_path / "state" / "instances" / hashlib.sha256(b"PAT/001").hexdigest()[:32]
    final_file = patient_dir / "1.2.3.100" / "1.2.3.100.1.dcm"

    def recording_fsync(fd: int) -> None:  # the real fsync, observed
        os.fsync(fd)
        events.append((os.readlink(f"/proc/self/fd/{fd}"), final_file.exists()))

    with Store.open(tmp_path / "state", fsync=recording_fsync) as store:
        events.clear()  # opening fsyncs the state directory
        store.store_instance(data=b"x" * 10, meta=meta())

    fsynced = [Path(path) for path, _ in events]
    assert fsynced[:2] == [patient_dir.parent, patient_dir]  # new directories made durable
    assert fsynced[2].parent == tmp_path / "state" / "tmp"  # the temp file's content ...
    assert fsynced[2].suffix == ".part"
    assert fsynced[3:] == [final_file.parent]  # ... then the directory holding the new name
    assert [exists for _, exists in events] == [False, False, False, True]


@pytest.mark.parametrize(
    ("overrides", "error", "names"),
    [
        pytest.param({"sop_instance_uid": "../etc"}, InvalidUidError, "SOP Instance UID", id="sop"),
        pytest.param({"series_uid": "1..2"}, InvalidUidError, "Series Instance UID", id="series"),
        pytest.param({"study_uid": "01.2"}, InvalidUidError, "Study Instance UID", id="study"),
        pytest.param(
            {"frame_of_reference_uid": "1.2.a"}, InvalidUidError, "Frame of Reference", id="frame"
        ),
        pytest.param(
            {"referenced_series_uids": ("1.2.3", "x")},
            InvalidUidError,
            "referenced Series Instance UID",
            id="referenced-series",
        ),
        pytest.param({"patient_id": "  "}, InvalidInstanceError, "Patient ID", id="no-patient"),
        pytest.param({"association_id": ""}, InvalidInstanceError, "association", id="no-assoc"),
    ],
)
def test_invalid_metadata_is_refused_before_any_write(
    store: Store, overrides: dict[str, object], error: type[StoreError], names: str
) -> None:
    with pytest.raises(error, match=names):
        store.store_instance(data=b"x", meta=meta(**overrides))
    assert files_under(store.root / "instances") == []
    assert files_under(store.root / "tmp") == []
    assert store.series_arrivals("1.2.3.100") is None


def test_an_identical_resend_is_recorded_and_keeps_the_file(store: Store) -> None:
    first = store.store_instance(data=b"first", meta=meta())
    mtime = first.path.stat().st_mtime_ns
    again = store.store_instance(data=b"first", meta=meta(association_id="assoc-2"))

    assert again.replaced is True
    assert (again.path, again.size_bytes) == (first.path, 5)
    assert first.path.read_bytes() == b"first"
    assert first.path.stat().st_mtime_ns == mtime  # not rewritten
    assert files_under(store.root / "instances") == [first.path]
    info = store.series_arrivals("1.2.3.100")
    assert info is not None
    assert info.instance_count == 1
    assert [a.association_id for a in info.associations] == ["assoc-1", "assoc-2"]
    assert [a.arrivals for a in info.associations] == [1, 1]


def test_a_resend_with_other_content_is_refused_and_the_first_is_kept(store: Store) -> None:
    first = store.store_instance(data=b"first", meta=meta())
    with pytest.raises(InstanceConflictError, match="already stored with other content"):
        store.store_instance(data=b"second!", meta=meta(association_id="assoc-2"))
    assert first.path.read_bytes() == b"first"
    assert files_under(store.root / "instances") == [first.path]
    assert list((store.root / "tmp").iterdir()) == []
    info = store.series_arrivals("1.2.3.100")
    assert info is not None and [a.association_id for a in info.associations] == ["assoc-1"]


def test_identity_is_the_data_set_not_the_file_meta(store: Store, tmp_path: Path) -> None:
    spooled = tmp_path / "spooled.dcm"
    spooled.write_bytes(b"PYNETDICOM-META" + b"the data set")
    first = store.store_instance(
        data=InstanceContent(b"META-LINAC", source=spooled, source_offset=15), meta=meta())
    assert first.path.read_bytes() == b"META-LINACthe data set"
    again = store.store_instance(data=InstanceContent(b"META-OTHER-AE", b"the data set"),
                                 meta=meta(association_id="assoc-2"))
    assert again.replaced and first.path.read_bytes() == b"META-LINACthe data set"


@pytest.mark.parametrize(
    ("second", "names"),
    [
        pytest.param(meta(patient_id="PAT-002"), "Patient ID", id="same-sop-other-patient"),
        pytest.param(
            meta(series_uid="1.2.3.200"), "Series Instance UID", id="same-sop-other-series"
        ),
        pytest.param(
            meta(sop_instance_uid="1.2.3.100.2", patient_id="PAT-002"),
            "series 1.2.3.100 already holds instances with another Patient ID",
            id="same-series-other-patient",
        ),
        pytest.param(
            meta(sop_instance_uid="1.2.3.100.2", role=Role.PLANNING, calling_ae="TPS"),
            "another peer role",
            id="same-series-other-role",
        ),
    ],
)
def test_conflicting_identity_is_refused_and_nothing_is_replaced(
    store: Store, second: InstanceMeta, names: str
) -> None:
    first = store.store_instance(data=b"original", meta=meta())
    with pytest.raises(InstanceConflictError, match=names):
        store.store_instance(data=b"intruder", meta=second)
    assert files_under(store.root / "instances") == [first.path]
    assert first.path.read_bytes() == b"original"
    assert files_under(store.root / "tmp") == []


def test_series_bookkeeping_and_association_outcomes(store: Store) -> None:
    # StepClock: each store_instance reads the clock once, one second apart.
    store.store_instance(data=b"a", meta=meta(sop_instance_uid="1.2.3.100.1"))
    store.store_instance(data=b"b", meta=meta(sop_instance_uid="1.2.3.100.2"))
    store.record_association("assoc-1", "LINAC1", "aborted", T0 + timedelta(seconds=5))
    store.store_instance(
        data=b"c", meta=meta(sop_instance_uid="1.2.3.100.3", association_id="assoc-2")
    )

    info = store.series_arrivals("1.2.3.100")
    assert info is not None
    assert (info.instance_count, info.first_arrival_at, info.last_arrival_at) == (
        3,
        "2026-11-21T18:30:00.000Z",
        "2026-11-21T18:30:02.000Z",
    )
    assert info.any_aborted is True
    assert info.released is False  # assoc-2, which delivered the last instance, has not ended
    assert info.associations[0].outcome is AssociationOutcome.ABORTED
    assert info.associations[0].ended_at == "2026-11-21T18:30:05.000Z"

    store.record_association("assoc-2", "LINAC1", AssociationOutcome.RELEASED)
    info = store.series_arrivals("1.2.3.100")
    assert info is not None
    assert info.released is True
    assert info.last_association.ended_at == "2026-11-21T18:30:03.000Z"

    # an association recorded as aborted is never turned into a released one
    store.record_association("assoc-1", "LINAC1", "released")
    info = store.series_arrivals("1.2.3.100")
    assert info is not None
    assert info.associations[0].outcome is AssociationOutcome.ABORTED


def test_unclaimed_series_lists_only_imaging_series_not_yet_claimed(store: Store) -> None:
    store.store_instance(data=b"a", meta=meta())
    store.store_instance(
        data=b"b", meta=meta(sop_instance_uid="1.2.3.200.1", series_uid="1.2.3.200")
    )
    store.store_instance(
        data=b"p",
        meta=meta(sop_instance_uid="1.2.3.300.1", series_uid="1.2.3.300", role=Role.PLANNING),
    )
    assert store.claim_series("1.2.3.100") is True
    assert [s.series_uid for s in store.unclaimed_series()] == ["1.2.3.200"]
    assert [s.series_uid for s in store.unclaimed_series(Role.PLANNING)] == ["1.2.3.300"]


# --- out of space (a real full file system, no mocks) --------------------------------------------
# A small tmpfs really fills up (ENOSPC), mounted in a child's own user and mount namespace, so
# this needs no root (tests/small_disk.py). The kernel's per-process file size limit
# (RLIMIT_FSIZE, EFBIG) is the other way a write is refused for lack of space.
_RLIMIT_CHILD = """
import json, resource, signal, sys
from pathlib import Path
from igrt.core.errors import StoreError
from igrt.core.kinds import InstanceKind, Role
from igrt.store import InstanceMeta, Store
root, limit, big = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
Store.open(root).close()  # schema written and checkpointed: the reopened WAL starts empty
store = Store.open(root)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of a signal
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
def meta(sop):
    return InstanceMeta("1.2.840.10008.5.1.4.1.1.2", sop, "1.2.3.100", "1.2.3.1", "PAT-001",
                        None, "CT", InstanceKind.CT_IMAGE, Role.IMAGING, "LINAC1", "a1")
out = {"big": None}
try:
    store.store_instance(data=b"x" * big, meta=meta("1.2.3.100.1"))
except StoreError as exc:
    out["big"] = exc.reason
out["left_behind"] = sorted(p.name for p in root.rglob("*.dcm")) + sorted(
    p.name for p in (root / "tmp").iterdir())
out["recorded"] = store.series_arrivals("1.2.3.100") is not None
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
out["small"] = store.store_instance(data=b"y" * 4096, meta=meta("1.2.3.100.2")).size_bytes
store.close()
print(json.dumps(out))
"""


def _past_file_size_limit(root: Path, *, limit_bytes: int, big_bytes: int) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _RLIMIT_CHILD, str(root), str(limit_bytes), str(big_bytes)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


_TMPFS_CHILD = """
import json, os, sys
from pathlib import Path
from igrt.core.errors import OutOfSpaceError
from igrt.core.kinds import InstanceKind, Role
from igrt.store import InstanceMeta, Store
small = Path(sys.argv[1])
big, free = int(sys.argv[2]), int(sys.argv[3])
root = small / "state"
def meta(sop):
    return InstanceMeta("1.2.840.10008.5.1.4.1.1.2", sop, "1.2.3.100", "1.2.3.1", "PAT-001",
                        None, "CT", InstanceKind.CT_IMAGE, Role.IMAGING, "LINAC1", "a1")
def files(d):
    return sorted(str(p.relative_to(root)) for p in d.rglob("*") if p.is_file())
Store.open(root).close()
out = {}
with Store.open(root) as store:
    filler = small / "filler"
    if free >= 0:
        stat = os.statvfs(small)
        filler.write_bytes(b"f" * (stat.f_bavail * stat.f_frsize - free))
    try:
        store.store_instance(data=b"x" * big, meta=meta("1.2.3.100.1"))
        out["refused"] = None
    except OutOfSpaceError as exc:
        out["refused"] = str(exc)
    out["left_behind"] = files(root / "instances") + files(root / "tmp")
    out["recorded"] = store.series_arrivals("1.2.3.100") is not None
    if filler.exists():
        filler.unlink()
    after = store.store_instance(data=b"y" * 4096, meta=meta("1.2.3.100.2"))
    out["after"] = after.path.read_bytes() == b"y" * 4096
    out["listed"] = [p.name for p in store.series_instances("1.2.3.100")]
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    ("big_bytes", "free_bytes", "message"),
    [
        pytest.param(
            2 * 1024 * 1024,
            -1,  # the whole 1 MiB file system, less the database
            "out of disk space while writing SOP instance 1.2.3.100.1 of series 1.2.3.100 "
            "(No space left on device); nothing was kept",
            id="instance-file-does-not-fit",
        ),
        pytest.param(
            4096,
            8192,  # the instance file fits, the database commit (WAL frames) does not
            "out of disk space while recording SOP instance 1.2.3.100.1 (sqlite: database or "
            "disk is full); not recorded",
            id="database-commit-does-not-fit",
        ),
    ],
)
def test_out_of_space_leaves_no_file_no_row_and_the_store_keeps_working(
    tmp_path: Path, big_bytes: int, free_bytes: int, message: str
) -> None:
    """A real ENOSPC from a full 1 MiB tmpfs (mounted in a user namespace: no root needed)."""
    result = run_on_small_tmpfs(tmp_path / "small", 1024 * 1024, _TMPFS_CHILD, str(big_bytes),
                                str(free_bytes))
    assert result == {"refused": message, "left_behind": [], "recorded": False, "after": True,
                      "listed": ["1.2.3.100.2.dcm"]}


def test_file_size_limit_is_out_of_space_too(tmp_path: Path) -> None:
    result = _past_file_size_limit(
        tmp_path / "state", limit_bytes=512 * 1024, big_bytes=1024 * 1024
    )
    assert result["big"] == (
        "out_of_space: out of disk space while writing SOP instance 1.2.3.100.1 of series "
        "1.2.3.100 (File too large); nothing was kept"
    )
    # checked in the child before a reopen could clear tmp/
    assert (result["left_behind"], result["recorded"], result["small"]) == ([], False, 4096)
    with Store.open(tmp_path / "state") as store:
        paths = store.series_instances("1.2.3.100")
        assert [p.name for p in paths] == ["1.2.3.100.2.dcm"]
        assert files_under(tmp_path / "state" / "instances") == paths


def test_database_write_refused_by_the_file_size_limit_keeps_no_orphan_file(
    tmp_path: Path,
) -> None:
    # EFBIG inside sqlite surfaces as a disk I/O error (sqlite reports SQLITE_FULL only for
    # ENOSPC): a plain StoreError, and the already-written instance file is removed again.
    result = _past_file_size_limit(tmp_path / "state", limit_bytes=8192, big_bytes=4096)
    assert result["big"] == (
        "store: the store database failed while recording SOP instance 1.2.3.100.1: disk I/O error"
    )
    assert (result["left_behind"], result["recorded"], result["small"]) == ([], False, 4096)


# --- threads -------------------------------------------------------------------------------------
def test_concurrent_stores_and_corrections_are_all_recorded(store: Store) -> None:
    threads_n, per_thread = 8, 4
    barrier = threading.Barrier(threads_n)
    failures: list[BaseException] = []
    seqs: list[int] = []

    def work(t: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(1, per_thread + 1):
                store.store_instance(
                    data=bytes([t, i]) * 500,
                    meta=meta(sop_instance_uid=f"1.2.3.100.{t}.{i}", association_id=f"a{t}"),
                )
                seqs.append(store.append_correction(correction(f"1.2.4.{t}.{i}"))["seq"])
        except BaseException as exc:  # collected and asserted below
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(1, threads_n + 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert failures == []
    assert sorted(seqs) == list(range(1, 33))
    paths = store.series_instances("1.2.3.100")
    assert len(paths) == 32
    for path in paths:  # 1.2.3.100.<t>.<i>.dcm holds bytes([t, i]) * 500
        t, i = (int(part) for part in path.stem.split(".")[-2:])
        assert path.read_bytes() == bytes([t, i]) * 500
    info = store.series_arrivals("1.2.3.100")
    assert info is not None
    assert info.instance_count == 32
    assert sorted(a.association_id for a in info.associations) == [f"a{t}" for t in range(1, 9)]
    assert files_under(store.root / "tmp") == []


# --- lifecycle -----------------------------------------------------------------------------------
def test_a_second_open_of_the_same_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "state"
    first = Store.open(root)
    with pytest.raises(StoreInUseError, match="already open in another igrt store"):
        Store.open(root)
    first.close()
    first.close()  # idempotent
    with pytest.raises(StoreError, match="is closed"):
        first.last_seq()
    with Store.open(root) as again:
        assert again.last_seq() == 0


def test_open_clears_leftovers_of_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "state"
    Store.open(root).close()
    (root / "tmp" / "abc.part").write_bytes(b"half-writ")
    with Store.open(root):
        assert files_under(root / "tmp") == []


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "state"
    Store.open(root).close()
    with contextlib.closing(sqlite3.connect(root / "igrt.sqlite")) as conn, conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,)
        )
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, but this igrt"):
        Store.open(root)
    with contextlib.closing(sqlite3.connect(root / "igrt.sqlite")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        pytest.param(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "2026-01-02T03:04:05.678Z"),
        pytest.param(
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-02T01:04:05.000Z",
            id="converted-to-utc",
        ),
    ],
)
def test_timestamps_are_utc_with_z(moment: datetime, text: str) -> None:
    assert iso_utc(moment) == text


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        iso_utc(datetime(2026, 1, 2))
