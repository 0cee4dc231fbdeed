"""The planning reference of one CBCT: which plan, which isocentre, which planning CT, and where
the CBCT sits at the nominal setup (CONTRACT §2–3). Works on already-read objects so that the
offline command and the service share it; reading files is the caller's business."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from igrt import geometry
from igrt.config import CbctIsocenter, RegistrationConfig
from igrt.dicom_series import ImageSeries
from igrt.errors import (
    MatchError,
    NoPlanError,
    PatientMismatchError,
    StructureError,
)
from igrt.messages import PlanRef
from igrt.plan import Plan, check_same_patient, choose_plan, normalise_patient_id, select_isocenter
from igrt.registration.runner import Case
from igrt.spatial_registration import SpatialRegistration, nominal_matrix
from igrt.structures import StructureSet, roi_mask
from igrt.volume import FloatArray

log = logging.getLogger(__name__)


class NominalSource:
    FRAME_OF_REFERENCE = "frame_of_reference"
    SPATIAL_REGISTRATION = "spatial_registration"
    ORIGIN = "origin"
    CENTER = "center"


@dataclass(frozen=True)
class Nominal:
    matrix: FloatArray  # CBCT point -> room point
    source: str  # one of NominalSource
    sro_uid: str | None = None


def pick_plan(plans: Sequence[Plan], *, patient_id: str, selected_uid: str | None) -> Plan:
    """CONTRACT §3 plan choice, with a wrong-patient refusal when plans exist only for others."""
    pid = normalise_patient_id(patient_id)
    if plans and not any(normalise_patient_id(p.patient_id) == pid for p in plans):
        others = sorted({normalise_patient_id(p.patient_id) for p in plans})
        if len(others) == 1:
            check_same_patient(pid, plans[0])  # raises PatientMismatchError naming both IDs
        raise PatientMismatchError(
            f"no plan is for the CBCT's Patient ID {pid!r}; the plans available are for "
            f"{len(others)} other patients")
    if not plans:
        raise NoPlanError(f"no RT Plan is available for Patient ID {pid!r}")
    return choose_plan(plans, patient_id=pid, selected_uid=selected_uid)


def nominal_alignment(cbct: ImageSeries, plan: Plan, isocenter_mm: FloatArray,
                      sros: Sequence[SpatialRegistration],
                      convention: CbctIsocenter) -> Nominal:
    """Where the machine isocentre is in the CBCT, in CONTRACT §2 order."""
    planned = geometry.planned_placement(isocenter_mm)
    cbct_frame = cbct.info.frame_of_reference_uid
    if cbct_frame == plan.frame_of_reference_uid:
        return Nominal(planned, NominalSource.FRAME_OF_REFERENCE)
    for sro in sros:
        if {cbct_frame, plan.frame_of_reference_uid} <= set(sro.frames):
            if sro.patient_id is not None and (normalise_patient_id(sro.patient_id)
                                               != normalise_patient_id(plan.patient_id)):
                raise PatientMismatchError(
                    f"Spatial Registration {sro.sop_instance_uid} is for Patient ID "
                    f"{normalise_patient_id(sro.patient_id)!r}, not the plan's "
                    f"{normalise_patient_id(plan.patient_id)!r}")
            m = nominal_matrix(sro, cbct_frame_uid=cbct_frame,
                               planning_frame_uid=plan.frame_of_reference_uid)
            return Nominal(planned @ m, NominalSource.SPATIAL_REGISTRATION, sro.sop_instance_uid)
    if convention is CbctIsocenter.CENTER:
        return Nominal(geometry.translation(-cbct.volume.center_mm()), NominalSource.CENTER)
    return Nominal(np.eye(4), NominalSource.ORIGIN)


def check_planning_ct(ct: ImageSeries, plan: Plan) -> None:
    """The planning CT must be the plan's patient and frame."""
    if normalise_patient_id(ct.info.patient_id) != normalise_patient_id(plan.patient_id):
        raise MatchError(
            f"planning CT series {ct.info.series_uid} has Patient ID "
            f"{normalise_patient_id(ct.info.patient_id)!r}, plan {plan.sop_instance_uid} has "
            f"{normalise_patient_id(plan.patient_id)!r}")
    if ct.info.frame_of_reference_uid != plan.frame_of_reference_uid:
        raise MatchError(
            f"planning CT series {ct.info.series_uid} is in Frame of Reference "
            f"{ct.info.frame_of_reference_uid}, not the plan's {plan.frame_of_reference_uid}")


def region_mask(ct: ImageSeries, plan: Plan, structure_sets: Sequence[StructureSet],
                name: str) -> np.ndarray:
    """The configured registration structure on the planning CT grid."""
    candidates = [s for s in structure_sets
                  if s.frame_of_reference_uid == plan.frame_of_reference_uid]
    preferred = [s for s in candidates
                 if s.sop_instance_uid == plan.referenced_structure_set_uid]
    chosen = (preferred or candidates)
    if not chosen:
        raise StructureError(
            f"the registration structure {name!r} is configured but no RT Structure Set is in "
            f"the plan's Frame of Reference {plan.frame_of_reference_uid}")
    if len(chosen) > 1:
        raise StructureError(
            f"{len(chosen)} RT Structure Sets are in the plan's Frame of Reference and the plan "
            f"references none of them: " + ", ".join(s.sop_instance_uid for s in chosen))
    return roi_mask(chosen[0], name, ct.volume,
                    frame_of_reference_uid=plan.frame_of_reference_uid)


def build_case(*, cbct: ImageSeries, plan: Plan, ct: ImageSeries,
               sros: Sequence[SpatialRegistration] = (),
               structure_sets: Sequence[StructureSet] = (),
               isocenter_index: int | None = None,
               cfg: RegistrationConfig) -> tuple[Case, PlanRef, Nominal]:
    """Check that the pieces belong together and assemble the registration case."""
    check_same_patient(cbct.info.patient_id, plan)
    check_planning_ct(ct, plan)
    iso = np.asarray(select_isocenter(plan, index=isocenter_index), dtype=np.float64)
    nominal = nominal_alignment(cbct, plan, iso, sros, cfg.cbct_isocenter)
    mask = None
    if cfg.roi_structure:
        mask = region_mask(ct, plan, structure_sets, cfg.roi_structure)
    case = Case(ct=ct.volume, cbct=cbct.volume, cbct_padding=cbct.padding_mask,
                nominal=nominal.matrix, isocenter_mm=iso, position=plan.patient_position,
                region_mask=mask)
    ref = PlanRef(sop_instance_uid=plan.sop_instance_uid,
                  isocenter_mm=(float(iso[0]), float(iso[1]), float(iso[2])),
                  patient_position=plan.patient_position, label=plan.label)
    return case, ref, nominal
