"""Load benchmark (issue 10): the real ``igrt serve`` receiving ``--patients`` patients at once
(half DCMTK storescu, half pynetdicom; planning set then a CBCT at a known correction each), with
``--hogs`` CPU-busy processes beside it. Prints instances acknowledged vs stored, corrections vs
expected, the largest heartbeat gap and the latency from each CBCT's release to its correction.

    .venv/bin/python benchmarks/load.py [--patients 10] [--size small|full] [--hogs 0|2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from load_run import run_load  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--size", default="small", choices=["small", "full"])
    parser.add_argument("--hogs", type=int, default=0,
                        help="CPU-busy processes to run beside the service (2 = both cores)")
    parser.add_argument("--settle", type=float, default=1.0, help="[dicom] settle_s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="igrt-load-") as work:
        report = run_load(Path(work), patients=args.patients, size=args.size, hogs=args.hogs,
                          settle_s=args.settle)
    print(f"# igrt serve load: size={args.size} settle_s={args.settle}")
    for line in report.lines():
        print(line)
    print("PASS" if report.passed else "FAIL")
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
