"""Retention (``[storage] keep_days``): purge received DICOM series and review images older than
the cutoff, never what a correction still needs (the review images of a correction that may
still be decided are kept whatever their age).

A series is *needed*, and kept whatever its age, when
* an instance of it arrived after the cutoff;
* a correction that may still be decided refers to it (its CBCT series and its planning CT):
  :meth:`Retention.held_by_corrections`, the predicate the approval extends;
* a record not yet acknowledged by every destination refers to it;
* its registration is in progress (claimed, no result yet);
* it is a Spatial Registration that refers to a needed series;
* it came from a planning peer for a patient who has a needed series (a course of treatment
  lasts longer than ``keep_days``: the plan and planning CT stay while the patient is treated).

Correction messages, jobs and records are never purged: they are small, they are the history,
and a job row keeps a purged CBCT from being registered again if it is re-sent.
Rows go first, in one transaction, then the files: a crash in between leaves unreferenced files
(wasted space), never an index entry without its file.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from dataclasses import dataclass
from datetime import timedelta

from igrt.core.clock import iso_utc
from igrt.core.kinds import InstanceKind, Role
from igrt.store.base import StoreBase
from igrt.store.index import marks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeReport:
    """What one purge removed, and how many old series it kept because they are needed."""

    series: int  # series removed, with their instances' files
    instances: int
    size_bytes: int  # of the files removed
    kept_needed: int  # older than the cutoff, kept: a correction still to be decided needs them


class Retention(StoreBase):
    def held_by_corrections(self, conn: sqlite3.Connection, cutoff: str) -> set[str]:
        """Series that corrections which may still be decided need: the CBCT and planning CT
        series of every correction stored after ``cutoff``, and of every computed correction
        of any age that has no decision and no later correction for its CBCT or patient."""
        rows = conn.execute(
            "SELECT c.series_uid, json_extract(c.message_json, "
            "'$.registration.planning_ct_series_uid') FROM corrections c WHERE c.stored_at >= ? "
            "OR (json_extract(c.message_json, '$.status') IN ('ok', 'review') AND NOT EXISTS "
            "(SELECT 1 FROM decisions d WHERE d.seq = c.seq) AND NOT EXISTS (SELECT 1 FROM "
            "corrections later WHERE later.seq > c.seq AND (later.series_uid = c.series_uid OR "
            "later.patient_id = c.patient_id)))", (cutoff,)).fetchall()
        return {uid for row in rows for uid in row if isinstance(uid, str) and uid}

    def undecided_seqs(self, conn: sqlite3.Connection) -> set[int]:
        """Computed corrections that may still be decided (no decision, not superseded)."""
        return {int(r[0]) for r in conn.execute(
            "SELECT c.seq FROM corrections c WHERE json_extract(c.message_json, '$.status') IN "
            "('ok', 'review') AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.seq = c.seq) "
            "AND NOT EXISTS (SELECT 1 FROM corrections later WHERE later.seq > c.seq AND "
            "(later.series_uid = c.series_uid OR later.patient_id = c.patient_id))")}

    def needed_series(self, conn: sqlite3.Connection, cutoff: str) -> set[str]:
        """Every series that must be kept at this cutoff (see the module docstring)."""
        needed = {r[0] for r in conn.execute(
            "SELECT series_uid FROM series WHERE last_arrival_at >= ?", (cutoff,))}
        needed |= self.held_by_corrections(conn, cutoff)
        for row in conn.execute(
                "SELECT r.cbct_series_uid, r.planning_series_uid FROM records r WHERE EXISTS "
                "(SELECT 1 FROM record_deliveries d WHERE d.seq = r.seq AND "
                "d.acknowledged_at IS NULL)"):
            needed.update(row)
        needed |= {r[0] for r in conn.execute(
            "SELECT series_uid FROM jobs WHERE state = 'claimed'")}
        held = sorted(needed)
        if held:
            patients = {r[0] for r in conn.execute(
                f"SELECT DISTINCT patient_id FROM series WHERE series_uid IN ({marks(held)})",
                held)}
            plist = sorted(patients)
            if plist:
                needed |= {r[0] for r in conn.execute(
                    f"SELECT series_uid FROM series WHERE role = ? AND patient_id IN "
                    f"({marks(plist)})", (Role.PLANNING.value, *plist))}
        held = sorted(needed)
        if held:
            needed |= {r[0] for r in conn.execute(
                "SELECT DISTINCT i.series_uid FROM instances i JOIN instance_refs r USING "
                f"(sop_instance_uid) WHERE i.kind = ? AND r.ref_type = 'series' AND r.ref_uid "
                f"IN ({marks(held)})", (InstanceKind.SPATIAL_REGISTRATION.value, *held))}
        return needed

    def purge_older_than(self, keep_days: float) -> PurgeReport:
        """Remove the series whose last instance arrived more than ``keep_days`` ago and that
        are not needed (rows first, then files)."""
        cutoff = iso_utc(self._clock() - timedelta(days=keep_days))
        with self._transaction("purging old series") as conn:
            old = [r[0] for r in conn.execute(
                "SELECT series_uid FROM series WHERE last_arrival_at < ? ORDER BY series_uid",
                (cutoff,))]
            needed = self.needed_series(conn, cutoff) if old else set()
            doomed = [uid for uid in old if uid not in needed]
            files: list[tuple[str, int]] = []
            for uid in doomed:
                files += [(r[0], int(r[1])) for r in conn.execute(
                    "SELECT rel_path, size_bytes FROM instances WHERE series_uid = ?", (uid,))]
                conn.execute("DELETE FROM instance_refs WHERE sop_instance_uid IN "
                             "(SELECT sop_instance_uid FROM instances WHERE series_uid = ?)",
                             (uid,))
                conn.execute("DELETE FROM instances WHERE series_uid = ?", (uid,))
                conn.execute("DELETE FROM series_associations WHERE series_uid = ?", (uid,))
                conn.execute("DELETE FROM series WHERE series_uid = ?", (uid,))
            keep = self.undecided_seqs(conn)
            images = [(int(r[0]), str(r[1])) for r in conn.execute(
                "SELECT i.seq, i.rel_path FROM review_images i JOIN corrections c USING (seq) "
                "WHERE c.stored_at < ?", (cutoff,)) if int(r[0]) not in keep]
            conn.executemany("DELETE FROM review_images WHERE seq = ? AND rel_path = ?", images)
        files += [(rel, 0) for _seq, rel in images]
        for rel, _size in files:
            path = self.root / rel
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("purged %s from the index but cannot remove it: %s", path, exc)
            for parent in (path.parent, path.parent.parent):
                with contextlib.suppress(OSError):
                    parent.rmdir()  # only when empty
        report = PurgeReport(series=len(doomed), instances=len(files),
                             size_bytes=sum(size for _, size in files),
                             kept_needed=len(old) - len(doomed))
        if old:
            log.info("retention: purged %d series (%d instances, %d bytes) older than %s; kept "
                     "%d old series still needed", report.series, report.instances,
                     report.size_bytes, cutoff, report.kept_needed)
        return report

