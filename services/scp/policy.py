"""What the Storage SCP accepts: SOP classes, transfer syntaxes, the role policy (the limits are
``[dicom.limits]``, applied by ``services.scp.admission``)."""

from __future__ import annotations

from collections.abc import Mapping

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from igrt.core.errors import RoleNotAllowedError
from igrt.core.kinds import KIND_NAMES, ROLE_KINDS, InstanceKind, Role
from igrt.dicom.sop import KIND_OF_SOP_CLASS

#: The storage SOP classes (CONTRACT §3) and the kind of object each one is.
STORAGE_SOP_CLASSES: Mapping[str, InstanceKind] = KIND_OF_SOP_CLASS

#: Accepted for every storage SOP class. When a peer proposes several in one presentation context,
#: the first of this list among them is chosen: uncompressed first, so nothing needs decoding later.
TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
    JPEGLosslessSV1,  # JPEG lossless, process 14, selection value 1
    JPEGLossless,  # JPEG lossless, process 14
    JPEG2000Lossless,
    JPEGLSLossless,
)
VERIFICATION_TRANSFER_SYNTAXES: tuple[str, ...] = (ImplicitVRLittleEndian, ExplicitVRLittleEndian)


def check_role(kind: InstanceKind, role: Role | None, calling_ae: str) -> Role:
    """The peer's role, if it may send this kind of object; else :class:`RoleNotAllowedError`."""
    name = KIND_NAMES[kind]
    if role is None:
        raise RoleNotAllowedError(
            f"{name} from {calling_ae!r} refused: that AE title is not a configured "
            "peer ([[dicom.peers]])",
            comment=f"calling AE {calling_ae} is not a configured peer",
        )
    if kind not in ROLE_KINDS[role]:
        allowed = ", ".join(sorted(KIND_NAMES[k] for k in ROLE_KINDS[role]))
        raise RoleNotAllowedError(
            f"{name} from {calling_ae} refused: its role in [[dicom.peers]] is "
            f"{role.value!r}, which may send only {allowed}",
            comment=f"{name} not accepted from {role.value} peer {calling_ae}",
        )
    return role
