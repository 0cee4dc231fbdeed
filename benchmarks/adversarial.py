"""Adversarial benchmark (issue 9): cases where the answer is wrong, unfindable or hard, with the
review limits opened to 100 mm / 30° so that only the quality checks stand between a wrong
answer and ``ok``. Per case it prints the status, the reasons (codes), the error against the
known correction; then the number of **silent wrong** results (``ok`` with an error above
1 mm / 0.5°, or ``ok`` for another body) and how many of the findable cases were found within
0.5 mm / 0.3°. ``--shift-set`` also runs the normal shift set and prints its false-review rate
(cases flagged ``review`` by a quality check).

    .venv/bin/python benchmarks/adversarial.py [--size full|small] [--shift-set]

Everything runs in this process through ``igrt.offline.register_offline`` (the code of
``igrt register``); the phantoms are written once into --work (default: a temporary directory,
removed at the end).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shift_set import SHIFT_SET  # noqa: E402
from workdir import work_directory  # noqa: E402

from igrt.config import Config, default_config  # noqa: E402
from igrt.core.geometry import CouchCorrection, PatientPosition  # noqa: E402
from igrt.core.nominal import CbctIsocenter  # noqa: E402
from igrt.offline import register_offline  # noqa: E402
from phantoms.generator import PlanningCase, write_cbct, write_planning_set  # noqa: E402

SILENT_MM, SILENT_DEG = 1.0, 0.5
FOUND_MM, FOUND_DEG = 0.5, 0.3
#: Reason codes of the configured review limits: not quality checks.
LIMIT_CODES = ("translation_limit", "rotation_limit")
VERTEBRA_MM = 28.0  # the body phantom's vertebral period


@dataclass(frozen=True)
class Case:
    name: str
    known: CouchCorrection
    findable: bool  # the true answer is in the images and must be found
    another_body: bool = False  # no answer is right: ok is always wrong
    metal: bool = False  # the planning set with titanium rods
    cbct: dict[str, Any] = field(default_factory=dict)  # write_cbct arguments


def c6(*v: float) -> CouchCorrection:
    return CouchCorrection(*(float(x) for x in v))


CASES: tuple[Case, ...] = (
    Case("normal", c6(3.0, -5.0, 2.0, 1.0, -0.5, 1.5), findable=True),
    Case("another body", c6(2.0, -3.0, 1.0, 0.5, 0.0, 1.0), findable=False, another_body=True,
         cbct={"anatomy_variant": "other"}),
    Case("mirrored body", c6(2.0, -3.0, 1.0, 0.5, 0.0, 1.0), findable=False, another_body=True,
         cbct={"anatomy_variant": "mirrored"}),
    Case("wrong region (100 mm)", c6(0.0, 100.0, 0.0, 0.0, 0.0, 0.0), findable=False),
    Case("one level, short CBCT", c6(1.0, VERTEBRA_MM, -1.0, 0.0, 0.0, 0.0), findable=False,
         cbct={"slices": 24}),
    Case("60 mm", c6(25.0, -50.0, 25.0, 0.0, 0.0, 0.0), findable=True),
    Case("9°", c6(2.0, -3.0, 1.0, 0.0, 0.0, 9.0), findable=True),
    Case("metal streaks", c6(3.0, -5.0, 2.0, 1.0, -0.5, 1.5), findable=True, metal=True,
         cbct={"dense_streaks_hu": 400.0}),
    Case("weight loss (8 mm)", c6(3.0, -5.0, 2.0, 1.0, -0.5, 1.5), findable=True,
         cbct={"body_inset_mm": 8.0}),
    Case("noise and cupping", c6(3.0, -5.0, 2.0, 1.0, -0.5, 1.5), findable=True,
         cbct={"noise_hu": 120.0, "cupping_hu": 160.0}),
    Case("missing slices", c6(3.0, -5.0, 2.0, 1.0, -0.5, 1.5), findable=False,
         cbct={"drop_slices": "middle"}),
)


@dataclass(frozen=True)
class Row:
    name: str
    status: str
    reasons: tuple[str, ...]
    err_mm: float | None
    err_deg: float | None
    seconds: float
    case: Case
    score: float | None = None  # registration.quality.match_score
    checks_s: float | None = None  # registration.quality.elapsed_s: the cost of issue 9's checks

    @property
    def silent_wrong(self) -> bool:
        if self.status != "ok":
            return False
        if self.case.another_body:
            return True
        return (self.err_mm or 0.0) > SILENT_MM or (self.err_deg or 0.0) > SILENT_DEG

    @property
    def found(self) -> bool:
        return (self.err_mm is not None and self.err_deg is not None
                and self.err_mm <= FOUND_MM and self.err_deg <= FOUND_DEG)

    @property
    def quality_codes(self) -> tuple[str, ...]:
        return tuple(c for c in self.codes if c not in LIMIT_CODES)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.split(":", 1)[0] for r in self.reasons)


def opened(config: Config) -> Config:
    return replace(config, review=replace(config.review, max_translation_mm=100.0,
                                          max_rotation_deg=30.0))


def errors(message: dict[str, Any], known: CouchCorrection) -> tuple[float | None, float | None]:
    measured = message.get("measured")
    if not measured:
        return None, None
    k = known.as_dict()
    t = math.sqrt(sum((measured[a] - k[a]) ** 2 for a in ("lateral_mm", "longitudinal_mm",
                                                         "vertical_mm")))
    r = max(abs(measured[a] - k[a]) for a in ("pitch_deg", "roll_deg", "rotation_deg"))
    return t, r


def run_case(name: str, case: Case, planning: PlanningCase, work: Path, config: Config,
             *, frame: str = "origin") -> Row:
    directory = work / "cbct" / name.replace(" ", "_").replace("(", "").replace(")", "")
    if not directory.exists():
        kwargs = dict(case.cbct)
        if kwargs.get("drop_slices") == "middle":
            n = 48 if planning.size == "small" else 90
            kwargs["drop_slices"] = (n // 2 - 3, 6)
        write_cbct(directory, planning, case.known, frame=frame, **kwargs)
    t0 = time.perf_counter()
    message = register_offline(planning.directory, directory, config)
    seconds = time.perf_counter() - t0
    err_mm, err_deg = errors(message, case.known)
    figures = (message.get("registration") or {}).get("quality") or {}
    return Row(name, message["status"], tuple(message.get("reasons") or ()), err_mm, err_deg,
               seconds, case, figures.get("match_score"), figures.get("elapsed_s"))


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_row(row: Row) -> None:
    flags = ("SILENT-WRONG " if row.silent_wrong else "") + (
        "found" if row.found else ("NOT FOUND" if row.case.findable else ""))
    print(f"{row.name:>24} {row.status:>7} {fmt(row.err_mm):>7} {fmt(row.err_deg):>7} "
          f"{row.seconds:6.1f} {fmt(row.score):>6}  {','.join(row.codes) or '-':<40} {flags}",
          flush=True)
    for r in row.reasons:
        print(f"{'':>26}{r[:150]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="full", choices=["small", "full"])
    parser.add_argument("--work", type=Path)
    parser.add_argument("--shift-set", action="store_true",
                        help="also run the normal shift set and report its false-review rate")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    args = parser.parse_args()
    work = work_directory(args.work, "igrt-adversarial-", size=args.size)
    config = opened(default_config(environ={}))
    print(f"# adversarial benchmark: size={args.size} cores={os.cpu_count()} review limits "
          f"{config.review.max_translation_mm:g} mm / {config.review.max_rotation_deg:g}°")
    print(f"{'case':>24} {'status':>7} {'err_mm':>7} {'err_deg':>7} {'reg_s':>6} {'score':>6}"
          "  reasons")
    plannings: dict[tuple[PatientPosition, bool], PlanningCase] = {}

    def planning(position: PatientPosition, metal: bool) -> PlanningCase:
        key = (position, metal)
        if key not in plannings:
            plannings[key] = write_planning_set(
                work / f"plan-{position.value}{'-metal' if metal else ''}", phantom="body",
                patient_position=position, size=args.size, metal=metal)
        return plannings[key]

    rows = []
    for case in CASES:
        if args.only and args.only not in case.name:
            continue
        row = run_case(case.name, case, planning(PatientPosition.HFS, case.metal), work, config)
        print_row(row)
        rows.append(row)
    silent = [r for r in rows if r.silent_wrong]
    findable = [r for r in rows if r.case.findable]
    found = [r for r in findable if r.found]
    print(f"silent wrong: {len(silent)} of {len(rows)}"
          + (f" ({', '.join(r.name for r in silent)})" if silent else ""))
    print(f"findable cases found within {FOUND_MM} mm / {FOUND_DEG}°: {len(found)} of "
          f"{len(findable)}")
    if args.shift_set:
        flagged = 0
        print(f"# shift set ({len(SHIFT_SET)} cases)")
        for i, (position, frame, known) in enumerate(SHIFT_SET, 1):
            cfg = config
            if frame == "center":
                cfg = replace(cfg, registration=replace(cfg.registration,
                                                        cbct_isocenter=CbctIsocenter.CENTER))
            case = Case(f"shift {i} {position.value} {frame}", known, findable=True)
            row = run_case(case.name, case, planning(position, False), work, cfg, frame=frame)
            print_row(row)
            flagged += bool(row.quality_codes)
            rows.append(row)
        print(f"false review on the shift set: {flagged} of {len(SHIFT_SET)}")
    costs = sorted(r.checks_s for r in rows if r.checks_s is not None)
    if costs:
        print(f"match checks (issue 9) cost: median {statistics.median(costs):.3f} s, "
              f"max {costs[-1]:.3f} s over {len(costs)} registrations")
    return 1 if silent else 0


if __name__ == "__main__":
    raise SystemExit(main())
