"""A real, small, full file system for out-of-space tests, with or without root: a child process
in its own user and mount namespace (``unshare --user --map-root-user --mount``, which needs no
privilege) mounts a tmpfs of the given size and runs a Python script against it. The script gets
the mount point as ``sys.argv[1]`` and prints one JSON object, which is returned."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

MOUNT_THEN_RUN = 'mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@"'


def run_on_small_tmpfs(directory: Path, size_bytes: int, script: str, *args: str,
                       timeout_s: float = 120.0) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", MOUNT_THEN_RUN,
               "sh", str(size_bytes), str(directory), sys.executable, "-c", script,
               str(directory), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                          check=False)
    if done.returncode != 0:
        raise AssertionError(f"the small-disk child failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
