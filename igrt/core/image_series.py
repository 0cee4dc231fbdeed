"""An assembled CT series: its identity and its volume (the DICOM adapter that builds one is
``igrt.dicom.series_loader``). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from igrt.core.types import BoolArray
from igrt.core.volume import Volume


@dataclass(frozen=True)
class SeriesInfo:
    """Identity of an assembled series; ``instance_uids`` in slice order (first frame)."""

    patient_id: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    modality: str
    sop_class_uid: str
    patient_position: str | None
    series_description: str
    n_instances: int
    instance_uids: tuple[str, ...]
    patient_name: str = ""  # DICOM PN as written (``FAMILY^GIVEN``); never logged
    #: ISO 8601 acquisition (else content) date and time, the earliest of the instances
    acquisition_datetime: str | None = None


@dataclass(frozen=True)
class ImageSeries:
    """A CT series as a volume in HU (float32).

    ``padding_mask`` (same shape as ``volume.voxels``) is True where the *stored* value equals
    Pixel Padding Value (0028,0120) or lies between it and Pixel Padding Range Limit (0028,0121),
    inclusive (PS3.3 C.7.5.1.1.2): pixels outside the reconstructed field of view, as CBCTs write
    them. None when no instance declares a padding value.
    """

    info: SeriesInfo
    volume: Volume
    padding_mask: BoolArray | None
