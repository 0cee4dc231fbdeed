"""``igrt register``: one planning directory and one CBCT directory in, one ``correction``
message out (CONTRACT §4–5). Offline messages are not part of the service's feed: their ``seq``
is 0."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydicom

from igrt import pipeline
from igrt.config import Config
from igrt.dicom_files import DicomFile, ScanResult, SeriesFiles, scan
from igrt.dicom_series import ImageSeries, load_series_files
from igrt.errors import MixedSeriesError, SeriesError, UnreadableError
from igrt.messages import correction_message
from igrt.plan import Plan, choose_planning_ct, read_plan
from igrt.spatial_registration import SpatialRegistration, read_spatial_registration
from igrt.structures import StructureSet, read_structure_set

log = logging.getLogger(__name__)


def register_offline(planning_dir: Path, cbct_dir: Path, config: Config, *,
                     plan_uid: str | None = None,
                     isocenter_index: int | None = None) -> dict[str, Any]:
    """The correction message for one CBCT; refusals become a ``failed`` message."""
    found: dict[str, ScanResult] = {}
    first: dict[str, SeriesFiles] = {}

    def load_cbct() -> ImageSeries:
        found["cbct"] = scan(cbct_dir)
        first["cbct"] = _the_cbct(found["cbct"], cbct_dir)
        return load_series_files(first["cbct"].paths)

    def load_plans(_patient_id: str) -> list[Plan]:
        found["planning"] = scan(planning_dir)
        return [read_plan(_read(f)) for f in found["planning"].rt_plans]

    def load_structure_sets(_plan: Plan) -> list[StructureSet]:
        return [read_structure_set(_read(f)) for f in found["planning"].structure_sets]

    def load_planning_ct(plan: Plan, structure_sets: Sequence[StructureSet]) -> ImageSeries:
        return _planning_ct(found["planning"], plan, structure_sets,
                            exclude=first["cbct"].series_uid)

    def load_sros(_cbct: ImageSeries) -> list[SpatialRegistration]:
        return _sros(found["cbct"].registrations) + _sros(found["planning"].registrations)

    outcome = pipeline.run(series_uid=None, patient_id=None, load_cbct=load_cbct,
                           load_plans=load_plans, load_structure_sets=load_structure_sets,
                           load_planning_ct=load_planning_ct, load_sros=load_sros,
                           config=config, selected_plan_uid=lambda _pid: plan_uid,
                           isocenter_index=isocenter_index)
    return correction_message(outcome, room=config.room, dof=config.couch.dof, seq=0)


def run_register(planning_dir: Path, cbct_dir: Path, config: Config, *,
                 plan_uid: str | None = None, isocenter_index: int | None = None) -> int:
    """Print the message on stdout; exit 0 with a correction (ok or review), 1 when failed."""
    message = register_offline(planning_dir, cbct_dir, config, plan_uid=plan_uid,
                               isocenter_index=isocenter_index)
    sys.stdout.write(json.dumps(message, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 1 if message["status"] == "failed" else 0


def _the_cbct(found: ScanResult, directory: Path) -> SeriesFiles:
    if found.other:
        first = found.other[0]
        raise UnreadableError(f"{len(found.other)} file(s) in {directory} cannot be used, e.g. "
                              f"{first.path.name}: {first.reason}")
    if not found.image_series:
        raise SeriesError(f"no CT image series in {directory}")
    if len(found.image_series) > 1:
        raise MixedSeriesError(
            f"{directory} holds {len(found.image_series)} image series; give one CBCT: "
            + ", ".join(s.series_uid for s in found.image_series))
    return found.image_series[0]


def _planning_ct(found: ScanResult, plan: Plan, structure_sets: Sequence[StructureSet], *,
                 exclude: str | None) -> ImageSeries:
    frames = {s.series_uid: s.frame_of_reference_uid for s in found.image_series
              if s.series_uid != exclude}
    preferred = next((s.referenced_series_uid for s in structure_sets
                      if s.sop_instance_uid == plan.referenced_structure_set_uid), None)
    uid = choose_planning_ct(frames, plan, preferred_series_uid=preferred)
    files = found.series(uid)
    assert files is not None
    return load_series_files(files.paths)


def _sros(files: Sequence[DicomFile]) -> list[SpatialRegistration]:
    return [read_spatial_registration(_read(f)) for f in files]


def _read(f: DicomFile) -> pydicom.Dataset:
    return pydicom.dcmread(f.path)


