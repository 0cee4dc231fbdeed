"""Where the machine isocentre is in a CBCT at the nominal setup (CONTRACT §2). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from igrt.core import geometry
from igrt.core.errors import PatientMismatchError
from igrt.core.image_series import ImageSeries
from igrt.core.plan import Plan, normalise_patient_id
from igrt.core.spatial_registration import SpatialRegistration, nominal_matrix
from igrt.core.types import FloatArray


class CbctIsocenter(StrEnum):
    """Where the machine isocentre is in a CBCT that carries no link to the plan (CONTRACT §2)."""

    ORIGIN = "origin"  # at DICOM (0, 0, 0) of the CBCT
    CENTER = "center"  # at the centre of the CBCT volume


class NominalSource(StrEnum):
    """Which rule of CONTRACT §2 placed the CBCT (``registration.nominal`` in the message)."""

    FRAME_OF_REFERENCE = "frame_of_reference"
    SPATIAL_REGISTRATION = "spatial_registration"
    ORIGIN = "origin"
    CENTER = "center"


@dataclass(frozen=True)
class Nominal:
    matrix: FloatArray  # CBCT point -> room point
    source: NominalSource
    sro_uid: str | None = None


def nominal_alignment(cbct: ImageSeries, plan: Plan, isocenter_mm: FloatArray,
                      sros: Sequence[SpatialRegistration],
                      convention: CbctIsocenter) -> Nominal:
    """Where the machine isocentre is in the CBCT, in CONTRACT §2 order."""
    planned = geometry.planned_placement(isocenter_mm)
    cbct_frame = cbct.info.frame_of_reference_uid
    if cbct_frame == plan.frame:
        return Nominal(planned, NominalSource.FRAME_OF_REFERENCE)
    for sro in sros:
        if {cbct_frame, plan.frame} <= set(sro.frames):
            if sro.patient_id is not None and (normalise_patient_id(sro.patient_id)
                                               != normalise_patient_id(plan.patient_id)):
                raise PatientMismatchError(
                    f"Spatial Registration {sro.sop_instance_uid} is for Patient ID "
                    f"{normalise_patient_id(sro.patient_id)!r}, not the plan's "
                    f"{normalise_patient_id(plan.patient_id)!r}")
            m = nominal_matrix(sro, cbct_frame_uid=cbct_frame,
                               planning_frame_uid=plan.frame)
            return Nominal(planned @ m, NominalSource.SPATIAL_REGISTRATION, sro.sop_instance_uid)
    if convention is CbctIsocenter.CENTER:
        return Nominal(geometry.translation(-cbct.volume.center_mm()), NominalSource.CENTER)
    return Nominal(np.eye(4), NominalSource.ORIGIN)
