"""What the durable store holds: its records and enums, and UID validation.

No I/O here. ``igrt.store`` re-exports everything a caller needs, so import from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from igrt.core.errors import InvalidInstanceError
from igrt.core.kinds import InstanceKind, Role
from igrt.core.uids import require_uid

# --- enums ---------------------------------------------------------------------------------------


class AssociationOutcome(StrEnum):
    RELEASED = "released"
    ABORTED = "aborted"


class JobState(StrEnum):
    CLAIMED = "claimed"  # a worker took the series; no correction message stored yet
    DONE = "done"  # a correction message for the series is stored


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceMeta:
    """What the SCP extracted from one received instance; everything the store indexes.

    ``frame_of_reference_uid`` is the instance's own Frame of Reference UID (for an RT Structure
    Set: the frame its contours are in). ``referenced_frame_uids`` / ``referenced_series_uids``
    are the frames and series the object refers to (Spatial Registration: the registered frames
    and the referenced image series; RT Structure Set: ReferencedFrameOfReferenceSequence).
    ``label`` is RTPlanLabel / StructureSetLabel when there is one.
    """

    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    patient_id: str
    frame_of_reference_uid: str | None
    modality: str
    kind: InstanceKind
    role: Role
    calling_ae: str
    association_id: str
    label: str | None = None
    referenced_frame_uids: tuple[str, ...] = ()
    referenced_series_uids: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredInstance:
    """An instance durably on disk and recorded. ``replaced``: the SOP instance was already held
    (a re-send) and its file was replaced atomically."""

    path: Path
    meta: InstanceMeta
    received_at: str
    size_bytes: int
    replaced: bool


@dataclass(frozen=True)
class ObjectRecord:
    """One indexed instance (plan, structure set, spatial registration, image)."""

    sop_instance_uid: str
    sop_class_uid: str
    kind: InstanceKind
    role: Role
    series_uid: str
    study_uid: str
    patient_id: str
    frame_of_reference_uid: str | None
    label: str | None
    path: Path
    received_at: str
    referenced_frame_uids: tuple[str, ...]
    referenced_series_uids: tuple[str, ...]


#: The record of an RT (Ion) Plan; same shape as every indexed object.
PlanRecord = ObjectRecord


@dataclass(frozen=True)
class SeriesAssociation:
    """One association that delivered instances of a series, with its outcome when it ended.

    ``outcome`` is ``None`` while the association has not ended (or the service stopped before it
    did). ``arrivals`` counts every C-STORE of the series in it, re-sends included.
    """

    association_id: str
    calling_ae: str
    outcome: AssociationOutcome | None
    ended_at: str | None
    arrivals: int
    first_arrival_at: str
    last_arrival_at: str


@dataclass(frozen=True)
class SeriesArrivals:
    """Arrival bookkeeping of one series (wall-clock UTC times). ``instance_count`` counts
    distinct SOP instances; ``associations`` are ordered by their last arrival."""

    series_uid: str
    patient_id: str
    study_uid: str
    frame_of_reference_uid: str | None
    modality: str
    kind: InstanceKind
    role: Role
    instance_count: int
    first_arrival_at: str
    last_arrival_at: str
    associations: tuple[SeriesAssociation, ...]

    @property
    def last_association(self) -> SeriesAssociation:
        """The association that delivered the most recent instance of the series."""
        return self.associations[-1]

    @property
    def released(self) -> bool:
        """The association that delivered the latest instance ended with a release."""
        return self.last_association.outcome is AssociationOutcome.RELEASED

    @property
    def any_aborted(self) -> bool:
        return any(a.outcome is AssociationOutcome.ABORTED for a in self.associations)


def validate_meta(meta: InstanceMeta) -> None:
    """Refuse metadata the store cannot file safely, before anything touches the disk."""
    require_uid(meta.sop_class_uid, "the SOP Class UID")
    require_uid(meta.sop_instance_uid, "the SOP Instance UID")
    require_uid(meta.series_uid, f"the Series Instance UID of SOP instance {meta.sop_instance_uid}")
    require_uid(meta.study_uid, f"the Study Instance UID of SOP instance {meta.sop_instance_uid}")
    if meta.frame_of_reference_uid is not None:
        require_uid(
            meta.frame_of_reference_uid,
            f"the Frame of Reference UID of SOP instance {meta.sop_instance_uid}",
        )
    for ref in meta.referenced_frame_uids:
        require_uid(ref, f"a referenced Frame of Reference UID of {meta.sop_instance_uid}")
    for ref in meta.referenced_series_uids:
        require_uid(ref, f"a referenced Series Instance UID of {meta.sop_instance_uid}")
    if not isinstance(meta.patient_id, str) or not meta.patient_id.strip():
        raise InvalidInstanceError(
            f"SOP instance {meta.sop_instance_uid} has no Patient ID (0010,0020); the store "
            "files every instance under its patient and cannot accept it"
        )
    if not isinstance(meta.kind, InstanceKind):
        raise InvalidInstanceError(
            f"SOP instance {meta.sop_instance_uid}: kind {meta.kind!r} is not an InstanceKind"
        )
    if not isinstance(meta.role, Role):
        raise InvalidInstanceError(
            f"SOP instance {meta.sop_instance_uid}: role {meta.role!r} is not a Role"
        )
    if not meta.association_id:
        raise InvalidInstanceError(
            f"SOP instance {meta.sop_instance_uid} has no association id; arrival bookkeeping "
            "needs it to decide when the series is complete"
        )
