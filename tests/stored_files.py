"""Put DICOM files into a real store the way the Storage SCP does (the bytes as they are, the
header read and checked by ``igrt.dicom.header``), for tests of what reads the store."""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path

import pydicom

from igrt.core.kinds import Role
from igrt.dicom.header import read_header
from igrt.dicom.sop import KIND_OF_SOP_CLASS
from igrt.store import InstanceMeta, Store


def store_file(store: Store, path: Path, *, role: Role, association_id: str,
               calling_ae: str | None = None) -> InstanceMeta:
    data = path.read_bytes()
    ds = pydicom.dcmread(BytesIO(data))
    sop_class, sop_uid = str(ds.SOPClassUID), str(ds.SOPInstanceUID)
    kind = KIND_OF_SOP_CLASS[sop_class]
    header = read_header(ds, kind=kind, sop_class_uid=sop_class, sop_instance_uid=sop_uid)
    meta = InstanceMeta(sop_class_uid=sop_class, sop_instance_uid=sop_uid, kind=kind, role=role,
                        calling_ae=calling_ae or ("LINAC" if role is Role.IMAGING else "TPS"),
                        association_id=association_id, **vars(header))
    store.store_instance(data=data, meta=meta)
    return meta


def store_directory(store: Store, directory: Path, *, role: Role,
                    association_id: str) -> list[InstanceMeta]:
    return [store_file(store, path, role=role, association_id=association_id)
            for path in sorted(directory.glob("*.dcm"))]


def replace_file(path: Path, data: bytes | None = None) -> None:
    """Replace a file the store holds, behind its back, by ``data`` (default: its own bytes), as
    a new file (another inode): what a reader that decoded it before must notice. The store
    itself never does this to a held SOP instance (other content under its UID is refused)."""
    new = path.with_name(path.name + ".new")
    new.write_bytes(path.read_bytes() if data is None else data)
    os.replace(new, path)
