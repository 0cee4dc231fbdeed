"""Match-quality commissioning on real anatomy (issue 9): simulated CBCTs of the real CTs in
``tests/data/real_ct`` (``phantoms.real_ct``), registered through ``igrt.offline`` with the review
limits opened to 100 mm / 30°, and the ``registration.quality.match_score`` each gets. True
matches (normal, harsh CBCT artefacts, a short CBCT, a short CBCT one level away) must score
above ``[registration] match_score_min``; a CBCT of another patient's scan placed under the same
Patient ID must score below it. This is what the README's commissioning table quotes.

    .venv/bin/python benchmarks/match_scores.py [--work DIR]

Exit 0 when every true match is above the threshold and every other body below it, else 3.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from igrt.config import default_config
from igrt.core.geometry import CouchCorrection
from igrt.offline import register_offline
from phantoms import cbct, real_ct

SCANS = ("abdomen_pelvis.nii.gz", "chest.nii.gz", "head_neck_a.nii.gz", "head_neck_b.nii.gz")
#: another body under the planning set's Patient ID: (planning scan, scan the CBCT shows)
OTHERS = (("head_neck_a.nii.gz", "head_neck_b.nii.gz"),
          ("head_neck_b.nii.gz", "head_neck_a.nii.gz"),
          ("abdomen_pelvis.nii.gz", "chest.nii.gz"))
SETUP = CouchCorrection(3.0, -5.0, 2.0, 1.0, -0.5, 1.5)
HARSH = cbct.Degradation(noise_hu=70.0, hu_scale=0.75, hu_offset=-120.0, cupping_hu=180.0,
                         streaks_hu=150.0, rings_hu=30.0, blur_sigma_mm=1.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="igrt-match-scores-"))
    config = default_config(environ={})
    config = replace(config, review=replace(config.review, max_translation_mm=100.0,
                                            max_rotation_deg=30.0))
    threshold = config.registration.match_score_min
    plannings = {s: real_ct.write_planning(work / f"plan-{s.split('.')[0]}", s) for s in SCANS}
    cases: list[tuple[str, bool, Path, Path]] = []  # name, true match, planning, cbct
    for s, planning in plannings.items():
        short = s.split(".")[0]
        variants = {"normal": {}, "harsh": {"degradation": HARSH}, "short": {"slices": 24}}
        for label, kwargs in variants.items():
            cases.append((f"{short} {label}", True, planning.directory, real_ct.write_cbct(
                work / f"cbct-{short}-{label}", planning, SETUP, **kwargs)))  # type: ignore[arg-type]
        cases.append((f"{short} short, one level", True, planning.directory, real_ct.write_cbct(
            work / f"cbct-{short}-level", planning, CouchCorrection(1.0, 36.0, -1.0, 0, 0, 0),
            slices=24)))
    for plan_scan, shown in OTHERS:
        planning = plannings[plan_scan]
        name = f"{plan_scan.split('.')[0]} shows {shown.split('.')[0]}"
        cases.append((name, False, planning.directory, real_ct.write_cbct(
            work / f"cbct-{name.replace(' ', '-')}", planning, SETUP, scan_name=shown)))
    print(f"# match scores on real CTs: match_score_min {threshold:.2f}")
    print(f"{'case':>40} {'truth':>12} {'status':>7} {'score':>6}  reasons")
    wrong = 0
    for name, true_match, planning_dir, cbct_dir in cases:
        message = register_offline(planning_dir, cbct_dir, config)
        score = ((message.get("registration") or {}).get("quality") or {}).get("match_score")
        codes = [r.split(":", 1)[0] for r in message.get("reasons") or ()]
        ok = score is not None and (score >= threshold) == true_match
        wrong += not ok
        print(f"{name:>40} {'true match' if true_match else 'other body':>12} "
              f"{message['status']:>7} {'-' if score is None else f'{score:.3f}':>6}  "
              f"{','.join(codes) or '-'}{'' if ok else '  WRONG SIDE OF THE THRESHOLD'}",
              flush=True)
    print(f"on the wrong side of the threshold: {wrong} of {len(cases)}")
    return 0 if wrong == 0 else 3


if __name__ == "__main__":
    sys.exit(main())
