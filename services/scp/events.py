"""What the Storage SCP tells its caller about the series it receives."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from igrt.core.kinds import InstanceKind, Role


class ActivityKind(StrEnum):
    INSTANCE = "instance"  # one instance of the series was stored durably
    RELEASED = "released"  # an association that delivered instances of the series was released
    ABORTED = "aborted"  # ... was aborted (or its connection dropped without a release)


@dataclass(frozen=True)
class SeriesEvent:
    """What the SCP tells its caller about a series. ``monotonic_s`` is ``time.monotonic()`` when
    it happened (for the settle timer); ``sop_instance_uid`` is set for ``instance`` events."""

    event: ActivityKind
    series_uid: str
    kind: InstanceKind
    role: Role
    calling_ae: str
    association_id: str
    monotonic_s: float
    sop_instance_uid: str | None = None
