"""One error hierarchy for igrt, library and service alike.

Every error carries a :class:`~igrt.core.reasons.ReasonCode` and a sentence a therapist,
integrator or physicist can act on. ``reason`` renders both as ``"code: sentence"``, the form used
in the ``reasons`` of a ``correction`` message, in ``error`` messages and in the log. Errors of
received DICOM instances also carry the short Error Comment of the C-STORE status.

    IgrtError
    ├── ConfigError
    ├── SeriesError ── NotCt, MissingAttribute ── InvalidAttribute, MixedSeries, DuplicateSlice,
    │                  MissingSlice, IrregularSpacing, GantryTilt, InconsistentSlices,
    │                  TooFewSlices, InvalidGeometry, Unreadable
    ├── PlanError ──── NoPlan, AmbiguousPlan, RejectedPlan, MultipleIsocentres, NoPlanningCt,
    │                  Structure,
    │                  SpatialRegistration
    ├── MatchError ─── PatientMismatch
    ├── RegistrationError ── NoOverlap
    ├── StoreError ─── OutOfSpace, StoreInUse, InvalidUid, InvalidInstance, InstanceConflict,
    │                  UnknownPlan, QaHistory
    ├── InstanceRefusedError ── RoleNotAllowed, InvalidDataSet, UnreadableDataSet
    ├── CommandError ── DecisionRefused, UnknownOperator
    ├── PublishError, EndpointError, WorkerError
    ├── QaError
    └── RecordError ── RecordDeliveryError
"""

from __future__ import annotations

import re
from typing import ClassVar

from igrt.core.reasons import ReasonCode, reason

#: DICOM VR LO, the Error Comment (0000,0902) of a status.
ERROR_COMMENT_MAX_CHARS = 64
_ELLIPSIS = "..."


class IgrtError(Exception):
    """Base of every error igrt raises on purpose."""

    code: ClassVar[ReasonCode] = ReasonCode.ERROR
    default_message: ClassVar[str] = "igrt could not complete the request"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])

    @property
    def reason(self) -> str:
        return reason(self.code, self.message)


# --- configuration -------------------------------------------------------------------------------
class ConfigError(IgrtError):
    code = ReasonCode.CONFIG
    default_message = "the configuration is invalid"


# --- series assembly -----------------------------------------------------------------------------
class SeriesError(IgrtError):
    code = ReasonCode.SERIES
    default_message = "the image series cannot be assembled into a volume"


class NotCtError(SeriesError):
    code = ReasonCode.NOT_CT
    default_message = "the instances are not CT images"


class MissingAttributeError(SeriesError):
    code = ReasonCode.MISSING_ATTRIBUTE
    default_message = "a required DICOM attribute is missing"


class InvalidAttributeError(MissingAttributeError):
    code = ReasonCode.INVALID_ATTRIBUTE
    default_message = "a required DICOM attribute has an unusable value"


class MixedSeriesError(SeriesError):
    code = ReasonCode.MIXED_SERIES
    default_message = "the instances belong to more than one series"


class DuplicateSliceError(SeriesError):
    code = ReasonCode.DUPLICATE_SLICE
    default_message = "two slices share one position"


class MissingSliceError(SeriesError):
    code = ReasonCode.MISSING_SLICE
    default_message = "the series has a gap: at least one slice is missing"


class IrregularSpacingError(SeriesError):
    code = ReasonCode.IRREGULAR_SPACING
    default_message = "the slice positions are not regularly spaced"


class GantryTiltError(SeriesError):
    code = ReasonCode.GANTRY_TILT
    default_message = "the slices are not perpendicular to the slice direction (gantry tilt)"


class InconsistentSlicesError(SeriesError):
    code = ReasonCode.INCONSISTENT_SLICES
    default_message = "the slices differ in orientation, pixel spacing or size"


class TooFewSlicesError(SeriesError):
    code = ReasonCode.TOO_FEW_SLICES
    default_message = "the series has fewer than two slices and is not a volume"


class InvalidGeometryError(SeriesError):
    code = ReasonCode.INVALID_GEOMETRY
    default_message = "a slice has an impossible geometry"


class UnreadableError(SeriesError):
    code = ReasonCode.UNREADABLE
    default_message = "a file is not a readable DICOM instance"


# --- planning reference --------------------------------------------------------------------------
class PlanError(IgrtError):
    code = ReasonCode.PLAN
    default_message = "the planning reference is unusable"


class NoPlanError(PlanError):
    code = ReasonCode.NO_PLAN
    default_message = "no RT Plan is available for this patient"


class AmbiguousPlanError(PlanError):
    code = ReasonCode.AMBIGUOUS_PLAN
    default_message = "several RT Plans are available and none is selected"


class RejectedPlanError(PlanError):
    code = ReasonCode.REJECTED_PLAN
    default_message = "the plan's Approval Status is REJECTED: it is never used"


class MultipleIsocentresError(PlanError):
    code = ReasonCode.MULTIPLE_ISOCENTRES
    default_message = "the plan has several distinct isocentres and none is selected"


class NoPlanningCtError(PlanError):
    code = ReasonCode.NO_PLANNING_CT
    default_message = "no planning CT shares the plan's Frame of Reference"


class StructureError(PlanError):
    code = ReasonCode.STRUCTURE
    default_message = "the registration structure is unusable"


class SpatialRegistrationError(PlanError):
    code = ReasonCode.SPATIAL_REGISTRATION
    default_message = "the Spatial Registration object does not give a usable nominal alignment"


# --- matching ------------------------------------------------------------------------------------
class MatchError(IgrtError):
    code = ReasonCode.MATCH
    default_message = "the CBCT does not match the planning reference"


class PatientMismatchError(MatchError):
    code = ReasonCode.PATIENT_MISMATCH
    default_message = "the CBCT belongs to another patient than the plan"


# --- registration --------------------------------------------------------------------------------
class RegistrationError(IgrtError):
    code = ReasonCode.REGISTRATION
    default_message = "the registration failed"


class NoOverlapError(RegistrationError):
    code = ReasonCode.NO_OVERLAP
    default_message = "the CBCT field of view does not cover the region around the isocentre"


# --- store ---------------------------------------------------------------------------------------
class StoreError(IgrtError):
    code = ReasonCode.STORE
    default_message = "the store could not complete the operation"


class OutOfSpaceError(StoreError):
    code = ReasonCode.OUT_OF_SPACE
    default_message = "the store is out of disk space"


class StoreInUseError(StoreError):
    code = ReasonCode.STORE_IN_USE
    default_message = "the store directory is already used by another igrt store"


class InvalidUidError(StoreError):
    code = ReasonCode.INVALID_UID
    default_message = "a UID is not a valid DICOM UID"


class InvalidInstanceError(StoreError):
    code = ReasonCode.INVALID_INSTANCE
    default_message = "the instance lacks an attribute the store needs"


class InstanceConflictError(StoreError):
    code = ReasonCode.INSTANCE_CONFLICT
    default_message = "the instance contradicts what the store already holds under its UIDs"


class UnknownPlanError(StoreError):
    code = ReasonCode.UNKNOWN_PLAN
    default_message = "no such RT Plan has been received for this patient"


# --- received instances (the Storage SCP's refusals) ---------------------------------------------
class InstanceRefusedError(IgrtError):
    """A received instance refused before it is stored. ``comment`` is the short reason for the
    Error Comment (at most 64 characters); the message is the full sentence for the log."""

    code = ReasonCode.INSTANCE_REFUSED
    default_message = "the received instance was refused"

    def __init__(self, message: str, *, comment: str) -> None:
        super().__init__(message)
        self.comment = error_comment(comment)


class RoleNotAllowedError(InstanceRefusedError):
    code = ReasonCode.ROLE_NOT_ALLOWED
    default_message = "the peer's role may not send this kind of object"


class InvalidDataSetError(InstanceRefusedError):
    """An attribute igrt needs is missing or invalid, or the data set contradicts its request."""

    code = ReasonCode.INVALID_DATA_SET
    default_message = "the data set lacks an attribute igrt needs"


class UnreadableDataSetError(InstanceRefusedError):
    code = ReasonCode.UNREADABLE_DATA_SET
    default_message = "the received data set cannot be decoded"


# --- the service's channels ----------------------------------------------------------------------
class CommandError(IgrtError):
    """A request on the command socket cannot be answered with ``ok: true``."""

    code = ReasonCode.COMMAND
    default_message = "the command cannot be carried out"


class DecisionRefusedError(CommandError):
    """An approval or rejection the rules of CONTRACT §7 refuse (the sentence says which)."""

    code = ReasonCode.DECISION_REFUSED
    default_message = "the decision is refused"


class UnknownOperatorError(CommandError):
    """An operator name or PIN that the operators file does not hold (review page)."""

    code = ReasonCode.UNKNOWN_OPERATOR
    default_message = "the operator or PIN is not recognised"


class PublishError(IgrtError):
    """A message cannot be published (publisher not running, queue full, not a message)."""

    code = ReasonCode.PUBLISH
    default_message = "the message cannot be published"


class EndpointError(IgrtError):
    """A ZeroMQ socket cannot be bound to its configured endpoint."""

    code = ReasonCode.ZMQ_ENDPOINT
    default_message = "a ZeroMQ endpoint cannot be bound"


class WorkerError(IgrtError):
    """The registration worker could not finish a series (e.g. its result cannot be stored)."""

    code = ReasonCode.WORKER
    default_message = "the registration worker could not finish a series"


# --- the record (CONTRACT §8) --------------------------------------------------------------------
class RecordError(IgrtError):
    """The DICOM record of a correction cannot be built or queued (unknown or failed seq, no
    registration matrix, an operator name DICOM cannot hold, already queued)."""

    code = ReasonCode.RECORD
    default_message = "the DICOM record of the correction cannot be built"


class RecordDeliveryError(RecordError):
    """A record could not be delivered to a destination (unreachable, rejected, error status)."""

    code = ReasonCode.RECORD_UNDELIVERED
    default_message = "the DICOM record could not be delivered"
# --- physics QA ----------------------------------------------------------------------------------
class QaError(IgrtError):
    """A QA request that cannot be carried out as asked (expected offset, directory, report)."""

    code = ReasonCode.QA
    default_message = "the QA request is invalid"


class QaHistoryError(StoreError):
    """The room's QA history cannot be read or written."""

    code = ReasonCode.QA_HISTORY
    default_message = "the QA history cannot be read or written"


def error_comment(text: str) -> str:
    """``text`` as a valid Error Comment: printable ASCII without backslash, whitespace collapsed,
    at most 64 characters (cut at a word boundary when one is near, marked with ``...``)."""
    collapsed = re.sub(r"\s+", " ", text).strip()
    clean = "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in collapsed)
    if len(clean) <= ERROR_COMMENT_MAX_CHARS:
        return clean
    room = ERROR_COMMENT_MAX_CHARS - len(_ELLIPSIS)
    cut = clean[:room]
    space = cut.rfind(" ")
    if space >= room - 16:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + _ELLIPSIS
