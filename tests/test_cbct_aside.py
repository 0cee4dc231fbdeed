"""igrt.planning.cbct_aside: the CBCT directory read in a forked child gives the series and the
scan the parent would have read itself; a refusal, a dead child or a process with threads give
None (the parent reads the directory, so it meets the refusal itself); ``igrt register`` reads
its CBCT that way and prints the same correction.

Each case runs in a fresh interpreter: a child is forked only by a process without threads, and
the test process may hold some (another test's)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from phantom_cases import planning_set

from igrt.core.geometry import CouchCorrection
from phantoms.generator import PlanningCase, write_cbct

KNOWN = CouchCorrection(3.0, -2.0, 1.5, 1.0, 0.0, -1.0)

_PRELUDE = """
import json, os, sys, threading
from pathlib import Path
import numpy as np
from igrt.planning.cbct_aside import CbctAside
from igrt.planning.directory import DirectoryCbct

def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False

directory = Path(sys.argv[1])
"""


def _run(code: str, directory: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _PRELUDE + textwrap.dedent(code), str(directory)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[PlanningCase, Path]:
    root = tmp_path_factory.mktemp("aside")
    plan = planning_set(root)
    return plan, write_cbct(root / "cbct", plan, KNOWN).directory


def test_the_child_reads_the_series_and_the_scan_the_parent_would(
        cases: tuple[PlanningCase, Path]) -> None:
    out = _run("""
        aside = CbctAside(directory)
        pid = aside.pid
        grid = aside.grid()
        read = aside.result()
        here = DirectoryCbct(directory)
        series = here.load()
        a, b = read.series, series
        print(json.dumps({
            "grid_first": grid is not None and grid[0] == b.volume.spacing_mm
                          and bool(np.array_equal(grid[1], b.volume.direction)),
            "grid_kept": aside.grid() is grid,
            "forked": pid is not None and pid != os.getpid(), "reaped": gone(pid),
            "info": a.info == b.info,
            "voxels": bool(np.array_equal(a.volume.voxels, b.volume.voxels)),
            "dtype": str(a.volume.voxels.dtype), "expected_dtype": str(b.volume.voxels.dtype),
            "geometry": a.volume.origin_mm == b.volume.origin_mm
                        and a.volume.spacing_mm == b.volume.spacing_mm
                        and bool(np.array_equal(a.volume.direction, b.volume.direction)),
            "padding": (a.padding_mask is None and b.padding_mask is None) or bool(
                a.padding_mask is not None and b.padding_mask is not None
                and np.array_equal(a.padding_mask, b.padding_mask)),
            "padded": b.padding_mask is not None,
            "scan": read.found == here.found,
            "no_image_datasets": all(f.dataset is None for s in read.found.image_series
                                     for f in s.files),
        }))
        """, cases[1])
    assert out.pop("dtype") == out.pop("expected_dtype")
    out.pop("padded")  # either way the mask must come over as it was
    assert out == dict.fromkeys(out, True), out


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
    out = _run("""
        aside = CbctAside(directory)
        pid = aside.pid
        print(json.dumps({"forked": pid is not None, "no_grid": aside.grid() is None,
                          "left": aside.result() is None,
                          "reaped": pid is not None and gone(pid)}))
        """, directory)
    # a file cut short in its pixels still has its header: the grid comes, the series not
    assert out == {"forked": True, "no_grid": kind != "a truncated file", "left": True,
                   "reaped": True}


def test_a_child_that_dies_is_left_to_the_parent(cases: tuple[PlanningCase, Path]) -> None:
    out = _run("""
        aside = CbctAside(directory)
        os.kill(aside.pid, 9)  # at once: it has not read a file yet
        print(json.dumps({"left": aside.result() is None}))
        """, cases[1])
    assert out == {"left": True}


def test_no_child_is_forked_beside_other_threads(cases: tuple[PlanningCase, Path]) -> None:
    """A forked child holds only the forking thread: with others running, the parent reads."""
    out = _run("""
        stop = threading.Event()
        other = threading.Thread(target=stop.wait)
        other.start()
        aside = CbctAside(directory)
        print(json.dumps({"pid": aside.pid, "left": aside.result() is None}))
        stop.set()
        other.join()
        """, cases[1])
    assert out == {"pid": None, "left": True}


def test_a_cancelled_child_is_stopped(cases: tuple[PlanningCase, Path]) -> None:
    out = _run("""
        aside = CbctAside(directory)
        pid = aside.pid
        aside.cancel()
        print(json.dumps({"forked": pid is not None, "reaped": pid is not None and gone(pid),
                          "left": aside.result() is None}))
        """, cases[1])
    assert out == {"forked": True, "reaped": True, "left": True}


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
