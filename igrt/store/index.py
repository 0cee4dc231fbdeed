"""SQL of the store's index, run on a connection the caller holds inside a transaction.

Recording instances (with identity conflict checks), reading series bookkeeping and indexed
objects. ``igrt.store.Store`` owns the connection, the lock and the transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from igrt.core.errors import InstanceConflictError
from igrt.core.kinds import InstanceKind, Role
from igrt.store.records import (
    AssociationOutcome,
    InstanceMeta,
    ObjectRecord,
    SeriesArrivals,
    SeriesAssociation,
)

OBJECT_COLUMNS = (
    "i.sop_instance_uid, i.sop_class_uid, i.kind, i.role, i.series_uid, i.study_uid, "
    "i.patient_id, i.frame_of_reference_uid, i.label, i.rel_path, i.received_at"
)
IN_FRAME = (
    "(i.frame_of_reference_uid = ? OR EXISTS (SELECT 1 FROM instance_refs r WHERE "
    "r.sop_instance_uid = i.sop_instance_uid AND r.ref_type = 'frame' AND r.ref_uid = ?))"
)


def marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def stored_content_sha256(conn: sqlite3.Connection, sop_instance_uid: str) -> str | None:
    row = conn.execute("SELECT content_sha256 FROM instances WHERE sop_instance_uid = ?",
                       (sop_instance_uid,)).fetchone()
    return None if row is None else row[0]


def check_conflicts(conn: sqlite3.Connection, meta: InstanceMeta,
                    content_sha256: str | None = None) -> None:
    """Refuse an instance whose UIDs are already held with a different identity: a file must
    never be filed under, or replace one of, another patient or series; nor may a SOP instance
    be replaced by other content (``content_sha256``: of its data set bytes)."""
    uid = meta.sop_instance_uid
    row = conn.execute(
        "SELECT patient_id, series_uid, sop_class_uid, content_sha256 FROM instances "
        "WHERE sop_instance_uid = ?",
        (uid,),
    ).fetchone()
    if row is not None:
        differ = _differences(row, {"Patient ID": meta.patient_id,
                                    "Series Instance UID": meta.series_uid,
                                    "SOP Class UID": meta.sop_class_uid})
        if differ:
            raise InstanceConflictError(
                f"SOP instance {uid} is already stored with another {differ}; "
                "a SOP Instance UID must identify one object, so this one is refused"
            )
    if row is not None and content_sha256 is not None and row[3] != content_sha256:
        raise InstanceConflictError(
            f"SOP instance {uid} is already stored with other content; a SOP Instance UID "
            "names one object, so this re-send is refused and the first one is kept (a new "
            "object needs a new SOP Instance UID)"
        )
    row = conn.execute(
        "SELECT patient_id, study_uid, role FROM series WHERE series_uid = ?", (meta.series_uid,)
    ).fetchone()
    if row is not None:
        differ = _differences(row, {"Patient ID": meta.patient_id,
                                    "Study Instance UID": meta.study_uid,
                                    "peer role": meta.role.value})
        if differ:
            raise InstanceConflictError(
                f"series {meta.series_uid} already holds instances with another {differ}; "
                f"SOP instance {uid} is refused"
            )


def _differences(held: Sequence[object], new: Mapping[str, object]) -> str:
    """The names (``a and b``) of the values in ``new`` that differ from the row ``held`` (its
    first columns, in the same order); empty when none do."""
    return " and ".join(name for name, was in zip(new, held, strict=False) if was != new[name])


def record_instance(
    conn: sqlite3.Connection, meta: InstanceMeta, rel_path: str, size_bytes: int, now: str,
    content_sha256: str,
) -> bool:
    """Upsert the instance, its references, its series and the association link. Returns
    whether the SOP instance was already recorded (a re-send)."""
    uid = meta.sop_instance_uid
    existed = (
        conn.execute("SELECT 1 FROM instances WHERE sop_instance_uid = ?", (uid,)).fetchone()
        is not None
    )
    values = {
        "sop": uid,
        "sop_class": meta.sop_class_uid,
        "series": meta.series_uid,
        "study": meta.study_uid,
        "patient": meta.patient_id,
        "frame": meta.frame_of_reference_uid,
        "modality": meta.modality,
        "kind": meta.kind.value,
        "role": meta.role.value,
        "ae": meta.calling_ae,
        "assoc": meta.association_id,
        "label": meta.label,
        "rel_path": rel_path,
        "size": size_bytes,
        "sha": content_sha256,
        "now": now,
    }
    conn.execute(
        "INSERT INTO instances (sop_instance_uid, sop_class_uid, series_uid, study_uid, "
        "patient_id, frame_of_reference_uid, modality, kind, role, calling_ae, association_id, "
        "label, rel_path, size_bytes, first_received_at, received_at, content_sha256) "
        "VALUES (:sop, :sop_class, :series, :study, :patient, :frame, :modality, :kind, :role, "
        ":ae, :assoc, :label, :rel_path, :size, :now, :now, :sha) "
        "ON CONFLICT(sop_instance_uid) DO UPDATE SET frame_of_reference_uid = "
        "excluded.frame_of_reference_uid, modality = excluded.modality, kind = excluded.kind, "
        "calling_ae = excluded.calling_ae, association_id = excluded.association_id, "
        "label = excluded.label, rel_path = excluded.rel_path, "
        "size_bytes = excluded.size_bytes, "
        "received_at = excluded.received_at, content_sha256 = excluded.content_sha256",
        values,
    )
    conn.execute("DELETE FROM instance_refs WHERE sop_instance_uid = ?", (uid,))
    conn.executemany(
        "INSERT OR IGNORE INTO instance_refs (sop_instance_uid, ref_type, ref_uid) "
        "VALUES (?, ?, ?)",
        [(uid, "frame", ref) for ref in meta.referenced_frame_uids]
        + [(uid, "series", ref) for ref in meta.referenced_series_uids],
    )
    conn.execute(
        "INSERT INTO series (series_uid, patient_id, study_uid, frame_of_reference_uid, modality, "
        "kind, role, first_arrival_at, last_arrival_at) VALUES (:series, :patient, :study, "
        ":frame, :modality, :kind, :role, :now, :now) "
        "ON CONFLICT(series_uid) DO UPDATE SET last_arrival_at = excluded.last_arrival_at",
        values,
    )
    conn.execute(
        "INSERT INTO series_associations (series_uid, association_id, calling_ae, arrivals, "
        "first_arrival_at, last_arrival_at) VALUES (:series, :assoc, :ae, 1, :now, :now) "
        "ON CONFLICT(series_uid, association_id) DO UPDATE SET arrivals = arrivals + 1, "
        "last_arrival_at = excluded.last_arrival_at",
        values,
    )
    return existed


def read_series_arrivals(conn: sqlite3.Connection, series_uid: str) -> SeriesArrivals | None:
    row = conn.execute(
        "SELECT s.patient_id, s.study_uid, s.frame_of_reference_uid, s.modality, s.kind, s.role, "
        "s.first_arrival_at, s.last_arrival_at, "
        "(SELECT COUNT(*) FROM instances i WHERE i.series_uid = s.series_uid) "
        "FROM series s WHERE s.series_uid = ?",
        (series_uid,),
    ).fetchone()
    if row is None:
        return None
    links = conn.execute(
        "SELECT sa.association_id, sa.calling_ae, a.outcome, a.ended_at, sa.arrivals, "
        "sa.first_arrival_at, sa.last_arrival_at FROM series_associations sa "
        "LEFT JOIN associations a USING (association_id) WHERE sa.series_uid = ? "
        "ORDER BY sa.last_arrival_at, sa.rowid",
        (series_uid,),
    ).fetchall()
    associations = tuple(
        SeriesAssociation(
            association_id=link[0],
            calling_ae=link[1],
            outcome=None if link[2] is None else AssociationOutcome(link[2]),
            ended_at=link[3],
            arrivals=int(link[4]),
            first_arrival_at=link[5],
            last_arrival_at=link[6],
        )
        for link in links
    )
    return SeriesArrivals(
        series_uid=series_uid,
        patient_id=row[0],
        study_uid=row[1],
        frame_of_reference_uid=row[2],
        modality=row[3],
        kind=InstanceKind(row[4]),
        role=Role(row[5]),
        instance_count=int(row[8]),
        first_arrival_at=row[6],
        last_arrival_at=row[7],
        associations=associations,
    )


def read_object(conn: sqlite3.Connection, root: Path, row: Sequence[Any]) -> ObjectRecord:
    refs = conn.execute(
        "SELECT ref_type, ref_uid FROM instance_refs WHERE sop_instance_uid = ? ORDER BY rowid",
        (row[0],),
    ).fetchall()
    return ObjectRecord(
        sop_instance_uid=row[0],
        sop_class_uid=row[1],
        kind=InstanceKind(row[2]),
        role=Role(row[3]),
        series_uid=row[4],
        study_uid=row[5],
        patient_id=row[6],
        frame_of_reference_uid=row[7],
        label=row[8],
        path=root / row[9],
        received_at=row[10],
        referenced_frame_uids=tuple(r[1] for r in refs if r[0] == "frame"),
        referenced_series_uids=tuple(r[1] for r in refs if r[0] == "series"),
    )
