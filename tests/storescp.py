"""DCMTK's ``storescp`` as the record-and-verify system (OIS) of the record tests: a real SCP on
a free loopback port, every received object kept in its own file (``+uf``), so the files count
the deliveries. Every wait has a timeout."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Storescp:
    def __init__(self, directory: Path, port: int, *, ae_title: str = "OIS") -> None:
        self.directory = directory
        self.port = port
        self.ae_title = ae_title
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = directory.parent / f"storescp-{port}.log"

    def start(self) -> Storescp:
        tool = shutil.which("storescp")
        assert tool is not None, "storescp is missing: run ./dev setup (Debian package dcmtk)"
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [tool, "--aetitle", self.ae_title, "--output-directory", str(self.directory),
                 "--unique-filenames", "--debug", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"storescp exited: {self.log()}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)  # polling for the listening port, bounded by the deadline
        raise TimeoutError(f"storescp not listening on {self.port}: {self.log()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None

    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.is_file()) \
            if self.directory.exists() else []

    def wait_for_files(self, count: int, timeout_s: float = 60.0) -> list[Path]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.files()
            if len(found) >= count:
                return found
            time.sleep(0.1)  # polling the output directory, bounded by the deadline
        raise TimeoutError(f"{len(self.files())} of {count} objects arrived in {timeout_s} s: "
                           f"{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
