"""SCP memory benchmark (issue 10, finding 3): the resident memory of the real ``igrt serve``
(its peak, VmHWM, from /proc) before and after it receives one large Enhanced CT (default
~200 MiB of pixel data) with pynetdicom, and after a peer announces a 4 GiB A-ASSOCIATE-RQ and
sends 128 MiB behind it. Prints the growth in MiB and as a multiple of the instance size.

    .venv/bin/python benchmarks/scp_memory.py [--frames 400]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import dicom_factory as factory  # noqa: E402
import numpy as np  # noqa: E402
from hostile import flood_after_header, pdu_header, send_file  # noqa: E402
from service_process import ServiceProcess  # noqa: E402

MIB = 1024 * 1024


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=400, help="512x512 16-bit frames")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="igrt-memory-") as tmp:
        work = Path(tmp)
        rng = np.random.default_rng(1)
        hu = rng.integers(-1000, 2000, size=(args.frames, 512, 512)).astype(np.float64)
        big = factory.enhanced_ct(factory.ct_series(n_slices=args.frames, rows=512, columns=512,
                                                    name="memory", hu=hu))
        del hu
        path = work / "big.dcm"
        big.save_as(path, enforce_file_format=True)
        del big
        size_mib = path.stat().st_size / MIB
        svc = ServiceProcess(work).start()
        try:
            assert svc.proc is not None
            pid = svc.proc.pid
            before = peak_rss_mib(pid)
            [(status, comment), _] = send_file(svc.dicom_port, path)
            after_store = peak_rss_mib(pid)
            sent, closed = flood_after_header(svc.dicom_port, pdu_header(0x01, 0xFFFF_FFF0),
                                              total_bytes=128 * MIB, timeout_s=20.0)
            after_flood = peak_rss_mib(pid)
        finally:
            svc.close()
    print(f"# igrt serve peak resident memory (VmHWM), Enhanced CT of {size_mib:.0f} MiB")
    print(f"idle after start:            {before:8.0f} MiB")
    print(f"after storing it (0x{status:04X}): {after_store:8.0f} MiB  (+{after_store - before:.0f}"
          f" MiB = {(after_store - before) / size_mib:.2f} x the instance) {comment or ''}")
    print(f"after a 4 GiB PDU announced:  {after_flood:8.0f} MiB  (+{after_flood - after_store:.0f}"
          f" MiB; {sent / MIB:.1f} MiB accepted before the close, closed={closed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
