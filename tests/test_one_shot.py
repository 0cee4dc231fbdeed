"""services.one_shot (``igrt register``'s process settings) and the services package's OpenBLAS
default: the cycle collector put back as it was, SimpleITK's library loaded on a thread before
its import (and the import then working), NumPy's BLAS on one thread unless told otherwise.
The library and thread checks run in fresh interpreters: this one has SimpleITK and NumPy
loaded already."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from igrt.core.geometry import CouchCorrection
from phantoms.generator import write_cbct, write_planning_set
from services import cli
from services.one_shot import no_cycle_collection

#: variables that set OpenBLAS's threads (the checks below want its own default)
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


def python(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in BLAS_THREADS}
    environment.update(env)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=False, env=environment, cwd="/")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_cycle_collection_off_inside_and_back_after() -> None:
    assert gc.isenabled()
    with no_cycle_collection():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_cycle_collection_back_after_an_error() -> None:
    with pytest.raises(ZeroDivisionError), no_cycle_collection():
        _ = 1 / 0
    assert gc.isenabled()


def test_cycle_collection_left_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with no_cycle_collection():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_simpleitk_library_loaded_before_its_import() -> None:
    out = python("""
        import sys
        from services.one_shot import load_simpleitk_beside

        def mapped():
            with open("/proc/self/maps") as maps:
                return any("_SimpleITK" in line for line in maps)

        before = mapped()
        thread = load_simpleitk_beside()
        thread.join()
        loaded = mapped() and "SimpleITK" not in sys.modules
        import SimpleITK as sitk
        image = sitk.Image(4, 4, 4, sitk.sitkFloat32)
        print(before, loaded, sitk.SmoothingRecursiveGaussian(image, 1.0).GetSize(),
              load_simpleitk_beside())
    """)
    assert out == "False True (4, 4, 4) None"


def test_numpy_blas_on_one_thread_under_services() -> None:
    count = "import os; print(len(os.listdir('/proc/self/task')))"
    if len(os.sched_getaffinity(0)) > 1:  # the check itself: NumPy alone starts OpenBLAS's
        assert int(python("import numpy; " + count)) > 1
    assert python("import services.cli; " + count) == "1"
    assert python("import services; import os; print(os.environ['OPENBLAS_NUM_THREADS'])",
                  OPENBLAS_NUM_THREADS="2") == "2"


@pytest.mark.parametrize("usage_error", [False, True])
def test_register_forks_its_child_with_no_other_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, usage_error: bool) -> None:
    """``igrt register`` in this process, its library loader made slow: the CBCT child is
    forked only once the loader's thread has ended, and a usage error leaves no thread behind
    either; the cycle collector is back on after."""
    from igrt.planning import cbct_aside

    planning = write_planning_set(tmp_path / "plan", size="small")
    cbct = write_cbct(tmp_path / "cbct", planning, CouchCorrection(0, -2, 0, 0, 0, 0),
                      frame="origin", seed=3).directory
    before = {t.ident for t in threading.enumerate()}
    seen: list[set[int | None]] = []

    def slow_loader() -> threading.Thread:
        thread = threading.Thread(target=time.sleep, args=(0.5,), name="igrt-load-simpleitk")
        thread.start()
        return thread

    real = cbct_aside.CbctAside

    def recording(directory: Path) -> cbct_aside.CbctAside:
        seen.append({t.ident for t in threading.enumerate()} - before)
        return real(directory)

    monkeypatch.setattr(cli, "load_simpleitk_beside", slow_loader)
    monkeypatch.setattr(cbct_aside, "CbctAside", recording)
    cbct_arg = str(tmp_path / "missing") if usage_error else str(cbct)
    status = cli.main(["register", "--planning", str(planning.directory), "--cbct", cbct_arg])
    assert status == (2 if usage_error else 0)
    assert seen == ([] if usage_error else [set()])
    assert not any(t.name == "igrt-load-simpleitk" for t in threading.enumerate())
    assert gc.isenabled()
