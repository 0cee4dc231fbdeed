"""dicom3tools' ``dciodvfy`` (installed by ``./dev setup``): the IOD checker every object igrt or
its phantom generator writes must pass without errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines ``dciodvfy`` reports for one file (warnings are not errors)."""
    tool = shutil.which("dciodvfy")
    assert tool is not None, "dciodvfy is missing: run ./dev setup (Debian package dicom3tools)"
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60,
                          check=False)
    report = done.stdout + done.stderr
    # dciodvfy starts with the IOD it recognised; an unrecognised object is an error too.
    assert report.strip(), f"dciodvfy printed nothing for {path}"
    return [line for line in report.splitlines() if line.startswith("Error")]
