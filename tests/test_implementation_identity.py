"""igrt's own implementation identity (igrt.dicom.identity): in the association the Storage SCP
accepts (seen by DCMTK's echoscu), in the file igrt stores, and in the association the SCU
requests (seen by storescp, in test_record_sender)."""

from __future__ import annotations

import re

import pydicom
from scp_client import HOST, IGRT, ct, dcmtk, store_all

from igrt.dicom.identity import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    implementation_version_name,
)
from igrt.store import Store
from services.scp import StorageScp


def test_the_scp_introduces_itself_as_igrt(scp: StorageScp) -> None:
    done = dcmtk("echoscu", "--debug", "-aet", "LINAC", "-aec", IGRT, HOST, str(scp.port))
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    assert re.search(rf"Their Implementation Class UID:\s+{re.escape(IMPLEMENTATION_CLASS_UID)}",
                     text), text
    assert re.search(rf"Their Implementation Version Name:\s+{IMPLEMENTATION_VERSION_NAME}", text)


def test_stored_files_name_igrt_as_their_writer(scp: StorageScp, store: Store) -> None:
    sent = ct("identity")
    assert store_all(scp.port, [sent], calling="LINAC") == [(0x0000, None)]
    [path] = store.series_instances(sent.SeriesInstanceUID)
    meta = pydicom.dcmread(path).file_meta
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME


def test_version_name_fits_sh() -> None:
    assert implementation_version_name("0.1.0") == "IGRT_0.1.0"
    long = implementation_version_name("10.20.300.dev4+g1234abcd")
    assert len(long) == 16 and long.startswith("IGRT_10.20.300")
    assert implementation_version_name("1 2\\3") == "IGRT_1_2_3"
