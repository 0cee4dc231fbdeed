"""Records and a stepping wall clock for the store tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from igrt.core.kinds import InstanceKind, Role
from igrt.store import InstanceMeta

CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
PLAN_CLASS = "1.2.840.10008.5.1.4.1.1.481.5"
STRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
REG_CLASS = "1.2.840.10008.5.1.4.1.1.66.1"

PLAN_FRAME = "1.2.826.0.1.3680043.2.1"
CBCT_FRAME = "1.2.826.0.1.3680043.2.2"
T0 = datetime(2026, 11, 21, 18, 30, 0, tzinfo=UTC)


def meta(**overrides: object) -> InstanceMeta:
    base = InstanceMeta(
        sop_class_uid=CT_CLASS,
        sop_instance_uid="1.2.3.100.1",
        series_uid="1.2.3.100",
        study_uid="1.2.3.1",
        patient_id="PAT/001",  # a "/" must never reach the file system
        frame_of_reference_uid=CBCT_FRAME,
        modality="CT",
        kind=InstanceKind.CT_IMAGE,
        role=Role.IMAGING,
        calling_ae="LINAC1",
        association_id="assoc-1",
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


class StepClock:
    """A wall clock that advances by ``step_s`` on every reading, from ``T0``."""

    def __init__(self, step_s: float = 1.0) -> None:
        self.now = T0
        self.step = timedelta(seconds=step_s)

    def __call__(self) -> datetime:
        current = self.now
        self.now += self.step
        return current


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def correction(series_uid: str, **extra: object) -> dict[str, object]:
    return {
        "schema": "igrt/correction/v1",
        "seq": None,
        "status": "ok",
        "patient_id": "Zoë-01",
        "cbct": {"series_uid": series_uid},
        "correction": {"lateral_mm": 2.31, "longitudinal_mm": -1.72},
        **extra,
    }
