"""The durable store: received DICOM instances, the planning index, jobs and correction results.

Layout under the state directory ``root``::

    instances/<patient-key>/<series-uid>/<sop-instance-uid>.dcm   (patient key: hash of the ID)
    tmp/            in-flight writes, same file system; emptied on open (crash leftovers)
    igrt.sqlite     index (WAL, synchronous=FULL), schema version in table ``meta``
    igrt.lock       flock held while the store is open

Durability: :meth:`Store.store_instance` returns only after the file is fsync'ed, renamed into
place, its directory fsync'ed and its row committed, so the SCP may then answer ``0x0000``.
:meth:`Store.append_correction` is the only place a ``seq`` is allocated: in one transaction
with the message it numbers, so a ``seq`` never repeats, also across restarts.

Threads: one sqlite connection (``check_same_thread=False``) guarded by one lock; every database
access holds the lock for one short transaction. File writes and their fsyncs run outside the
lock, so pynetdicom's association threads write in parallel and the worker is not blocked by
them. All timestamps are wall-clock UTC ISO-8601 with ``Z``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from igrt.errors import OutOfSpaceError, StoreError
from igrt.store_files import (
    Fsync,
    StoreLock,
    clear_tmp,
    ensure_dir,
    fsync_dir,
    os_error,
    patient_key,
    write_atomically,
)
from igrt.store_index import (
    IN_FRAME,
    OBJECT_COLUMNS,
    check_conflicts,
    marks,
    read_object,
    read_series_info,
    record_instance,
)
from igrt.store_records import (
    IMAGE_KINDS,
    PLAN_KINDS,
    AssociationOutcome,
    InstanceConflictError,
    InstanceKind,
    InstanceMeta,
    InvalidInstanceError,
    InvalidUidError,
    JobState,
    ObjectRecord,
    PlanRecord,
    Role,
    SeriesAssociation,
    SeriesInfo,
    StoredInstance,
    StoreInUseError,
    UnknownPlanError,
    is_valid_uid,
    iso_utc,
    require_uid,
    uid_problem,
    utc_now,
    validate_meta,
)
from igrt.store_schema import SCHEMA_VERSION, migrate

__all__ = [
    "AssociationOutcome",
    "InstanceConflictError",
    "InstanceKind",
    "InstanceMeta",
    "InvalidInstanceError",
    "InvalidUidError",
    "JobState",
    "ObjectRecord",
    "OutOfSpaceError",
    "PlanRecord",
    "Role",
    "SCHEMA_VERSION",
    "SeriesAssociation",
    "SeriesInfo",
    "Store",
    "StoreError",
    "StoreInUseError",
    "StoredInstance",
    "UnknownPlanError",
    "encode_correction",
    "is_valid_uid",
    "uid_problem",
]

log = logging.getLogger(__name__)

SQLITE_FULL = 13  # primary result code "database or disk is full"


def encode_correction(message: Mapping[str, Any]) -> str:
    """The exact JSON text stored and published for a correction message (UTF-8 safe, compact,
    key order kept). NaN/Infinity and non-JSON values are refused: they must never be published."""
    try:
        return json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"the correction message cannot be stored as JSON: {exc}") from exc


def _db_error(exc: sqlite3.Error, action: str) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == SQLITE_FULL:
        return OutOfSpaceError(f"out of disk space while {action} (sqlite: {exc}); not recorded")
    return StoreError(f"the store database failed while {action}: {exc}")


class Store:
    """The durable store under one state directory. Open with :meth:`open`; close when done."""

    def __init__(
        self,
        root: Path,
        conn: sqlite3.Connection,
        lock_file: StoreLock,
        *,
        clock: Callable[[], datetime],
        fsync: Fsync,
    ) -> None:
        self.root = root
        self._conn: sqlite3.Connection | None = conn
        self._lock_file = lock_file
        self._lock = threading.RLock()
        self._clock = clock
        self._fsync = fsync

    # --- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        root: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        fsync: Fsync = os.fsync,
    ) -> Store:
        """Open (creating if needed) the store at ``root``.

        ``clock`` returns an aware ``datetime`` (wall-clock arrival times); ``fsync`` is the
        durability call (``os.fsync``; a test may pass a wrapper that calls it and records).
        Raises :class:`StoreInUseError` if another open store holds ``root``.
        """
        root = Path(root).absolute()
        try:
            root.mkdir(parents=True, exist_ok=True)
            lock_file = StoreLock(root / "igrt.lock")
        except OSError as exc:
            raise os_error(exc, f"creating the store directory {root}") from exc
        try:
            for sub in ("instances", "tmp"):
                (root / sub).mkdir(exist_ok=True)
            clear_tmp(root / "tmp")
            fsync_dir(root, fsync)
            conn = sqlite3.connect(
                root / "igrt.sqlite", isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except OSError as exc:
            lock_file.release()
            raise os_error(exc, f"opening the store in {root}") from exc
        except BaseException:
            lock_file.release()
            raise
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"the store database in {root} cannot use WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn, root)
        except sqlite3.Error as exc:
            conn.close()
            lock_file.release()
            raise _db_error(exc, f"opening the store database in {root}") from exc
        except BaseException:
            conn.close()
            lock_file.release()
            raise
        log.info("store opened at %s (schema version %d)", root, SCHEMA_VERSION)
        return cls(root, conn, lock_file, clock=clock, fsync=fsync)

    def close(self) -> None:
        """Close the database and release the directory lock. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._lock_file.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- database plumbing -----------------------------------------------------------------------
    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store at {self.root} is closed")
        return self._conn

    @contextlib.contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), committed durably or rolled back."""
        with self._lock:
            conn = self._require_open()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _db_error(exc, action) from exc

    @contextlib.contextmanager
    def _reading(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._require_open()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise _db_error(exc, action) from exc

    def _now(self) -> str:
        return iso_utc(self._clock())

    # --- instances -------------------------------------------------------------------------------
    def store_instance(self, *, data: bytes, meta: InstanceMeta) -> StoredInstance:
        """Durably store one received instance (complete Part-10 bytes) and index it.

        Returns only once the file and its row are on disk. A re-send of the same SOP instance
        replaces the file atomically and keeps one row. Raises :class:`InvalidUidError` /
        :class:`InvalidInstanceError` before any I/O, :class:`InstanceConflictError` if the SOP
        instance or series is already held for another patient/series/role,
        :class:`OutOfSpaceError` when the disk is full (no file is left behind), else
        :class:`StoreError`.
        """
        validate_meta(meta)
        uid = meta.sop_instance_uid
        rel = Path("instances", patient_key(meta.patient_id), meta.series_uid, f"{uid}.dcm")
        final = self.root / rel
        with self._reading(f"checking SOP instance {uid}") as conn:
            check_conflicts(conn, meta)
        try:
            ensure_dir(final.parent, root=self.root, fsync=self._fsync)
            existed = final.exists()
            write_atomically(final, data, tmp_dir=self.root / "tmp", fsync=self._fsync)
        except OSError as exc:
            raise os_error(exc, f"writing SOP instance {uid} of series {meta.series_uid}") from exc
        received_at = self._now()
        try:
            with self._transaction(f"recording SOP instance {uid}") as conn:
                check_conflicts(conn, meta)
                replaced = record_instance(conn, meta, str(rel), len(data), received_at)
        except StoreError:
            if not existed:  # the SCU gets an error status and will resend; keep no orphan
                with contextlib.suppress(OSError):
                    final.unlink()
            raise
        resent = ", re-send" if replaced else ""
        log.info(
            "stored SOP instance %s (series %s, %d bytes%s)",
            uid,
            meta.series_uid,
            len(data),
            resent,
        )
        return StoredInstance(final, meta, received_at, len(data), replaced)

    def record_association(
        self,
        association_id: str,
        calling_ae: str,
        outcome: AssociationOutcome | str,
        ended_at: datetime | None = None,
    ) -> None:
        """Record how an association ended. Recorded twice, ``aborted`` wins (never upgraded)."""
        result = AssociationOutcome(outcome)
        when = iso_utc(ended_at) if ended_at is not None else self._now()
        with self._transaction(f"recording the end of association {association_id}") as conn:
            conn.execute(
                "INSERT INTO associations (association_id, calling_ae, outcome, ended_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(association_id) DO UPDATE SET "
                "outcome = CASE WHEN associations.outcome = 'aborted' THEN 'aborted' "
                "ELSE excluded.outcome END, ended_at = excluded.ended_at",
                (association_id, calling_ae, result.value, when),
            )
        log.info("association %s from %s %s", association_id, calling_ae, result.value)

    def series_instances(self, series_uid: str) -> list[Path]:
        """Absolute paths of the distinct SOP instances of a series, sorted; [] if unknown."""
        with self._reading(f"listing series {series_uid}") as conn:
            rows = conn.execute(
                "SELECT rel_path FROM instances WHERE series_uid = ? ORDER BY rel_path",
                (series_uid,),
            ).fetchall()
        return [self.root / row[0] for row in rows]

    def series_info(self, series_uid: str) -> SeriesInfo | None:
        """Arrival bookkeeping of a series, or ``None`` if no instance of it was stored."""
        with self._reading(f"reading series {series_uid}") as conn:
            return read_series_info(conn, series_uid)

    def unclaimed_series(self, role: Role = Role.IMAGING) -> list[SeriesInfo]:
        """Series from peers of ``role`` that no worker has claimed yet, oldest first (e.g. to
        pick up, after a restart, CBCTs that arrived before the stop)."""
        with self._reading("listing unclaimed series") as conn:
            uids = [
                row[0]
                for row in conn.execute(
                    "SELECT series_uid FROM series WHERE role = ? AND series_uid NOT IN "
                    "(SELECT series_uid FROM jobs) ORDER BY first_arrival_at, series_uid",
                    (Role(role).value,),
                )
            ]
            infos = [read_series_info(conn, uid) for uid in uids]
        return [info for info in infos if info is not None]

    def instance(self, sop_instance_uid: str) -> ObjectRecord | None:
        """The indexed record of one SOP instance, or ``None``."""
        return next(iter(self._objects("i.sop_instance_uid = ?", (sop_instance_uid,))), None)

    # --- planning index --------------------------------------------------------------------------
    def plans_for_patient(self, patient_id: str) -> list[PlanRecord]:
        """RT (Ion) Plans received from planning peers for this patient, oldest first."""
        return self._objects(
            f"i.patient_id = ? AND i.role = ? AND i.kind IN ({marks(PLAN_KINDS)})",
            (patient_id, Role.PLANNING.value, *PLAN_KINDS),
        )

    def ct_series_for_frame(self, patient_id: str, frame_of_reference_uid: str) -> list[str]:
        """Planning CT series (planning peers only, never a CBCT) of this patient in this Frame
        of Reference, most recently completed last."""
        with self._reading(f"finding planning CTs in frame {frame_of_reference_uid}") as conn:
            rows = conn.execute(
                "SELECT i.series_uid FROM instances i JOIN series s USING (series_uid) "
                f"WHERE i.patient_id = ? AND i.role = ? AND i.kind IN ({marks(IMAGE_KINDS)}) "
                "AND i.frame_of_reference_uid = ? GROUP BY i.series_uid "
                "ORDER BY MAX(s.last_arrival_at), i.series_uid",
                (patient_id, Role.PLANNING.value, *IMAGE_KINDS, frame_of_reference_uid),
            ).fetchall()
        return [row[0] for row in rows]

    def structure_sets_for_frame(
        self, patient_id: str, frame_of_reference_uid: str
    ) -> list[ObjectRecord]:
        """RT Structure Sets (planning peers) of this patient whose own or referenced Frame of
        Reference is ``frame_of_reference_uid``, oldest first."""
        return self._objects(
            "i.patient_id = ? AND i.role = ? AND i.kind = ? AND " + IN_FRAME,
            (patient_id, Role.PLANNING.value, InstanceKind.RT_STRUCT.value)
            + (frame_of_reference_uid,) * 2,
        )

    def spatial_registrations_for_series(self, series_uid: str) -> list[ObjectRecord]:
        """Spatial Registration objects that reference the image series ``series_uid``."""
        return self._objects(
            "i.kind = ? AND EXISTS (SELECT 1 FROM instance_refs r WHERE r.sop_instance_uid = "
            "i.sop_instance_uid AND r.ref_type = 'series' AND r.ref_uid = ?)",
            (InstanceKind.SPATIAL_REGISTRATION.value, series_uid),
        )

    def spatial_registrations_for_frame(
        self, patient_id: str, frame_of_reference_uid: str
    ) -> list[ObjectRecord]:
        """Spatial Registration objects of this patient whose own or registered Frame of
        Reference is ``frame_of_reference_uid``."""
        return self._objects(
            "i.patient_id = ? AND i.kind = ? AND " + IN_FRAME,
            (patient_id, InstanceKind.SPATIAL_REGISTRATION.value) + (frame_of_reference_uid,) * 2,
        )

    def _objects(self, where: str, params: Sequence[object]) -> list[ObjectRecord]:
        with self._reading("querying the instance index") as conn:
            rows = conn.execute(
                f"SELECT {OBJECT_COLUMNS} FROM instances i WHERE {where} "
                "ORDER BY i.received_at, i.sop_instance_uid",
                tuple(params),
            ).fetchall()
            return [read_object(conn, self.root, row) for row in rows]

    # --- plan selection --------------------------------------------------------------------------
    def select_plan(self, patient_id: str, plan_uid: str) -> None:
        """Durably select the RT Plan used for this patient's CBCTs. The plan must have been
        received for this very patient, else :class:`UnknownPlanError` says what is known."""
        require_uid(plan_uid, "the plan UID")
        with self._transaction(f"selecting plan {plan_uid}") as conn:
            row = conn.execute(
                f"SELECT patient_id FROM instances WHERE sop_instance_uid = ? AND role = ? "
                f"AND kind IN ({marks(PLAN_KINDS)})",
                (plan_uid, Role.PLANNING.value, *PLAN_KINDS),
            ).fetchone()
            if row is None or row[0] != patient_id:
                known = [
                    r[0]
                    for r in conn.execute(
                        f"SELECT sop_instance_uid FROM instances WHERE patient_id = ? AND role = ? "
                        f"AND kind IN ({marks(PLAN_KINDS)}) ORDER BY received_at",
                        (patient_id, Role.PLANNING.value, *PLAN_KINDS),
                    )
                ]
                why = (
                    "no such plan was received from a planning peer"
                    if row is None
                    else "that plan was received for another patient"
                )
                raise UnknownPlanError(
                    f"RT Plan {plan_uid} cannot be selected for patient {patient_id!r}: {why}; "
                    f"plans received for this patient: {', '.join(known) or 'none'}"
                )
            conn.execute(
                "INSERT INTO plan_selection (patient_id, plan_uid, selected_at) VALUES (?, ?, ?) "
                "ON CONFLICT(patient_id) DO UPDATE SET plan_uid = excluded.plan_uid, "
                "selected_at = excluded.selected_at",
                (patient_id, plan_uid, self._now()),
            )
        log.info("plan %s selected", plan_uid)

    def selected_plan(self, patient_id: str) -> str | None:
        """The SOP Instance UID of the plan selected for this patient, or ``None``."""
        with self._reading("reading the plan selection") as conn:
            row = conn.execute(
                "SELECT plan_uid FROM plan_selection WHERE patient_id = ?", (patient_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    # --- registration jobs -----------------------------------------------------------------------
    def claim_series(self, series_uid: str) -> bool:
        """Atomically claim a CBCT series for registration: ``True`` exactly once per Series
        Instance UID ever (also across restarts), ``False`` for every later attempt."""
        require_uid(series_uid, "the Series Instance UID to register")
        with self._transaction(f"claiming series {series_uid}") as conn:
            now = self._now()
            cur = conn.execute(
                "INSERT OR IGNORE INTO jobs (series_uid, state, claimed_at, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (series_uid, JobState.CLAIMED.value, now, now),
            )
            claimed = cur.rowcount == 1
        log.info("series %s %s", series_uid, "claimed" if claimed else "was already claimed")
        return claimed

    def job_state(self, series_uid: str) -> JobState | None:
        """``None`` (never claimed), ``CLAIMED`` (no result yet) or ``DONE`` (result stored)."""
        with self._reading(f"reading the job of series {series_uid}") as conn:
            row = conn.execute(
                "SELECT state FROM jobs WHERE series_uid = ?", (series_uid,)
            ).fetchone()
        return None if row is None else JobState(row[0])

    def interrupted_series(self) -> list[str]:
        """Series claimed but without a stored result (a stop interrupted their registration);
        they are never claimed again, so the worker should publish a ``failed`` for them."""
        with self._reading("listing interrupted jobs") as conn:
            rows = conn.execute(
                "SELECT series_uid FROM jobs WHERE state = ? ORDER BY claimed_at, series_uid",
                (JobState.CLAIMED.value,),
            ).fetchall()
        return [row[0] for row in rows]

    # --- correction results ----------------------------------------------------------------------
    def append_correction(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Number and durably store a correction message; returns it exactly as stored.

        ``seq`` = last seq + 1, allocated in the same transaction as the row, the only place a
        seq is made. A ``seq`` key already in ``message`` keeps its position and gets the value;
        otherwise it is appended. ``cbct.series_uid`` (if present) indexes the result and marks
        the series' job ``DONE``. Publish :meth:`latest_correction_json` (or
        :func:`encode_correction` of the returned dict, which is the same text).
        """
        with self._transaction("storing a correction message") as conn:
            seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM corrections").fetchone()[0])
            seq += 1
            numbered = dict(message)
            numbered["seq"] = seq
            text = encode_correction(numbered)
            series_uid = _series_of(numbered)
            now = self._now()
            conn.execute(
                "INSERT INTO corrections (seq, series_uid, message_json, stored_at) "
                "VALUES (?, ?, ?, ?)",
                (seq, series_uid, text, now),
            )
            if series_uid is not None:
                conn.execute(
                    "INSERT INTO jobs (series_uid, state, claimed_at, updated_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT(series_uid) DO UPDATE SET "
                    "state = excluded.state, updated_at = excluded.updated_at",
                    (series_uid, JobState.DONE.value, now, now),
                )
        log.info("correction seq %d stored (series %s)", seq, series_uid)
        stored: dict[str, Any] = json.loads(text)
        return stored

    def last_seq(self) -> int:
        """The highest ``seq`` ever stored, 0 when none."""
        with self._reading("reading the last seq") as conn:
            return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM corrections").fetchone()[0])

    def latest_correction_json(self) -> str | None:
        """The JSON text of the last correction message, byte-identical to what was stored."""
        with self._reading("reading the latest correction") as conn:
            row = conn.execute(
                "SELECT message_json FROM corrections ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return None if row is None else str(row[0])

    def latest_correction(self) -> dict[str, Any] | None:
        """The last correction message (parsed from the stored text), or ``None``."""
        text = self.latest_correction_json()
        return None if text is None else _parse(text)

    def correction_for_series(self, series_uid: str) -> dict[str, Any] | None:
        """The (last) correction message for this CBCT series, or ``None``."""
        with self._reading(f"reading the result of series {series_uid}") as conn:
            row = conn.execute(
                "SELECT message_json FROM corrections WHERE series_uid = ? "
                "ORDER BY seq DESC LIMIT 1",
                (series_uid,),
            ).fetchone()
        return None if row is None else _parse(str(row[0]))


def _parse(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def _series_of(message: Mapping[str, Any]) -> str | None:
    cbct = message.get("cbct")
    uid = cbct.get("series_uid") if isinstance(cbct, Mapping) else None
    return uid if isinstance(uid, str) and uid else None
