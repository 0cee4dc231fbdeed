"""igrt's own DICOM implementation identity: the Implementation Class UID and Version Name in the
file meta of every object igrt writes and in every association it makes or accepts (PS3.7 D.3.3.2).

igrt has no registered UID root, so its UIDs are UUID-derived (``2.25.<integer>``, PS3.5 B.2):
the Implementation Class UID is fixed (a UUID v5 of ``igrt:implementation``), and every object
igrt creates gets a new random one.
"""

from __future__ import annotations

import re
from importlib import metadata

from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

#: Fixed for igrt: uuid5(NAMESPACE_URL, "igrt:implementation") as a 2.25 UID.
IMPLEMENTATION_CLASS_UID = UID("2.25.337239306499903426576725869711470317857")
MANUFACTURER = "igrt"
VERSION_NAME_MAX = 16  # VR SH


def software_version() -> str:
    """The installed igrt version (``unknown`` when igrt is not installed as a package)."""
    try:
        return metadata.version("igrt")
    except metadata.PackageNotFoundError:
        return "unknown"


def implementation_version_name(version: str | None = None) -> str:
    """``IGRT_<version>``, cut to the 16 characters of VR SH, only characters SH allows."""
    text = "IGRT_" + re.sub(r"[^0-9A-Za-z._-]", "_", version or software_version())
    return text[:VERSION_NAME_MAX]


IMPLEMENTATION_VERSION_NAME = implementation_version_name()


def new_uid() -> UID:
    """A new UID for an object igrt creates (``2.25.<random UUID>``)."""
    return generate_uid(prefix=None)


def file_meta(sop_class_uid: str, sop_instance_uid: str) -> FileMetaDataset:
    """The file meta of an object igrt writes: Explicit VR Little Endian, igrt's identity."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta
