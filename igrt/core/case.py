"""One registration case: the CBCT and the planning reference checked to belong together and
assembled into what an engine needs (CONTRACT §2–3). Pure; reading files is the caller's
business (``igrt.planning``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from igrt.core.geometry import PatientPosition
from igrt.core.image_series import ImageSeries, SeriesInfo
from igrt.core.matching import (
    check_planning_ct,
    check_same_patient,
    choose_structure_set,
    select_isocenter,
)
from igrt.core.messages import PlanRef
from igrt.core.nominal import CbctIsocenter, Nominal, nominal_alignment
from igrt.core.plan import Plan
from igrt.core.spatial_registration import SpatialRegistration
from igrt.core.structures import StructureSet, roi_mask
from igrt.core.types import BoolArray, FloatArray
from igrt.core.volume import Volume


@dataclass(frozen=True)
class Case:
    """One CBCT set up against one plan, already read from DICOM: what the registration needs
    besides the prepared planning images (``igrt.registration.reference``)."""

    cbct: Volume
    cbct_padding: BoolArray | None  # declared padding (PixelPaddingValue); None = detect
    nominal: FloatArray  # CBCT point -> room point at the nominal setup (CONTRACT §2)
    isocenter_mm: FloatArray  # plan isocentre, planning coordinates
    position: PatientPosition


@dataclass(frozen=True, eq=False)
class Registered:
    """A case and what the registration made of it, kept for the review images: ``ct`` is the
    planning CT around the isocentre as the registration used it (the prepared crop, binned to
    the CBCT's voxels when it was finer), ``initial`` the nominal start and ``transform`` the
    result (both CBCT point -> planning point)."""

    case: Case
    ct: Volume
    initial: FloatArray
    transform: FloatArray
    box_size_mm: tuple[float, float, float]


def build_case(*, cbct: ImageSeries, plan: Plan, ct: SeriesInfo | ImageSeries,
               sros: Sequence[SpatialRegistration] = (),
               isocenter_index: int | None = None,
               convention: CbctIsocenter = CbctIsocenter.ORIGIN) -> tuple[Case, PlanRef, Nominal]:
    """Check that the pieces belong together (the CBCT and the planning CT ``ct`` are the
    plan's patient, the CT is in the plan's frame) and assemble the registration case."""
    check_same_patient(cbct.info.patient_id, plan)
    check_planning_ct(ct, plan)
    iso = np.asarray(select_isocenter(plan, index=isocenter_index), dtype=np.float64)
    nominal = nominal_alignment(cbct, plan, iso, sros, convention)
    case = Case(cbct=cbct.volume, cbct_padding=cbct.padding_mask, nominal=nominal.matrix,
                isocenter_mm=iso, position=plan.patient_position)
    ref = PlanRef(sop_instance_uid=plan.sop_instance_uid,
                  isocenter_mm=(float(iso[0]), float(iso[1]), float(iso[2])),
                  patient_position=plan.patient_position, label=plan.label)
    return case, ref, nominal


def region_mask(plan: Plan, structure_sets: Sequence[StructureSet], ct: Volume,
                roi_structure: str) -> BoolArray:
    """The configured registration structure on the planning CT grid (``roi_structure``)."""
    chosen = choose_structure_set(plan, structure_sets, roi_structure)
    return roi_mask(chosen, roi_structure, ct, frame_of_reference_uid=plan.frame)
