"""igrt.planning.cbct_aside: the CBCT directory read in a forked child gives the series and the
scan the parent would have read itself; a refusal, a dead child or a process with threads give
None (the parent reads the directory, so it meets the refusal itself); ``igrt register`` reads
its CBCT that way and prints the same correction."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from phantom_cases import planning_set

from igrt.core.geometry import CouchCorrection
from igrt.planning.cbct_aside import CbctAside
from igrt.planning.directory import DirectoryCbct
from phantoms.generator import PlanningCase, write_cbct

KNOWN = CouchCorrection(3.0, -2.0, 1.5, 1.0, 0.0, -1.0)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[PlanningCase, Path]:
    root = tmp_path_factory.mktemp("aside")
    plan = planning_set(root)
    return plan, write_cbct(root / "cbct", plan, KNOWN).directory


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_child_reads_the_series_and_the_scan_the_parent_would(
        cases: tuple[PlanningCase, Path]) -> None:
    _, cbct = cases
    aside = CbctAside(cbct)
    pid = aside.pid
    assert pid is not None and pid != os.getpid()
    read = aside.result()
    assert read is not None
    assert _gone(pid)  # reaped
    here = DirectoryCbct(cbct)
    series = here.load()
    assert read.series.info == series.info
    np.testing.assert_array_equal(read.series.volume.voxels, series.volume.voxels)
    assert read.series.volume.voxels.dtype == series.volume.voxels.dtype
    assert read.series.volume.origin_mm == series.volume.origin_mm
    assert read.series.volume.spacing_mm == series.volume.spacing_mm
    np.testing.assert_array_equal(read.series.volume.direction, series.volume.direction)
    assert (read.series.padding_mask is None) == (series.padding_mask is None)
    if series.padding_mask is not None:
        assert read.series.padding_mask is not None
        np.testing.assert_array_equal(read.series.padding_mask, series.padding_mask)
    # the same scan, the image files' data sets left out (their pixels are in the series)
    assert read.found == here.found
    assert all(f.dataset is None for s in read.found.image_series for f in s.files)


@pytest.mark.parametrize("kind", ["two series", "not DICOM only", "a truncated file"])
def test_a_directory_the_child_refuses_is_left_to_the_parent(
        cases: tuple[PlanningCase, Path], tmp_path: Path, kind: str) -> None:
    plan, cbct = cases
    directory = tmp_path / "cbct"
    shutil.copytree(cbct, directory)
    if kind == "two series":
        for ct in sorted(plan.directory.glob("CT.*"))[:2]:
            shutil.copy(ct, directory / ct.name)
    elif kind == "not DICOM only":
        shutil.rmtree(directory)
        directory.mkdir()
        (directory / "notes.txt").write_text("not DICOM")
    else:
        first = sorted(directory.glob("*.dcm"))[0]
        first.write_bytes(first.read_bytes()[:2000])
    aside = CbctAside(directory)
    assert aside.pid is not None
    pid = aside.pid
    assert aside.result() is None
    assert _gone(pid)


def test_a_child_that_dies_is_left_to_the_parent(cases: tuple[PlanningCase, Path]) -> None:
    _, cbct = cases
    aside = CbctAside(cbct)
    assert aside.pid is not None
    os.kill(aside.pid, 9)
    assert aside.result() is None


def test_no_child_is_forked_beside_other_threads(cases: tuple[PlanningCase, Path]) -> None:
    """A forked child holds only the forking thread: with others running, the parent reads."""
    _, cbct = cases
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        aside = CbctAside(cbct)
        assert aside.pid is None
        assert aside.result() is None
    finally:
        stop.set()
        other.join()


def test_a_cancelled_child_is_stopped(cases: tuple[PlanningCase, Path]) -> None:
    _, cbct = cases
    aside = CbctAside(cbct)
    pid = aside.pid
    assert pid is not None
    aside.cancel()
    assert _gone(pid)
    assert aside.result() is None


def test_igrt_register_reads_its_cbct_aside_and_gives_the_known_correction(
        cases: tuple[PlanningCase, Path]) -> None:
    plan, cbct = cases
    done = subprocess.run([str(Path(sys.executable).with_name("igrt")), "-v", "register",
                           "--planning", str(plan.directory), "--cbct", str(cbct)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "read aside by process" in done.stderr
    message = json.loads(done.stdout)
    measured = CouchCorrection(**message["measured"])
    np.testing.assert_allclose(measured.translation_mm, KNOWN.translation_mm, atol=0.5)
    np.testing.assert_allclose(measured.angles_deg, KNOWN.angles_deg, atol=0.3)
