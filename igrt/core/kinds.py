"""What kinds of DICOM object igrt keeps, and the roles of the peers that send them (CONTRACT §3).
Pure vocabulary; the SOP class UIDs behind each kind are in ``igrt.dicom.sop``."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class InstanceKind(StrEnum):
    CT_IMAGE = "ct_image"
    ENHANCED_CT = "enhanced_ct"
    RT_PLAN = "rt_plan"
    RT_ION_PLAN = "rt_ion_plan"
    RT_STRUCT = "rt_struct"
    SPATIAL_REGISTRATION = "spatial_registration"


IMAGE_KINDS = (InstanceKind.CT_IMAGE, InstanceKind.ENHANCED_CT)
PLAN_KINDS = (InstanceKind.RT_PLAN, InstanceKind.RT_ION_PLAN)

KIND_NAMES: Mapping[InstanceKind, str] = {
    InstanceKind.CT_IMAGE: "CT Image",
    InstanceKind.ENHANCED_CT: "Enhanced CT Image",
    InstanceKind.RT_PLAN: "RT Plan",
    InstanceKind.RT_ION_PLAN: "RT Ion Plan",
    InstanceKind.RT_STRUCT: "RT Structure Set",
    InstanceKind.SPATIAL_REGISTRATION: "Spatial Registration",
}


class Role(StrEnum):
    """What a calling AE may send (CONTRACT §3)."""

    IMAGING = "imaging"  # the linac console: CBCTs (and their Spatial Registrations)
    PLANNING = "planning"  # the planning system: planning CT, RT Plan, RT Structure Set


#: What each role may send. A Spatial Registration from a planning peer is refused: the nominal
#: alignment is the one received with the CBCT (CONTRACT §2), never a planning system's.
ROLE_KINDS: Mapping[Role, frozenset[InstanceKind]] = {
    Role.IMAGING: frozenset(
        {InstanceKind.CT_IMAGE, InstanceKind.ENHANCED_CT, InstanceKind.SPATIAL_REGISTRATION}
    ),
    Role.PLANNING: frozenset(
        {
            InstanceKind.CT_IMAGE,
            InstanceKind.ENHANCED_CT,
            InstanceKind.RT_PLAN,
            InstanceKind.RT_ION_PLAN,
            InstanceKind.RT_STRUCT,
        }
    ),
}
