"""Received instances: durable storage of each C-STORE, association outcomes and the arrival
bookkeeping of series (when is a series complete?).

Durability: :meth:`InstanceStore.store_instance` returns only after the file is fsync'ed, renamed
into place, its directory fsync'ed and its row committed, so the SCP may then answer ``0x0000``.
"""
from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from pathlib import Path

from igrt.core.clock import iso_utc
from igrt.core.errors import StoreError
from igrt.core.kinds import IMAGE_KINDS, Role
from igrt.store.base import StoreBase
from igrt.store.files import (
    InstanceContent,
    ensure_dir,
    os_error,
    patient_key,
    write_atomically,
)
from igrt.store.index import (
    check_conflicts,
    marks,
    read_series_arrivals,
    record_instance,
    stored_content_sha256,
)
from igrt.store.records import (
    AssociationOutcome,
    InstanceMeta,
    ObjectRecord,
    SeriesArrivals,
    StoredInstance,
    validate_meta,
)

log = logging.getLogger(__name__)

class InstanceStore(StoreBase):
    # --- instances -------------------------------------------------------------------------------
    def store_instance(self, *, data: bytes | InstanceContent,
                       meta: InstanceMeta) -> StoredInstance:
        """Durably store one received instance (complete Part-10 bytes, or an
        :class:`InstanceContent`) and index it.

        Returns only once the file and its row are on disk. A re-send of the same SOP instance
        with the same data set bytes records the arrival (the new association) and keeps the
        file; one with other content is refused (:class:`InstanceConflictError`), the first one
        is kept: a SOP Instance UID names one object. Raises :class:`InvalidUidError` /
        :class:`InvalidInstanceError` before any I/O, :class:`InstanceConflictError` if the SOP
        instance or series is already held for another patient/series/role or other content,
        :class:`OutOfSpaceError` when the disk is full (no file is left behind), else
        :class:`StoreError`.
        """
        validate_meta(meta)
        content = InstanceContent.of(data)
        uid = meta.sop_instance_uid
        rel = Path("instances", patient_key(meta.patient_id), meta.series_uid, f"{uid}.dcm")
        final = self.root / rel
        try:
            sha256 = content.data_set_sha256()
        except OSError as exc:
            raise os_error(exc, f"reading the received SOP instance {uid}") from exc
        with self._reading(f"checking SOP instance {uid}") as conn:
            check_conflicts(conn, meta, sha256)
            identical = stored_content_sha256(conn, uid) == sha256
        existed = identical
        try:
            if identical:  # the file already holds exactly these bytes
                size = final.stat().st_size
            else:
                ensure_dir(final.parent, root=self.root, fsync=self._fsync)
                existed = final.exists()
                size = write_atomically(final, content.chunks(), tmp_dir=self.root / "tmp",
                                        fsync=self._fsync)
        except OSError as exc:
            raise os_error(exc, f"writing SOP instance {uid} of series "
                                f"{meta.series_uid}") from exc
        received_at = self._now()
        try:
            with self._transaction(f"recording SOP instance {uid}") as conn:
                check_conflicts(conn, meta, sha256)
                replaced = record_instance(conn, meta, str(rel), size, received_at, sha256)
        except StoreError:
            if not existed:  # the SCU gets an error status and will resend; keep no orphan
                with contextlib.suppress(OSError):
                    final.unlink()
            raise
        resent = ", identical re-send" if replaced else ""
        log.info(
            "stored SOP instance %s (series %s, %d bytes%s)",
            uid,
            meta.series_uid,
            size,
            resent,
        )
        return StoredInstance(final, meta, received_at, size, replaced)

    def record_association(
        self,
        association_id: str,
        calling_ae: str,
        outcome: AssociationOutcome | str,
        ended_at: datetime | None = None,
        *,
        refused: int = 0,
    ) -> None:
        """Record how an association ended and how many instances it refused (any error
        status). Recorded twice, ``aborted`` wins (never upgraded) and refusals add up."""
        result = AssociationOutcome(outcome)
        when = iso_utc(ended_at) if ended_at is not None else self._now()
        with self._transaction(f"recording the end of association {association_id}") as conn:
            conn.execute(
                "INSERT INTO associations (association_id, calling_ae, outcome, ended_at, "
                "refused) VALUES (?, ?, ?, ?, ?) ON CONFLICT(association_id) DO UPDATE SET "
                "outcome = CASE WHEN associations.outcome = 'aborted' THEN 'aborted' "
                "ELSE excluded.outcome END, ended_at = excluded.ended_at, "
                "refused = associations.refused + excluded.refused",
                (association_id, calling_ae, result.value, when, int(refused)),
            )
        log.info("association %s from %s %s (%d instance(s) refused)", association_id,
                 calling_ae, result.value, refused)

    def refused_in_delivery(self, series_uid: str) -> int:
        """How many instances the association that delivered the series' latest instance
        refused (0 if none, or if it has not ended yet). A series delivered with refusals may
        be incomplete: it must never be registered from what remains (CONTRACT §3)."""
        with self._reading(f"reading the refusals of series {series_uid}") as conn:
            row = conn.execute(
                "SELECT COALESCE(a.refused, 0) FROM series_associations sa LEFT JOIN "
                "associations a USING (association_id) WHERE sa.series_uid = ? "
                "ORDER BY sa.last_arrival_at DESC, sa.rowid DESC LIMIT 1",
                (series_uid,),
            ).fetchone()
        return 0 if row is None else int(row[0])

    def series_instances(self, series_uid: str) -> list[Path]:
        """Absolute paths of the distinct SOP instances of a series, sorted; [] if unknown."""
        with self._reading(f"listing series {series_uid}") as conn:
            rows = conn.execute(
                "SELECT rel_path FROM instances WHERE series_uid = ? ORDER BY rel_path",
                (series_uid,),
            ).fetchall()
        return [self.root / row[0] for row in rows]

    def series_arrivals(self, series_uid: str) -> SeriesArrivals | None:
        """Arrival bookkeeping of a series, or ``None`` if no instance of it was stored."""
        with self._reading(f"reading series {series_uid}") as conn:
            return read_series_arrivals(conn, series_uid)

    def unclaimed_series(self, role: Role = Role.IMAGING) -> list[SeriesArrivals]:
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
            infos = [read_series_arrivals(conn, uid) for uid in uids]
        return [info for info in infos if info is not None]

    def latest_series(self, role: Role = Role.IMAGING) -> str | None:
        """The image series from peers of ``role`` that received an instance last, if any."""
        with self._reading("finding the latest series") as conn:
            row = conn.execute(
                f"SELECT series_uid FROM series WHERE role = ? AND kind IN ({marks(IMAGE_KINDS)}) "
                "ORDER BY last_arrival_at DESC, series_uid DESC LIMIT 1",
                (Role(role).value, *IMAGE_KINDS),
            ).fetchone()
        return None if row is None else str(row[0])

    def series_objects(self, series_uid: str) -> list[ObjectRecord]:
        """The indexed records of the instances of one series, in arrival order; [] if unknown."""
        return self._objects("i.series_uid = ?", (series_uid,))

    def instance(self, sop_instance_uid: str) -> ObjectRecord | None:
        """The indexed record of one SOP instance, or ``None``."""
        return next(iter(self._objects("i.sop_instance_uid = ?", (sop_instance_uid,))), None)
