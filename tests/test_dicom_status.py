"""The one mapping from exceptions to C-STORE statuses and Error Comments."""

from __future__ import annotations

import pytest

from igrt.core.errors import (
    InstanceConflictError,
    InvalidInstanceError,
    InvalidUidError,
    OutOfSpaceError,
    PlanError,
    StoreError,
)
from services.scp.status import (
    InvalidDataSetError,
    RoleNotAllowedError,
    StatusReply,
    StoreStatus,
    UnreadableDataSetError,
    error_comment,
    reply_for,
)

INTERNAL = StatusReply(StoreStatus.ERROR_CANNOT_UNDERSTAND, "internal error in igrt; see igrt log")
LONG = "the store database failed while recording SOP instance 1.2.3.4.5.6.7.8.9: disk I/O error"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(
            RoleNotAllowedError("RT Plan from LINAC refused ...", comment="RT Plan not accepted"),
            StatusReply(StoreStatus.REFUSED_NOT_AUTHORIZED, "RT Plan not accepted"),
            id="role",
        ),
        pytest.param(
            InvalidDataSetError("CT Image 1.2 has no Patient ID", comment="Patient ID missing"),
            StatusReply(StoreStatus.ERROR_DATA_SET_DOES_NOT_MATCH_SOP_CLASS, "Patient ID missing"),
            id="invalid-data-set",
        ),
        pytest.param(
            UnreadableDataSetError("cannot inflate", comment="data set cannot be decoded: error"),
            StatusReply(StoreStatus.ERROR_CANNOT_UNDERSTAND, "data set cannot be decoded: error"),
            id="unreadable",
        ),
        pytest.param(
            OutOfSpaceError(LONG),
            StatusReply(
                StoreStatus.REFUSED_OUT_OF_RESOURCES,
                "igrt store out of disk space; instance not kept, retry later",
            ),
            id="out-of-space",
        ),
        pytest.param(
            InvalidUidError(LONG),
            StatusReply(
                StoreStatus.ERROR_DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
                "a UID of the instance is not a valid DICOM UID",
            ),
            id="store-invalid-uid",
        ),
        pytest.param(
            InvalidInstanceError(LONG),
            StatusReply(
                StoreStatus.ERROR_DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
                "the instance lacks an attribute igrt needs; see igrt log",
            ),
            id="store-invalid-instance",
        ),
        pytest.param(
            InstanceConflictError(LONG),
            StatusReply(
                StoreStatus.ERROR_CANNOT_UNDERSTAND,
                "UID already stored for another patient/series/role",
            ),
            id="store-conflict",
        ),
        pytest.param(
            StoreError(LONG),
            StatusReply(
                StoreStatus.ERROR_CANNOT_UNDERSTAND,
                "igrt could not store the instance; see igrt log",
            ),
            id="store-other",
        ),
        pytest.param(
            PlanError("not a store problem"),
            INTERNAL,
            id="other-igrt-error",
        ),
        pytest.param(
            KeyError("PatientName"),
            INTERNAL,
            id="unexpected",
        ),
    ],
)
def test_reply_for_each_failure(error: BaseException, expected: StatusReply) -> None:
    assert reply_for(error) == expected


def test_status_values_are_the_standard_codes() -> None:
    assert {s.name: s.value for s in StoreStatus} == {
        "SUCCESS": 0x0000,
        "REFUSED_NOT_AUTHORIZED": 0x0124,
        "REFUSED_OUT_OF_RESOURCES": 0xA700,
        "ERROR_DATA_SET_DOES_NOT_MATCH_SOP_CLASS": 0xA900,
        "ERROR_CANNOT_UNDERSTAND": 0xC000,
    }


@pytest.mark.parametrize(
    ("text", "comment"),
    [
        pytest.param("Patient ID missing", "Patient ID missing", id="short-unchanged"),
        pytest.param("  two\tlines\nhere  ", "two lines here", id="whitespace-collapsed"),
        pytest.param("a\\b é", "a?b ?", id="backslash-and-non-ascii-replaced"),
        pytest.param("x" * 64, "x" * 64, id="exactly-64"),
        pytest.param("x" * 65, "x" * 61 + "...", id="no-word-boundary-cut-hard"),
        pytest.param(
            "Image Orientation (Patient) (0020,0037) is missing or is not six finite numbers",
            "Image Orientation (Patient) (0020,0037) is missing or is not...",
            id="cut-at-a-word",
        ),
    ],
)
def test_error_comment_fits_a_dicom_lo(text: str, comment: str) -> None:
    assert error_comment(text) == comment
    assert len(comment) <= 64
