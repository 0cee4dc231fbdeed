"""Where a benchmark writes its phantoms: the ``--work`` directory given (kept), or a temporary
one removed when the benchmark exits (a full-size run writes gigabytes). A kept directory holds
one size: the phantoms' UIDs depend on it, and a planning or CBCT directory rewritten at another
size kept both sets (every case then refused as ``ambiguous_plan``)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

#: The size a kept work directory was written at.
SIZE_MARK = ".igrt-benchmark-size"


def work_directory(given: Path | None, prefix: str, *, size: str | None = None) -> Path:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        if size is not None:
            mark = given / SIZE_MARK
            written = mark.read_text().strip() if mark.exists() else None
            if written not in (None, size):
                raise SystemExit(f"--work {given} holds phantoms of size {written}: give "
                                 f"another directory for size {size}")
            mark.write_text(size + "\n")
        return given
    work = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    return work
