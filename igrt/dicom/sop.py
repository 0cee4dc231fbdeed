"""The SOP classes and transfer syntaxes igrt reads, by their ``pydicom.uid`` names."""

from __future__ import annotations

from collections.abc import Mapping

from pydicom.uid import (
    UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    RTIonPlanStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    SpatialRegistrationStorage,
)

from igrt.core.kinds import InstanceKind

KIND_OF_SOP_CLASS: Mapping[str, InstanceKind] = {
    CTImageStorage: InstanceKind.CT_IMAGE,
    EnhancedCTImageStorage: InstanceKind.ENHANCED_CT,
    RTPlanStorage: InstanceKind.RT_PLAN,
    RTIonPlanStorage: InstanceKind.RT_ION_PLAN,
    RTStructureSetStorage: InstanceKind.RT_STRUCT,
    SpatialRegistrationStorage: InstanceKind.SPATIAL_REGISTRATION,
}
SOP_CLASS_OF_KIND: Mapping[InstanceKind, UID] = {k: UID(s) for s, k in KIND_OF_SOP_CLASS.items()}

IMAGE_SOP_CLASSES = frozenset({CTImageStorage, EnhancedCTImageStorage})
PLAN_SOP_CLASSES = frozenset({RTPlanStorage, RTIonPlanStorage})
