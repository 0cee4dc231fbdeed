"""The store's sqlite schema, one migration step per version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from igrt.core.errors import StoreError

_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE instances (
    sop_instance_uid TEXT PRIMARY KEY,
    sop_class_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    frame_of_reference_uid TEXT,
    modality TEXT NOT NULL,
    kind TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('imaging', 'planning')),
    calling_ae TEXT NOT NULL,
    association_id TEXT NOT NULL,
    label TEXT,
    rel_path TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    first_received_at TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX instances_by_series ON instances (series_uid);
CREATE INDEX instances_by_patient ON instances (patient_id, kind);
CREATE TABLE instance_refs (
    sop_instance_uid TEXT NOT NULL REFERENCES instances (sop_instance_uid),
    ref_type TEXT NOT NULL CHECK (ref_type IN ('frame', 'series')),
    ref_uid TEXT NOT NULL,
    PRIMARY KEY (sop_instance_uid, ref_type, ref_uid)
);
CREATE INDEX instance_refs_by_uid ON instance_refs (ref_type, ref_uid);
CREATE TABLE series (
    series_uid TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    frame_of_reference_uid TEXT,
    modality TEXT NOT NULL,
    kind TEXT NOT NULL,
    role TEXT NOT NULL,
    first_arrival_at TEXT NOT NULL,
    last_arrival_at TEXT NOT NULL
);
CREATE TABLE series_associations (
    series_uid TEXT NOT NULL REFERENCES series (series_uid),
    association_id TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    arrivals INTEGER NOT NULL,
    first_arrival_at TEXT NOT NULL,
    last_arrival_at TEXT NOT NULL,
    PRIMARY KEY (series_uid, association_id)
);
CREATE TABLE associations (
    association_id TEXT PRIMARY KEY,
    calling_ae TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('released', 'aborted')),
    ended_at TEXT NOT NULL
);
CREATE TABLE plan_selection (
    patient_id TEXT PRIMARY KEY,
    plan_uid TEXT NOT NULL,
    selected_at TEXT NOT NULL
);
CREATE TABLE jobs (
    series_uid TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('claimed', 'done')),
    claimed_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE corrections (
    seq INTEGER PRIMARY KEY CHECK (seq > 0),
    series_uid TEXT,
    message_json TEXT NOT NULL,
    stored_at TEXT NOT NULL
);
CREATE INDEX corrections_by_series ON corrections (series_uid, seq);
"""

# Version 3: the record queue (CONTRACT §8). One row per approved correction (the Spatial
# Registration object, built once so every retry sends the very same SOP instance) and one row
# per (seq, destination AE title) with its delivery state.
_SCHEMA_V3_RECORDS = """
CREATE TABLE records (
    seq INTEGER PRIMARY KEY REFERENCES corrections (seq),
    sop_instance_uid TEXT NOT NULL UNIQUE,
    cbct_series_uid TEXT NOT NULL,
    planning_series_uid TEXT NOT NULL,
    operator TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    object BLOB NOT NULL
);
CREATE TABLE record_deliveries (
    seq INTEGER NOT NULL REFERENCES records (seq),
    ae_title TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    alarmed_at TEXT,
    acknowledged_at TEXT,
    status INTEGER,
    PRIMARY KEY (seq, ae_title)
);
CREATE INDEX record_deliveries_due ON record_deliveries (acknowledged_at, next_attempt_at);
"""

_SCHEMA_V2_DECISIONS = """
ALTER TABLE corrections ADD COLUMN patient_id TEXT;
UPDATE corrections SET patient_id = json_extract(message_json, '$.patient_id');
CREATE INDEX corrections_by_patient ON corrections (patient_id, seq);
CREATE TABLE decisions (
    seq INTEGER PRIMARY KEY REFERENCES corrections (seq),
    decision TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
    operator TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    message_json TEXT NOT NULL
);
CREATE TABLE review_images (
    seq INTEGER NOT NULL REFERENCES corrections (seq),
    name TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    PRIMARY KEY (seq, name)
);
"""

# Version 4 (security and robustness): the content hash of each instance (a re-send with other
# content is refused, a byte-identical one is not), the instances each association refused (a
# series delivered with refusals is never registered from what remains), and what a job
# registered (which delivery, with which status) so that a series that ended ``failed`` is
# registered again when it is sent again.
_SCHEMA_V4_SECURITY = """
ALTER TABLE instances ADD COLUMN content_sha256 TEXT;
ALTER TABLE associations ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN association_id TEXT;
ALTER TABLE jobs ADD COLUMN status TEXT;
"""

#: One step per schema version: ``MIGRATIONS[n]`` takes a database from version ``n`` to
#: ``n + 1``. A capability that needs new tables appends a step; a step is never edited once
#: released, so every store upgrades in place, in order.
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2_DECISIONS, _SCHEMA_V3_RECORDS,
                               _SCHEMA_V4_SECURITY)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, root: Path) -> None:
    """Create the schema in a new database or upgrade an older one step by step (one
    transaction); refuse a newer one."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        version = 0
        if has_meta is not None:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row is not None else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store database in {root} has schema version {version}, but this igrt "
                f"reads version {SCHEMA_VERSION}; use the igrt release that wrote it or a new "
                "[storage] dir"
            )
        for step in MIGRATIONS[version:]:
            for statement in step.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO "
            "UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),)
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
