"""The vocabulary of why: every reason code igrt reports, in one StrEnum.

A reason is ``"code: sentence"`` (see :func:`reason`): the ``reasons`` of a ``correction``
message, the ``reason`` of an ``error`` message and the ``code`` of every
:class:`igrt.core.errors.IgrtError`. The README's table of reason codes is tested to equal this
enum, so a new code cannot go undocumented.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    # --- review: a correction was computed, a human must look before it is applied ------------
    NOT_CONVERGED = "not_converged"
    AT_BOUND = "at_bound"
    UNSTABLE = "unstable"
    ENGINES_DISAGREE = "engines_disagree"
    TRANSLATION_LIMIT = "translation_limit"
    ROTATION_LIMIT = "rotation_limit"
    UNAPPROVED_PLAN = "unapproved_plan"
    # --- failed: no correction -----------------------------------------------------------------
    FAILED = "failed"
    INTERNAL = "internal"
    INTERRUPTED = "interrupted"
    SERIES = "series"
    NOT_CT = "not_ct"
    MISSING_ATTRIBUTE = "missing_attribute"
    INVALID_ATTRIBUTE = "invalid_attribute"
    MIXED_SERIES = "mixed_series"
    DUPLICATE_SLICE = "duplicate_slice"
    MISSING_SLICE = "missing_slice"
    IRREGULAR_SPACING = "irregular_spacing"
    GANTRY_TILT = "gantry_tilt"
    INCONSISTENT_SLICES = "inconsistent_slices"
    TOO_FEW_SLICES = "too_few_slices"
    INVALID_GEOMETRY = "invalid_geometry"
    UNREADABLE = "unreadable"
    PLAN = "plan"
    NO_PLAN = "no_plan"
    AMBIGUOUS_PLAN = "ambiguous_plan"
    REJECTED_PLAN = "rejected_plan"
    MULTIPLE_ISOCENTRES = "multiple_isocentres"
    NO_PLANNING_CT = "no_planning_ct"
    STRUCTURE = "structure"
    SPATIAL_REGISTRATION = "spatial_registration"
    MATCH = "match"
    PATIENT_MISMATCH = "patient_mismatch"
    REGISTRATION = "registration"
    NO_OVERLAP = "no_overlap"
    # --- faults of the service itself (error messages, DICOM statuses, command replies) --------
    ERROR = "error"
    CONFIG = "config"
    STORE = "store"
    OUT_OF_SPACE = "out_of_space"
    STORE_IN_USE = "store_in_use"
    INVALID_UID = "invalid_uid"
    INVALID_INSTANCE = "invalid_instance"
    INSTANCE_CONFLICT = "instance_conflict"
    UNKNOWN_PLAN = "unknown_plan"
    INSTANCE_REFUSED = "instance_refused"
    ROLE_NOT_ALLOWED = "role_not_allowed"
    INVALID_DATA_SET = "invalid_data_set"
    UNREADABLE_DATA_SET = "unreadable_data_set"
    COMMAND = "command"
    DECISION_REFUSED = "decision_refused"
    UNKNOWN_OPERATOR = "unknown_operator"
    PUBLISH = "publish"
    ZMQ_ENDPOINT = "zmq_endpoint"
    WORKER = "worker"
    PHANTOM = "phantom"
    # --- the record (CONTRACT §8) and operations -------------------------------------------------
    RECORD = "record"
    RECORD_UNDELIVERED = "record_undelivered"
    LOW_DISK_SPACE = "low_disk_space"
    # --- physics QA ---------------------------------------------------------------------------
    QA = "qa"
    QA_HISTORY = "qa_history"


def reason(code: ReasonCode, sentence: str) -> str:
    """``"code: sentence"``, the one form a reason takes everywhere."""
    return f"{code.value}: {sentence}"


def code_of(text: str) -> ReasonCode | None:
    """The code a reason starts with, or None when it starts with no known code."""
    head, sep, _ = text.partition(":")
    if not sep:
        return None
    try:
        return ReasonCode(head.strip())
    except ValueError:
        return None
