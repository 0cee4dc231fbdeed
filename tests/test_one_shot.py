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

import pytest

from services.one_shot import no_cycle_collection


def python(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
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
    if (os.cpu_count() or 1) > 1:  # the check itself: NumPy alone starts OpenBLAS's threads
        assert int(python("import numpy; " + count)) > 1
    assert python("import services.cli; " + count) == "1"
    assert python("import services; import os; print(os.environ['OPENBLAS_NUM_THREADS'])",
                  OPENBLAS_NUM_THREADS="2") == "2"
