"""DICOM UID syntax (PS3.5 §9.1). UIDs become file names, so they are checked before any I/O."""

from __future__ import annotations

import re

from igrt.core.errors import InvalidUidError

_UID_COMPONENT = re.compile(r"0|[1-9][0-9]*")
UID_MAX_CHARS = 64


def uid_problem(uid: object) -> str | None:
    """Why ``uid`` is not a valid DICOM UID (PS3.5 §9.1), or ``None`` when it is valid."""
    if not isinstance(uid, str):
        return f"it is a {type(uid).__name__}, not a string"
    if not uid:
        return "it is empty"
    if len(uid) > UID_MAX_CHARS:
        return f"it has {len(uid)} characters, more than {UID_MAX_CHARS}"
    for position, component in enumerate(uid.split("."), start=1):
        if not component:
            return f"component {position} is empty"
        if not _UID_COMPONENT.fullmatch(component):
            if component.isascii() and component.isdigit():
                return f"component {position} ({component!r}) has a leading zero"
            return f"component {position} ({component[:20]!r}) is not made of digits 0-9"
    return None


def is_valid_uid(uid: object) -> bool:
    """True for a DICOM UID: 1-64 characters, digit components separated by dots, no empty
    component, no leading zero in a component other than ``0`` itself (PS3.5 §9.1)."""
    return uid_problem(uid) is None


def require_uid(uid: object, what: str) -> str:
    """``uid`` when valid, else :class:`InvalidUidError` naming ``what`` (e.g. "the Series
    Instance UID") and the problem. UIDs become file names, so this runs before any I/O."""
    problem = uid_problem(uid)
    if problem is not None:
        shown = repr(uid)[:80]
        raise InvalidUidError(
            f"{what} {shown} is not a valid DICOM UID ({problem}); a UID is 1-64 characters of "
            "digit components separated by dots, without leading zeros (PS3.5 §9.1)"
        )
    assert isinstance(uid, str)
    return uid
