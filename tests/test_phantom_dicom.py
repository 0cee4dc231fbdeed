"""phantoms.dicom_writer: every kind of object the phantom generator writes passes dciodvfy
without errors and carries igrt's implementation identity."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from dicom3tools import dciodvfy_errors

from igrt.core.geometry import CouchCorrection
from igrt.dicom.identity import IMPLEMENTATION_CLASS_UID
from phantoms.generator import write_cbct, write_planning_set


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("phantom-dicom")
    plan = write_planning_set(root / "plan", size="small")
    cbct = write_cbct(root / "cbct", plan, CouchCorrection(1.0, 0, 0, 0, 0, 0), frame="sro",
                      degrade=False)
    first = {"planning CT": next(iter(sorted(plan.directory.glob("CT.*")))),
             "RT Plan": next(plan.directory.glob("RP.*")),
             "RT Structure Set": next(plan.directory.glob("RS.*")),
             "CBCT": next(iter(sorted(cbct.directory.glob("CT.*")))),
             "Spatial Registration": next(cbct.directory.glob("REG.*"))}
    return first


@pytest.mark.parametrize("kind", ["planning CT", "RT Plan", "RT Structure Set", "CBCT",
                                  "Spatial Registration"])
def test_phantom_object_passes_dciodvfy(written: dict[str, Path], kind: str) -> None:
    assert dciodvfy_errors(written[kind]) == []


@pytest.mark.parametrize("kind", ["planning CT", "RT Plan", "Spatial Registration"])
def test_phantom_object_names_igrt_as_its_writer(written: dict[str, Path], kind: str) -> None:
    meta = pydicom.dcmread(written[kind], stop_before_pixels=True).file_meta
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
