"""pynetdicom Application Entities with igrt's own implementation identity (Implementation Class
UID and Version Name in every association igrt requests or accepts, not pynetdicom's)."""

from __future__ import annotations

from pynetdicom import AE

from igrt.dicom.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME


def make_ae(ae_title: str, *, timeout_s: float | None = None) -> AE:
    """An AE named ``ae_title`` that introduces itself as igrt; ``timeout_s`` sets the ACSE,
    DIMSE and network timeouts when given."""
    ae = AE(ae_title=ae_title)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    if timeout_s is not None:
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    return ae
