"""Registration benchmark: the shift set through ``igrt register`` (the real command, in a
subprocess) on the anthropomorphic phantom with CBCT degradation, and the same cases through the
elastix command-line tool in the same run (``benchmarks/elastix_cli.py`` says what elastix is
given); per case the error against the known correction and the time, then maxima, medians and
the speed ratio; both errors are of corrections rounded as igrt publishes them (0.01 mm and °).
``box_mm`` is the error of ``registration.cbct_to_planning`` (the matrix of the DICOM record,
CONTRACT §8): the largest distance, over the corners of the registration box, between the
planning points it and the phantom's known registration give. ``--hires`` adds the
high-resolution planning CT (0.45 mm pixels, 512x512x140) on the HFS cases, timed against the
same cases on the ordinary planning CT.

    .venv/bin/python benchmarks/registration.py [--size full|small] [--engine simpleitk|elastix]
        [--cases N] [--no-elastix-cli] [--hires]

The planning sets and CBCTs are written once into --work (default: a temporary directory,
removed at the end).
Exit 0 when the accuracy acceptance holds; the speed targets are printed (PASS/FAIL), not
enforced: timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import elastix_cli  # noqa: E402
from shift_set import SHIFT_SET  # noqa: E402
from workdir import work_directory  # noqa: E402

from igrt.config import parse_config  # noqa: E402
from igrt.core import geometry  # noqa: E402
from igrt.core.case import build_case  # noqa: E402
from igrt.core.geometry import CouchCorrection  # noqa: E402
from igrt.core.matching import pick_plan  # noqa: E402
from igrt.planning.directory import DirectoryCbct, DirectoryPlanning  # noqa: E402
from igrt.registration.runner import to_iec  # noqa: E402
from phantoms.generator import (  # noqa: E402
    PlanningCase,
    expected_registration,
    write_cbct,
    write_planning_set,
)

#: Accuracy acceptance at each size (the full-size one is the issue's target).
ACCURACY = {"full": (0.15, 0.1), "small": (0.3, 0.15)}
TARGET_MEDIAN_S = 2.0
TARGET_RATIO = 10.0
TARGET_HIRES = 1.5


@dataclass(frozen=True)
class Row:
    err_mm: float
    err_deg: float
    box_mm: float  # error of the record's matrix over the registration box (_box_error_mm)
    cli_s: float
    reg_s: float
    status: str


def errors(measured: CouchCorrection, known: CouchCorrection) -> tuple[float, float]:
    return (float(np.linalg.norm(measured.translation_mm - known.translation_mm)),
            float(np.abs(measured.angles_deg - known.angles_deg).max()))


def byte_compile() -> None:
    """The project's modules byte-compiled, as a wheel install leaves them, so the timed
    ``igrt register`` starts as an installed one does (an editable checkout run with
    PYTHONDONTWRITEBYTECODE set, as on this machine, compiles ~60 modules at every start)."""
    root = Path(__file__).resolve().parent.parent
    for package in ("igrt", "services"):
        compileall.compile_dir(root / package, quiet=1)


def igrt_register(planning: PlanningCase, cbct: Path, config: Path, known: CouchCorrection,
                  frame: str) -> Row:
    igrt = Path(sys.executable).with_name("igrt")
    command = [str(igrt), "register", "--planning", str(planning.directory), "--cbct", str(cbct),
               "--config", str(config)]
    t0 = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    cli_s = time.perf_counter() - t0
    message = json.loads(proc.stdout)
    if message["measured"] is None:
        return Row(float("inf"), float("inf"), float("inf"), cli_s, float("nan"),
                   "failed: " + "; ".join(message["reasons"]))
    err_mm, err_deg = errors(CouchCorrection(**message["measured"]), known)
    box_mm = _box_error_mm(np.asarray(message["registration"]["cbct_to_planning"]),
                           expected_registration(planning, known, frame), planning.isocenter_mm)
    return Row(err_mm, err_deg, box_mm, cli_s, float(message["registration"]["elapsed_s"]),
               message["status"])


def elastix_register(planning: Path, cbct: Path, convention: str, known: CouchCorrection,
                     work: Path) -> tuple[float, float, float]:
    """(err_mm, err_deg, seconds) of the elastix command-line tool on the same case."""
    cfg = parse_config({"registration": {"cbct_isocenter": convention}})
    cbct_source = DirectoryCbct(cbct)
    source = DirectoryPlanning(planning, cbct=cbct_source)
    series = cbct_source.load()
    plan = pick_plan(source.plans(series.info.patient_id), patient_id=series.info.patient_id,
                     selected_uid=None)
    structure_sets = source.structure_sets(plan)
    ct = source.load_planning_ct(source.planning_ct(plan, structure_sets, cbct=series.info))
    case, _, _ = build_case(cbct=series, plan=plan, ct=ct.info,
                            sros=source.spatial_registrations(series.info),
                            convention=cfg.registration.cbct_isocenter)
    parameters, initial, _ = elastix_cli.write_inputs(case, ct.volume, work,
                                                      box_size_mm=cfg.registration.roi_size_mm)
    run = elastix_cli.run(work, parameters, initial)
    shutil.rmtree(work)  # its images (~300 MB a case at full size) are read: 13 cases filled /tmp
    # rounded as igrt publishes its numbers (0.01 mm / 0.01°), so both are compared alike
    err_mm, err_deg = errors(to_iec(run.transform, case).rounded(), known)
    return err_mm, err_deg, run.elapsed_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="full", choices=["small", "full"])
    parser.add_argument("--engine", default="simpleitk", choices=["simpleitk", "elastix"])
    parser.add_argument("--phantom", default="body", choices=["body", "cube"])
    parser.add_argument("--work", type=Path)
    parser.add_argument("--cases", type=int, default=len(SHIFT_SET))
    parser.add_argument("--no-elastix-cli", action="store_true",
                        help="do not run the elastix command-line tool")
    parser.add_argument("--hires", action="store_true",
                        help="also the high-resolution planning CT on the HFS cases")
    args = parser.parse_args()
    work = work_directory(args.work, "igrt-bench-", size=args.size)
    byte_compile()
    with_elastix = not args.no_elastix_cli
    if with_elastix and not elastix_cli.available():
        print("the elastix command-line tool is not installed (./dev setup installs it)")
        return 2
    configs = {}
    for convention in ("origin", "center"):
        configs[convention] = work / f"{args.engine}-{convention}.toml"
        configs[convention].write_text(
            f'[registration]\nengine = "{args.engine}"\ncbct_isocenter = "{convention}"\n')
    planning: dict[str, PlanningCase] = {}
    rows: dict[int, Row] = {}
    elastix: dict[int, tuple[float, float, float]] = {}
    print(f"# igrt register benchmark: phantom={args.phantom} size={args.size} "
          f"engine={args.engine} cores={os.cpu_count()}")
    print(f"{'case':>4} {'pos':>3} {'frame':>8} {'known (lat,long,vert mm / pitch,roll,rot °)':>44}"
          f" {'status':>6} {'err_mm':>6} {'err_deg':>7} {'box_mm':>6} {'reg_s':>5} {'cli_s':>5}"
          + (f" | {'elx_mm':>6} {'elx_deg':>7} {'elx_s':>6} {'ratio':>5}" if with_elastix else ""))
    for n, (position, frame, known) in enumerate(SHIFT_SET[:args.cases]):
        if position not in planning:
            planning[position] = write_planning_set(
                work / f"planning-{position}", phantom=args.phantom,
                patient_id=f"BENCH-{position}", patient_position=position, size=args.size)
        cbct = write_cbct(work / f"cbct-{n:02d}", planning[position], known, frame=frame,
                          seed=100 + n)
        convention = "center" if frame == "center" else "origin"
        row = igrt_register(planning[position], cbct.directory, configs[convention], known,
                            frame)
        rows[n] = row
        shown = ",".join(f"{v:g}" for v in known.translation_mm) + " / " + \
            ",".join(f"{v:g}" for v in known.angles_deg)
        line = (f"{n:>4} {position:>3} {frame:>8} {shown:>44} {row.status[:6]:>6} "
                f"{row.err_mm:6.3f} {row.err_deg:7.3f} {row.box_mm:6.3f} {row.reg_s:5.2f} "
                f"{row.cli_s:5.2f}")
        if with_elastix:
            elastix[n] = elastix_register(planning[position].directory, cbct.directory,
                                          convention, known, work / f"elastix-{n:02d}")
            e_mm, e_deg, e_s = elastix[n]
            line += f" | {e_mm:6.3f} {e_deg:7.3f} {e_s:6.2f} {e_s / row.cli_s:5.1f}"
        print(line, flush=True)
        if row.status.startswith("failed"):
            print(f"     {row.status}")
    ok = summary(rows, elastix, args.size, args.engine)
    if args.hires:
        hires(args, work, rows, configs)
    return 0 if ok else 1


def summary(rows: dict[int, Row], elastix: dict[int, tuple[float, float, float]],
            size: str, engine: str) -> bool:
    errs_mm = [r.err_mm for r in rows.values()]
    errs_deg = [r.err_deg for r in rows.values()]
    cli = statistics.median(r.cli_s for r in rows.values())
    reg = statistics.median(r.reg_s for r in rows.values())
    print(f"max translation-vector error: {max(errs_mm):.3f} mm (median "
          f"{statistics.median(errs_mm):.3f})")
    print(f"max rotation error:           {max(errs_deg):.3f} deg (median "
          f"{statistics.median(errs_deg):.3f})")
    print(f"max record-matrix error over the registration box: "
          f"{max(r.box_mm for r in rows.values()):.3f} mm")
    print(f"median igrt register time:    {cli:.2f} s (registration incl. loading: {reg:.2f} s)")
    tol_mm, tol_deg = ACCURACY[size]
    ok = max(errs_mm) <= tol_mm and max(errs_deg) <= tol_deg
    print(f"acceptance (<= {tol_mm} mm, <= {tol_deg} deg): {'PASS' if ok else 'FAIL'}")
    if size == "full" and engine == "simpleitk":
        print(f"target (median igrt register <= {TARGET_MEDIAN_S} s): "
              f"{'PASS' if cli <= TARGET_MEDIAN_S else 'FAIL'}")
    if elastix:
        e_mm = [e[0] for e in elastix.values()]
        e_deg = [e[1] for e in elastix.values()]
        e_s = statistics.median(e[2] for e in elastix.values())
        ratios = [elastix[n][2] / rows[n].cli_s for n in elastix]
        print(f"elastix CLI: max error {max(e_mm):.3f} mm / {max(e_deg):.3f} deg (median "
              f"{statistics.median(e_mm):.3f} mm), median time {e_s:.2f} s")
        print(f"igrt register vs elastix CLI: {e_s / cli:.1f}x faster (ratio of medians; per "
              f"case {min(ratios):.1f}x to {max(ratios):.1f}x)")
        better = max(errs_mm) <= max(e_mm) and max(errs_deg) <= max(e_deg)
        print(f"max error no worse than elastix's: {'yes' if better else 'no'}")
        if size == "full":
            print(f"target (>= {TARGET_RATIO:g}x faster, max error no worse than elastix's): "
                  f"{'PASS' if e_s / cli >= TARGET_RATIO and better else 'FAIL'}"
                  f" (speed {'PASS' if e_s / cli >= TARGET_RATIO else 'FAIL'}, "
                  f"accuracy {'PASS' if better else 'FAIL'})")
    return ok


def hires(args: argparse.Namespace, work: Path, rows: dict[int, Row],
          configs: dict[str, Path]) -> None:
    """The HFS cases again against a 0.45 mm planning CT of the same phantom."""
    size = "hires" if args.size == "full" else "hires-small"
    cases = [n for n in rows if SHIFT_SET[n][0] == geometry.PatientPosition.HFS]
    plan = write_planning_set(work / "planning-hires", phantom=args.phantom,
                              patient_id="BENCH-HIRES", size=size)
    print(f"# high-resolution planning CT ({size}: 0.45 mm pixels at full size), HFS cases")
    times = []
    for n in cases:
        _, frame, known = SHIFT_SET[n]
        cbct = write_cbct(work / f"cbct-hires-{n:02d}", plan, known, frame=frame, seed=100 + n)
        row = igrt_register(plan, cbct.directory,
                            configs["center" if frame == "center" else "origin"], known, frame)
        times.append(row.cli_s)
        print(f"{n:>4} {row.status[:6]:>6} {row.err_mm:6.3f} mm {row.err_deg:6.3f} deg "
              f"{row.cli_s:5.2f} s (ordinary planning CT {rows[n].cli_s:5.2f} s)", flush=True)
    body = statistics.median(rows[n].cli_s for n in cases)
    ratio = statistics.median(times) / body
    print(f"median igrt register time, high-resolution planning CT: {statistics.median(times):.2f}"
          f" s, {ratio:.2f}x the same cases on the ordinary one ({body:.2f} s)")
    if args.size == "full":
        print(f"target (<= {TARGET_HIRES}x): {'PASS' if ratio <= TARGET_HIRES else 'FAIL'}")


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
