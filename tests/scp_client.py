"""Data sets and SCU helpers of the Storage SCP tests (its fixtures are in conftest.py): real
SCUs (pynetdicom and DCMTK) on free ports; every wait has a timeout."""

from __future__ import annotations

import contextlib
import queue
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import dicom_factory as factory
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    ImplicitVRLittleEndian,
)
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    RTPlanStorage,
    RTStructureSetStorage,
    SpatialRegistrationStorage,
    Verification,
)

from igrt.config import Config, parse_config
from igrt.dicom.values import dataset
from services.scp import SeriesEvent

WAIT_S = 10.0  # upper bound of every wait; the tests normally finish their waits in milliseconds
IGRT = "IGRT"
HOST = "127.0.0.1"


# --- configuration -------------------------------------------------------------------------------
def make_config(state_dir: Path) -> Config:
    """Defaults (AE IGRT; peers LINAC = imaging, TPS = planning) on a free loopback port."""
    return parse_config({"dicom": {"port": 0}, "storage": {"dir": str(state_dir)}})


# --- data sets -----------------------------------------------------------------------------------
def ct(name: str, *, size: int = 8, patient_id: str = "PAT-001") -> Dataset:
    """One single-frame CT slice (``size`` x ``size``) with everything igrt needs."""
    return factory.ct_series(n_slices=1, rows=size, columns=size, name=name, patient_id=patient_id)[
        0
    ]


def rt_plan(name: str) -> Dataset:
    ds = factory.instance(RTPlanStorage, name=name)
    ds.RTPlanLabel = "PELVIS"
    return ds


def structure_set(name: str) -> Dataset:
    ds = factory.instance(RTStructureSetStorage, name=name, modality="RTSTRUCT")
    frame = ds.FrameOfReferenceUID
    del ds.FrameOfReferenceUID
    ds.StructureSetLabel = "CTV"
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([dataset(
        FrameOfReferenceUID=frame, RTReferencedStudySequence=DicomSequence([dataset(
            RTReferencedSeriesSequence=DicomSequence([dataset(
                SeriesInstanceUID=factory.uid(name, "planning ct"))]))]))])
    return ds


def registration(name: str) -> Dataset:
    ds = factory.instance(SpatialRegistrationStorage, name=name, modality="REG")
    item = Dataset()
    item.FrameOfReferenceUID = factory.uid(name, "cbct frame")
    ds.RegistrationSequence = DicomSequence([item])
    return ds


# --- SCU helpers ---------------------------------------------------------------------------------
@contextlib.contextmanager
def associated(
    port: int,
    *,
    calling: str = "TPS",
    called: str = IGRT,
    contexts: Sequence[tuple[str, Sequence[str]]] = ((Verification, [ImplicitVRLittleEndian]),),
) -> Iterator[Association]:
    """A pynetdicom association (released on exit unless the test ended it)."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = WAIT_S
    for sop_class, syntaxes in contexts:
        ae.add_requested_context(sop_class, list(syntaxes))
    assoc = ae.associate(HOST, port, ae_title=called)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def contexts_for(datasets: Sequence[Dataset]) -> list[tuple[str, list[str]]]:
    return [(ds.SOPClassUID, [ds.file_meta.TransferSyntaxUID]) for ds in datasets]


def store_all(
    port: int, datasets: Sequence[Dataset], *, calling: str = "TPS"
) -> list[tuple[int, str | None]]:
    """C-STORE each data set in one association (then released): [(status, error comment)]."""
    with associated(port, calling=calling, contexts=contexts_for(datasets)) as assoc:
        assert assoc.is_established
        return [reply(assoc.send_c_store(ds)) for ds in datasets]


def reply(status: Dataset) -> tuple[int, str | None]:
    return int(status.Status), status.get("ErrorComment")


def echo(port: int, *, calling: str = "LINAC") -> int:
    with associated(port, calling=calling) as assoc:
        assert assoc.is_established
        return int(assoc.send_c_echo().Status)


def dcmtk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, check=False
    )


def storescu(
    port: int, *paths: Path, calling: str = "TPS", extra: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    return dcmtk("storescu", *extra, "-aet", calling, "-aec", IGRT, HOST, str(port), *paths)


def next_events(events: queue.Queue[SeriesEvent], n: int) -> list[SeriesEvent]:
    return [events.get(timeout=WAIT_S) for _ in range(n)]


def summary(received: Sequence[SeriesEvent]) -> list[tuple[str, str]]:
    return [(e.event.value, e.series_uid) for e in received]


def instance_files(state_dir: Path) -> list[Path]:
    return sorted(p for p in (state_dir / "instances").rglob("*") if p.is_file())


