"""The one clock format: wall-clock UTC, ISO 8601 with milliseconds and ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, as an aware UTC ``datetime``."""
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """``2026-11-21T18:30:00.123Z``: UTC, milliseconds, ``Z``. Naive datetimes are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp {moment!r} has no time zone; igrt records UTC only")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def now_text() -> str:
    """:func:`iso_utc` of :func:`utc_now`, the ``time`` of every message."""
    return iso_utc(utc_now())
