"""Capture-range benchmark: 16 known offsets on the anthropomorphic phantom, 6 of them within the
capture range igrt claims (30 mm and 5°) and 10 beyond it (40-61 mm, or 8°), through the code of
``igrt register`` with the review limits opened to 100 mm / 30° (as the adversarial benchmark
does). Per case the status, the reasons and the error; then how many are found within
0.5 mm / 0.3°, within the claimed range and beyond it, and how many are neither found nor
flagged (``ok`` with a wrong answer: must be 0). Exit 0 when every case within the claimed range
is found and none is silently wrong.

    .venv/bin/python benchmarks/capture.py [--size full|small] [--work DIR]

The phantoms are written once into --work (default: a temporary directory, removed at the end).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from adversarial import FOUND_DEG, FOUND_MM, errors, opened  # noqa: E402
from workdir import work_directory  # noqa: E402

from igrt.config import default_config  # noqa: E402
from igrt.core.geometry import CouchCorrection, PatientPosition  # noqa: E402
from igrt.offline import register_offline  # noqa: E402
from phantoms.generator import PlanningCase, write_cbct, write_planning_set  # noqa: E402

HFS, FFS, HFP, FFP = (PatientPosition.HFS, PatientPosition.FFS, PatientPosition.HFP,
                      PatientPosition.FFP)
#: The claimed capture range.
CLAIMED_MM, CLAIMED_DEG = 30.0, 5.0


def c6(*v: float) -> CouchCorrection:
    return CouchCorrection(*(float(x) for x in v))


#: (patient position, known correction)
CASES: tuple[tuple[PatientPosition, CouchCorrection], ...] = (
    (HFS, c6(25, -50, 25, 0, 0, 0)), (HFS, c6(-25, 50, -25, 0, 0, 0)),
    (HFS, c6(40, 0, 0, 0, 0, 0)), (HFS, c6(0, -45, 0, 0, 0, 0)), (HFS, c6(0, 0, 40, 0, 0, 0)),
    (HFS, c6(-30, -30, 20, 3, -3, 3)), (FFP, c6(30, 30, -25, 0, 0, 0)),
    (HFP, c6(-35, 20, 30, 2, 2, -2)), (HFS, c6(30, 0, 0, 0, 0, 0)), (HFS, c6(0, -30, 0, 0, 0, 0)),
    (HFS, c6(0, 0, 30, 0, 0, 0)), (HFS, c6(18, -17, 16, 5, -5, 5)),
    (HFS, c6(-20, 15, -15, -5, 5, -5)), (FFS, c6(10, 25, -12, 3, 4, -5)),
    (HFS, c6(0, 0, 0, 0, 0, 8)), (HFS, c6(20, -40, 20, 0, 0, 0)),
)


def claimed(known: CouchCorrection) -> bool:
    """Within the capture range igrt claims (translation vector and every angle)."""
    length = float((known.translation_mm ** 2).sum() ** 0.5)
    return length <= CLAIMED_MM + 0.5 and float(abs(known.angles_deg).max()) <= CLAIMED_DEG


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "full"), default="small")
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    work = work_directory(args.work, "igrt-capture-", size=args.size)
    config = opened(default_config(environ={}))
    plans: dict[PatientPosition, PlanningCase] = {}
    counts = {True: [0, 0], False: [0, 0]}  # claimed -> [found, cases]
    silent = 0
    print(f"# capture-range benchmark: size={args.size}, review limits opened to "
          f"{config.review.max_translation_mm:g} mm / {config.review.max_rotation_deg:g}°")
    print(f"{'case':>4} {'pos':>4} {'known (mm / °)':>34} {'range':>8} {'status':>7} "
          f"{'err_mm':>7} {'err_deg':>7}  reasons")
    for number, (position, known) in enumerate(CASES):
        if position not in plans:
            plans[position] = write_planning_set(work / f"plan-{position.value}",
                                                 patient_position=position, size=args.size)
        directory = work / f"cbct-{number:02d}"
        if not directory.exists():
            write_cbct(directory, plans[position], known)
        message = register_offline(plans[position].directory, directory, config)
        err_mm, err_deg = errors(message, known)
        found = err_mm is not None and err_deg is not None and err_mm <= FOUND_MM and \
            err_deg <= FOUND_DEG
        inside = claimed(known)
        counts[inside][0] += found
        counts[inside][1] += 1
        if message["status"] == "ok" and not found:
            silent += 1
        k = known.as_dict()
        shown = (f"{k['lateral_mm']:g},{k['longitudinal_mm']:g},{k['vertical_mm']:g} / "
                 f"{k['pitch_deg']:g},{k['roll_deg']:g},{k['rotation_deg']:g}")
        codes = ",".join(dict.fromkeys(r.split(":")[0] for r in message.get("reasons") or ()))
        print(f"{number:>4} {position.value:>4} {shown:>34} {'claimed' if inside else 'beyond':>8}"
              f" {message['status']:>7} {'-' if err_mm is None else f'{err_mm:.3f}':>7} "
              f"{'-' if err_deg is None else f'{err_deg:.3f}':>7}  {codes or '-'}")
    print(f"found within {FOUND_MM} mm / {FOUND_DEG}°: {counts[True][0]} of {counts[True][1]} "
          f"within the claimed range ({CLAIMED_MM:g} mm, {CLAIMED_DEG:g}°), "
          f"{counts[False][0]} of {counts[False][1]} beyond it")
    print(f"silent wrong (ok, not found): {silent} of {len(CASES)}")
    passed = counts[True][0] == counts[True][1] and silent == 0
    print(f"acceptance (every claimed offset found, none silently wrong): "
          f"{'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
