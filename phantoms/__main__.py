"""Command line: ``python -m phantoms planning ...`` and ``python -m phantoms cbct ...``.

Examples::

    python -m phantoms planning --out /tmp/plan --phantom body --position HFS --size small
    python -m phantoms cbct --planning /tmp/plan --out /tmp/cbct --shift=-5,0,0,0,0,0 --frame origin

Each prints a JSON summary of what it wrote (UIDs, isocentre, the known correction).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from igrt.core.argv import join_negative_values
from igrt.core.geometry import CouchCorrection, PatientPosition
from phantoms.cbct import FRAMES
from phantoms.generator import (
    PHANTOMS,
    SIZES,
    read_planning_case,
    write_cbct,
    write_planning_set,
)


def _floats(text: str, n: int, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be {n} comma-separated numbers") from None
    if len(values) != n:
        raise argparse.ArgumentTypeError(f"{what} must be {n} comma-separated numbers")
    return values


def _shift(text: str) -> CouchCorrection:
    return CouchCorrection(*_floats(text, 6, "--shift (lat,long,vert,pitch,roll,rot)"))


def _isocenters(text: str) -> list[tuple[float, float, float]]:
    out = []
    for part in text.split(";"):
        x, y, z = _floats(part, 3, "each isocentre (x,y,z)")
        out.append((x, y, z))
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m phantoms", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("planning", help="write a planning CT, RT Structure Set and RT Plan")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--phantom", choices=PHANTOMS, default="body")
    p.add_argument("--position", choices=[v.value for v in PatientPosition], default="HFS")
    p.add_argument("--size", choices=SIZES, default="small")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--patient-id", default="PHANTOM-001")
    p.add_argument("--isocenters", type=_isocenters, default=None,
                   help="plan isocentres in planning LPS mm, 'x,y,z;x,y,z' (default: phantom's)")
    p.add_argument("--transfer-syntax", default=None, help="CT transfer syntax UID")
    c = sub.add_parser("cbct", help="write a CBCT of a planning set at a known correction")
    c.add_argument("--planning", type=Path, required=True, help="planning set directory")
    c.add_argument("--out", type=Path, required=True, help="output directory")
    c.add_argument("--shift", type=_shift, default=CouchCorrection.zero(),
                   help="the known correction: lat,long,vert (mm),pitch,roll,rot (deg); "
                   "write --shift=-5,0,0,0,0,0 when it starts with a minus sign")
    c.add_argument("--frame", choices=FRAMES, default="origin")
    c.add_argument("--seed", type=int, default=2)
    c.add_argument("--patient-id", default=None, help="default: the plan's")
    c.add_argument("--no-degrade", action="store_true", help="ideal image (no noise, blur...)")
    c.add_argument("--deform-mm", type=float, default=0.0)
    c.add_argument("--no-padding-attribute", action="store_true")
    c.add_argument("--transfer-syntax", default=None, help="CBCT transfer syntax UID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(join_negative_values(sys.argv[1:] if argv is None else argv,
                                                     ("--shift", "--isocenters")))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if args.command == "planning":
        case = write_planning_set(
            args.out, phantom=args.phantom, patient_id=args.patient_id,
            patient_position=PatientPosition(args.position), size=args.size, seed=args.seed,
            isocenters_mm=args.isocenters, transfer_syntax=args.transfer_syntax,
        )
        summary = asdict(case)
    else:
        planning = read_planning_case(args.planning)
        cbct = write_cbct(
            args.out, planning, args.shift, frame=args.frame, patient_id=args.patient_id,
            degrade=not args.no_degrade, seed=args.seed, deform_mm=args.deform_mm,
            padding_attribute=not args.no_padding_attribute,
            transfer_syntax=args.transfer_syntax,
        )
        summary = asdict(cbct)
    print(json.dumps(summary, default=str, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
