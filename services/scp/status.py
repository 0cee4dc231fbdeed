"""C-STORE response statuses: the named codes, the SCP's refusals, and the one place that maps an
exception to a status and an Error Comment.

Mapping (CONTRACT §3; PS3.4 B.2.3 for the storage codes, PS3.7 C for 0x0124):

=============================================  ======  ============================================
Cause                                          Status  Meaning shown by a DICOM SCU
=============================================  ======  ============================================
stored durably                                 0x0000  Success
SOP class not allowed for the peer's role      0x0124  Refused: Not Authorized (resending the same
                                                       object from that peer never succeeds)
store out of disk space (``OutOfSpaceError``)  0xA700  Refused: Out of Resources (retry later)
missing/invalid attribute, invalid UID,        0xA900  Error: Data Set does not match SOP Class
UIDs of the request and data set differ
data set cannot be decoded                     0xC000  Error: Cannot understand
UIDs conflict with a stored instance           0xC000  Error: Cannot understand
any other store failure or unexpected error    0xC000  Error: Cannot understand (see igrt's log)
=============================================  ======  ============================================

The Error Comment (0000,0902) is a DICOM LO: at most 64 characters of printable ASCII without a
backslash. :func:`igrt.core.errors.error_comment` makes any text fit; the full message always
goes to the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from igrt.core.errors import (
    InstanceConflictError,
    InstanceRefusedError,
    InvalidDataSetError,
    InvalidInstanceError,
    InvalidUidError,
    OutOfSpaceError,
    RoleNotAllowedError,
    StoreError,
    UnreadableDataSetError,
    error_comment,
)


class StoreStatus(IntEnum):
    """The C-STORE statuses igrt's SCP answers with."""

    SUCCESS = 0x0000
    REFUSED_NOT_AUTHORIZED = 0x0124
    REFUSED_OUT_OF_RESOURCES = 0xA700
    ERROR_DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    ERROR_CANNOT_UNDERSTAND = 0xC000


# --- the mapping ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StatusReply:
    """The status and Error Comment to answer a C-STORE with (comment empty on success)."""

    status: StoreStatus
    comment: str = ""


# Checked in order: the first class the exception is an instance of wins (subclasses first).
_STATUS_BY_ERROR: tuple[tuple[type[BaseException], StoreStatus, str | None], ...] = (
    (RoleNotAllowedError, StoreStatus.REFUSED_NOT_AUTHORIZED, None),
    (InvalidDataSetError, StoreStatus.ERROR_DATA_SET_DOES_NOT_MATCH_SOP_CLASS, None),
    (UnreadableDataSetError, StoreStatus.ERROR_CANNOT_UNDERSTAND, None),
    (
        OutOfSpaceError,
        StoreStatus.REFUSED_OUT_OF_RESOURCES,
        "igrt store out of disk space; instance not kept, retry later",
    ),
    (
        InvalidUidError,
        StoreStatus.ERROR_DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
        "a UID of the instance is not a valid DICOM UID",
    ),
    (
        InvalidInstanceError,
        StoreStatus.ERROR_DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
        "the instance lacks an attribute igrt needs; see igrt log",
    ),
    (
        InstanceConflictError,
        StoreStatus.ERROR_CANNOT_UNDERSTAND,
        "UID already stored for another patient/series/role",
    ),
    (
        StoreError,
        StoreStatus.ERROR_CANNOT_UNDERSTAND,
        "igrt could not store the instance; see igrt log",
    ),
)
_UNEXPECTED = StatusReply(
    StoreStatus.ERROR_CANNOT_UNDERSTAND, "internal error in igrt; see igrt log"
)


def reply_for(exc: BaseException) -> StatusReply:
    """The C-STORE status and Error Comment for an exception raised while handling a C-STORE."""
    for error_type, status, fixed_comment in _STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            if isinstance(exc, InstanceRefusedError):
                return StatusReply(status, exc.comment)
            return StatusReply(status, error_comment(fixed_comment or str(exc)))
    return _UNEXPECTED
