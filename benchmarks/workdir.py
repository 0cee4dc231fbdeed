"""Where a benchmark writes its phantoms: the ``--work`` directory given (kept), or a temporary
one removed when the benchmark exits (a full-size run writes gigabytes)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def work_directory(given: Path | None, prefix: str) -> Path:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        return given
    work = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    return work
