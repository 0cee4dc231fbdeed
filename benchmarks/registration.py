"""Registration benchmark: runs the shift set through ``igrt register`` (the real command, in a
subprocess) on the anthropomorphic phantom with CBCT degradation, and prints per case the error
against the known correction and the time, then the maxima and the median time. ``box_mm`` is the
error of ``registration.cbct_to_planning`` (the matrix of the DICOM record, CONTRACT §8): the
largest distance, over the corners of the registration box, between the planning points it and
the phantom's known registration give.

    .venv/bin/python benchmarks/registration.py [--size full|small] [--engine simpleitk|elastix]

The planning sets and CBCTs are written once into --work (default: a temporary directory).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shift_set import SHIFT_SET  # noqa: E402

from igrt.core import geometry  # noqa: E402
from phantoms.generator import (  # noqa: E402
    expected_registration,
    write_cbct,
    write_planning_set,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="full", choices=["small", "full"])
    parser.add_argument("--engine", default="simpleitk", choices=["simpleitk", "elastix"])
    parser.add_argument("--phantom", default="body", choices=["body", "cube"])
    parser.add_argument("--work", type=Path)
    parser.add_argument("--cases", type=int, default=len(SHIFT_SET))
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="igrt-bench-"))
    configs = {}
    for convention in ("origin", "center"):
        configs[convention] = work / f"{args.engine}-{convention}.toml"
        configs[convention].write_text(
            f'[registration]\nengine = "{args.engine}"\ncbct_isocenter = "{convention}"\n')
    igrt = Path(sys.executable).with_name("igrt")
    planning = {}
    rows = []
    print(f"# igrt register benchmark: phantom={args.phantom} size={args.size} "
          f"engine={args.engine} cores={os.cpu_count()}")
    print(f"{'case':>4} {'pos':>3} {'frame':>8} {'known (lat,long,vert mm / pitch,roll,rot °)':>48}"
          f" {'status':>6} {'err_mm':>7} {'err_deg':>7} {'box_mm':>7} {'reg_s':>6} {'cli_s':>6}")
    for n, (position, frame, known) in enumerate(SHIFT_SET[:args.cases]):
        if position not in planning:
            planning[position] = write_planning_set(
                work / f"planning-{position}", phantom=args.phantom,
                patient_id=f"BENCH-{position}", patient_position=position, size=args.size)
        cbct = write_cbct(work / f"cbct-{n:02d}", planning[position], known, frame=frame,
                          seed=100 + n)
        t0 = time.perf_counter()
        config = configs["center" if frame == "center" else "origin"]
        command = [str(igrt), "register", "--planning", str(planning[position].directory),
                   "--cbct", str(cbct.directory), "--config", str(config)]
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        cli_s = time.perf_counter() - t0
        message = json.loads(proc.stdout)
        if message["measured"] is None:
            print(f"{n:>4} {position:>3} {frame:>8} FAILED: {message['reasons']}")
            rows.append((float("inf"), float("inf"), float("inf"), cli_s, float("nan")))
            continue
        m = message["measured"]
        got = geometry.CouchCorrection(**m)
        err_mm = float(np.linalg.norm(got.translation_mm - known.translation_mm))
        err_deg = float(np.abs(got.angles_deg - known.angles_deg).max())
        reg_s = float(message["registration"]["elapsed_s"])
        box_mm = _box_error_mm(np.asarray(message["registration"]["cbct_to_planning"]),
                               expected_registration(planning[position], known, frame),
                               planning[position].isocenter_mm)
        rows.append((err_mm, err_deg, box_mm, cli_s, reg_s))
        shown = ",".join(f"{v:g}" for v in known.translation_mm) + " / " + \
            ",".join(f"{v:g}" for v in known.angles_deg)
        print(f"{n:>4} {position:>3} {frame:>8} {shown:>48} {message['status']:>6} "
              f"{err_mm:7.3f} {err_deg:7.3f} {box_mm:7.3f} {reg_s:6.2f} {cli_s:6.2f}", flush=True)
    errs_mm, errs_deg, boxes_mm, cli, reg = zip(*rows, strict=True)
    print(f"max translation-vector error: {max(errs_mm):.3f} mm")
    print(f"max rotation error:           {max(errs_deg):.3f} deg")
    print(f"max record-matrix error over the registration box: {max(boxes_mm):.3f} mm")
    print(f"median igrt register time:    {statistics.median(cli):.2f} s "
          f"(registration incl. loading: {statistics.median(reg):.2f} s)")
    ok = max(errs_mm) <= 0.3 and max(errs_deg) <= 0.15
    print("acceptance (<= 0.3 mm, <= 0.15 deg):", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def _box_error_mm(matrix: np.ndarray, truth: np.ndarray,
                  isocenter_mm: tuple[float, float, float]) -> float:
    """Largest distance between the planning points of the two matrices over the corners of the
    default registration box (160 x 160 x 120 mm about the isocentre as the CBCT sees it)."""
    iso_cbct = geometry.apply(geometry.invert_rigid(truth), isocenter_mm)
    corners = np.array([[x, y, z] for x in (-80, 80) for y in (-80, 80) for z in (-60, 60)])
    points = iso_cbct + corners
    return float(np.max(np.linalg.norm(geometry.apply(matrix, points)
                                       - geometry.apply(truth, points), axis=1)))


if __name__ == "__main__":
    raise SystemExit(main())
