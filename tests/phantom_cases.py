"""Shared phantom fixtures for the registration, offline and service tests: planning sets are
written once per test session (small size) and reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from igrt.core.geometry import CouchCorrection, PatientPosition
from phantoms.generator import PlanningCase, write_planning_set

_CACHE: dict[tuple[str, str, str, str], PlanningCase] = {}


def planning_set(root: Path, *, position: PatientPosition = PatientPosition.HFS,
                 phantom: str = "body", patient_id: str = "PHANTOM-001") -> PlanningCase:
    key = (str(root), str(position), phantom, patient_id)
    if key not in _CACHE:
        _CACHE[key] = write_planning_set(root / f"planning-{phantom}-{position}-{patient_id}",
                                         phantom=phantom, patient_id=patient_id,
                                         patient_position=position, size="small")
    return _CACHE[key]


def errors(measured: dict[str, float] | None,
           known: CouchCorrection) -> tuple[float, float]:
    """(translation-vector error mm, largest rotation error deg) of a message's ``measured``."""
    assert measured is not None, "no measurement"
    got = CouchCorrection(**measured)
    return (float(np.linalg.norm(got.translation_mm - known.translation_mm)),
            float(np.abs(got.angles_deg - known.angles_deg).max()))
