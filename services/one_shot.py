"""Process settings for ``igrt register``, a one-shot command that starts, registers one CBCT
and leaves: what a long-running service would not want (memory kept rather than handed back,
no cycle collection) pays here, where the whole run is about a second and a half and every
tenth of it is the patient's time on the couch. What each saves is in the README (Speed)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.machinery
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

#: glibc's ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> None:
    """Memory freed is kept for the next allocation instead of handed back to the kernel
    (glibc returns the top of the heap beyond a threshold that follows the blocks freed, and
    maps every block over it afresh), so the temporaries of each level reuse pages already
    touched. A new page costs a fault and, on a virtual machine, often the host's work too:
    ~15 % of the faults of a run and ~5 % of its time here. Blocks of up to 32 MiB (glibc's
    limit) come from the heap. Without glibc: nothing."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off for the block (back as it was after it). Reading ~250
    DICOM files and importing pydicom and SimpleITK make hundreds of thousands of objects that
    all live to the end, which the collector walks again and again (~7 % of the run's CPU time,
    measured); the registration makes no garbage that only it would free (peak memory unchanged,
    measured), and what little there is goes with the process."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_simpleitk_beside() -> threading.Thread | None:
    """Start loading SimpleITK's native library (~100 MB of ITK: 40-50 ms of dynamic linking
    here) on a thread of its own; the ``import SimpleITK`` that comes later finds it loaded and
    only runs its module code. libc's ``dlopen`` is called as a ctypes foreign function, which
    runs without Python's lock, so the loading overlaps what Python does meanwhile (``igrt
    register``: importing pydicom).
    Join the thread before any fork: a fork while a thread is inside the loader leaves the
    child's loader locked.
    None when the library is not found (the import then loads it, or says what is wrong)."""
    library = _simpleitk_library()
    if library is None:
        return None
    flags = sys.getdlopenflags()  # as the import will open it: the same handle
    try:
        dlopen = ctypes.CDLL(None).dlopen  # a foreign call: made without Python's lock
    except (OSError, AttributeError):
        return None
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = (ctypes.c_char_p, ctypes.c_int)
    path = os.fsencode(library)

    def load() -> None:
        dlopen(path, flags)  # NULL on failure: the import then loads it, or says what is wrong

    thread = threading.Thread(target=load, name="igrt-load-simpleitk", daemon=True)
    thread.start()
    return thread


def _simpleitk_library() -> Path | None:
    if "SimpleITK" in sys.modules:
        return None
    spec = importlib.util.find_spec("SimpleITK")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = Path(folder) / f"_SimpleITK{suffix}"
            if candidate.is_file():
                return candidate
    return None
