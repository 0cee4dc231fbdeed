"""Scan files or a directory and classify the DICOM instances in it (headers only).

:func:`scan` reads each file's header (``stop_before_pixels``; the whole data set, kept for the
caller, with ``keep_datasets``, so that each file is parsed once) and sorts it by SOP Class UID into
CT image series (grouped by Series Instance UID), RT Plans (photon and ion), RT Structure Sets and
Spatial Registrations. Nothing is dropped silently: a DICOM file that cannot be read or is of a
kind igrt does not use is kept in ``other`` with the reason, a file that is not DICOM Part 10 at
all (no ``DICM`` prefix, e.g. a ``phantom.json``) in ``skipped``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    RTStructureSetStorage,
    SpatialRegistrationStorage,
)

from igrt.dicom.sop import IMAGE_SOP_CLASSES, PLAN_SOP_CLASSES

logger = logging.getLogger(__name__)


_PREAMBLE_LENGTH = 128
_PREFIX = b"DICM"
#: Values this large are left in the file when a whole data set is kept (read when first used):
#: an image's native pixel data is then read from the file when its series is assembled
#: instead of copied through Python (:mod:`igrt.dicom.file_pixels`), which halves a planning
#: CT's read.
DEFER_BYTES = 256 * 1024


@dataclass(frozen=True)
class DicomFile:
    """One readable instance: where it is and the identifiers needed to match it.

    Identifiers missing from the header are empty strings (the loaders refuse them later with the
    attribute named).
    """

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    patient_id: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    modality: str
    #: the whole data set, when the scan kept it (``scan(..., keep_datasets=True)``)
    dataset: Dataset | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SeriesFiles:
    """The files of one image series (one Series Instance UID), sorted by path.

    Identity properties are those of the first file; whether all files agree is checked when the
    series is loaded (``MixedSeriesError``).
    """

    series_uid: str
    files: tuple[DicomFile, ...]

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(f.path for f in self.files)

    @property
    def patient_id(self) -> str:
        return self.files[0].patient_id

    @property
    def frame_of_reference_uid(self) -> str:
        return self.files[0].frame_of_reference_uid

    @property
    def modality(self) -> str:
        return self.files[0].modality


@dataclass(frozen=True)
class RejectedFile:
    """A file that is not used, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class ScanResult:
    """Everything found, by kind. ``other``: DICOM files unreadable or of an unused kind;
    ``skipped``: files that are not DICOM Part 10 files at all."""

    image_series: tuple[SeriesFiles, ...]
    rt_plans: tuple[DicomFile, ...]
    structure_sets: tuple[DicomFile, ...]
    registrations: tuple[DicomFile, ...]
    other: tuple[RejectedFile, ...]
    skipped: tuple[RejectedFile, ...]

    def series(self, series_uid: str) -> SeriesFiles | None:
        """The image series with this Series Instance UID, if found."""
        return next((s for s in self.image_series if s.series_uid == series_uid), None)


def scan(source: str | PathLike[str] | Iterable[str | PathLike[str]], *,
         keep_datasets: bool = False) -> ScanResult:
    """Classify the files of a directory (recursively), a single file, or a list of either.
    ``keep_datasets``: read each whole data set (pixels included) and keep it in the result."""
    series: dict[str, list[DicomFile]] = {}
    plans: list[DicomFile] = []
    structures: list[DicomFile] = []
    registrations: list[DicomFile] = []
    other: list[RejectedFile] = []
    skipped: list[RejectedFile] = []

    for path in _files(source, other):
        if not _has_dicom_prefix(path):
            skipped.append(RejectedFile(path, "not a DICOM Part 10 file (no 'DICM' prefix)"))
            continue
        try:
            ds = _read(path, keep_datasets)
            found = _describe(path, ds, keep=keep_datasets)
        except Exception as exc:  # noqa: BLE001 - any parse failure is "unreadable"
            other.append(RejectedFile(path, f"unreadable DICOM file: {type(exc).__name__}: {exc}"))
            continue
        sop_class = found.sop_class_uid
        if not sop_class:
            other.append(
                RejectedFile(path, "no SOPClassUID in the data set (truncated or incomplete file?)")
            )
        elif sop_class in IMAGE_SOP_CLASSES:
            if found.series_uid:
                series.setdefault(found.series_uid, []).append(found)
            else:
                other.append(RejectedFile(path, f"{UID(sop_class).name} without SeriesInstanceUID"))
        elif sop_class in PLAN_SOP_CLASSES:
            plans.append(found)
        elif sop_class == RTStructureSetStorage:
            structures.append(found)
        elif sop_class == SpatialRegistrationStorage:
            registrations.append(found)
        else:
            other.append(
                RejectedFile(path, f"{UID(sop_class).name} ({sop_class}) is not used by igrt")
            )

    result = ScanResult(
        image_series=tuple(
            SeriesFiles(uid, tuple(sorted(files, key=lambda f: str(f.path))))
            for uid, files in series.items()
        ),
        rt_plans=tuple(plans),
        structure_sets=tuple(structures),
        registrations=tuple(registrations),
        other=tuple(other),
        skipped=tuple(skipped),
    )
    logger.info(
        "scanned: %d image series, %d plans, %d structure sets, %d registrations, "
        "%d other, %d skipped",
        len(result.image_series),
        len(plans),
        len(structures),
        len(registrations),
        len(other),
        len(skipped),
    )
    for rejected in other:
        logger.warning("not used: %s: %s", rejected.path, rejected.reason)
    return result


def _files(
    source: str | PathLike[str] | Iterable[str | PathLike[str]], other: list[RejectedFile]
) -> list[Path]:
    """Regular files named by ``source``, directories expanded recursively, sorted per entry."""
    entries = [source] if isinstance(source, str | PathLike) else list(source)
    out: list[Path] = []
    for entry in entries:
        path = Path(entry)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            out.append(path)
        else:
            other.append(RejectedFile(path, "no such file or directory"))
    return out


def _read(path: Path, keep: bool) -> Dataset:
    """The header, or with ``keep`` the whole data set with its large values deferred (a
    deflated file is read whole: its values cannot be read later from the file's bytes)."""
    if not keep:
        return pydicom.dcmread(path, stop_before_pixels=True)
    ds = pydicom.dcmread(path, defer_size=DEFER_BYTES)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax == DeflatedExplicitVRLittleEndian:
        ds = pydicom.dcmread(path)
    return ds


def _has_dicom_prefix(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(_PREAMBLE_LENGTH + len(_PREFIX))
    except OSError:
        return True  # let dcmread report the I/O error as unreadable
    return head[_PREAMBLE_LENGTH:] == _PREFIX


def _describe(path: Path, ds: Dataset, *, keep: bool) -> DicomFile:
    def text(keyword: str) -> str:
        return str(ds.get(keyword) or "").strip()

    return DicomFile(
        path=path,
        sop_class_uid=text("SOPClassUID"),
        sop_instance_uid=text("SOPInstanceUID"),
        patient_id=text("PatientID"),
        study_uid=text("StudyInstanceUID"),
        series_uid=text("SeriesInstanceUID"),
        frame_of_reference_uid=text("FrameOfReferenceUID"),
        modality=text("Modality"),
        dataset=ds if keep else None,
    )
