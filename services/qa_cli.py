"""``igrt qa run`` and ``igrt qa report`` (CONTRACT §9).

``qa run`` prints one ``igrt/qa/v1`` object on stdout, appends it to the room's QA history
(``<[storage] dir>/qa``, usable while ``igrt serve`` runs on the same directory) and exits 0
when within tolerance, 1 when not (or when the run could not be recorded), 2 on a usage error
(a bad ``--expected``, a missing directory, an invalid configuration). Progress goes to stderr.

``qa report`` writes the history as PDF or HTML, chosen by the extension of ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from igrt.config import Config
from igrt.core.errors import IgrtError, QaError

USAGE_EXIT = 2


def add_parsers(sub: Any, *, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``qa run`` and ``qa report`` to the ``igrt`` sub-commands (``parents``: the options
    every sub-command takes, such as the log level)."""
    qa = sub.add_parser("qa", help="physics QA: score a phantom CBCT, report the QA history",
                        parents=parents)
    qa_sub = qa.add_subparsers(dest="qa_command", required=True)
    run = qa_sub.add_parser("run", help="register a phantom CBCT acquired at a known couch "
                                        "offset, compare, print one igrt/qa/v1 object and "
                                        "append it to the QA history", parents=parents)
    run.add_argument("--planning", type=Path, required=True,
                     help="the phantom's planning CT, RT Plan (and RT Structure Set)")
    run.add_argument("--cbct", type=Path, required=True, help="the phantom CBCT series")
    run.add_argument("--expected", required=True,
                     help="the correction the offset needs (CONTRACT §1 sense): "
                          "LAT,LONG,VERT[,PITCH,ROLL,ROT] in mm and degrees; write "
                          "--expected=-5,0,0 when it starts with a minus sign")
    run.add_argument("--phantom", help="the phantom's name in the history (default: the "
                                       "CBCT's Patient ID)")
    run.add_argument("--config", type=Path)
    report = qa_sub.add_parser("report", help="write the QA history as PDF or HTML",
                               parents=parents)
    report.add_argument("--out", type=Path, required=True,
                        help="FILE.pdf or FILE.html (the extension chooses the format)")
    report.add_argument("--phantom", help="only the runs of this phantom (trends and SPC limits "
                                          "are only meaningful per phantom)")
    report.add_argument("--config", type=Path)


def main(args: argparse.Namespace, config: Config) -> int:
    if args.qa_command == "run":
        return _run(args, config)
    return _report(args, config)


def _progress(text: str) -> None:
    print(f"igrt qa: {text}", file=sys.stderr, flush=True)


def _usage(text: str) -> int:
    print(f"igrt qa: {text}", file=sys.stderr, flush=True)
    return USAGE_EXIT


def _run(args: argparse.Namespace, config: Config) -> int:
    from igrt.core.qa import parse_expected

    try:
        expected = parse_expected(args.expected)
    except QaError as exc:
        return _usage(exc.message)
    for name, path in (("--planning", args.planning), ("--cbct", args.cbct)):
        if not Path(path).is_dir():
            return _usage(f"{name} {path} is not a directory")
    from igrt.physics_qa import run_offline
    from igrt.store.qa_history import QaHistory

    message, images = run_offline(args.planning, args.cbct, expected, config,
                                  phantom=args.phantom, progress=_progress)
    try:
        with QaHistory.open(config.storage.dir) as history:
            stored = history.append_run(message, images)
        _progress(f"recorded as run {stored['run_id']} in {history.directory}")
    except IgrtError as exc:
        _print(message)
        _progress(f"the result could not be recorded in the QA history: {exc.message}")
        return 1
    _print(stored)
    verdict = {"pass": "PASS", "warning": "PASS (warning: beyond the action level)",
               "fail": "FAIL"}[stored["level"]]
    _progress(f"{verdict}" + "".join(f"; {f}" for f in stored["findings"]))
    return 0 if stored["passed"] else 1


def _print(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _report(args: argparse.Namespace, config: Config) -> int:
    out: Path = args.out
    kind = out.suffix.lower()
    if kind not in (".pdf", ".html", ".htm"):
        return _usage(f"--out {out}: the file must end in .pdf or .html")
    if not out.parent.is_dir():
        return _usage(f"--out {out}: the folder {out.parent} does not exist")
    from igrt.report.document import build_report
    from igrt.store.qa_history import QaHistory

    try:
        with QaHistory.open(config.storage.dir) as history:
            runs = [r for r in history.runs()
                    if args.phantom is None or r.message.get("phantom") == args.phantom]
        report = build_report(runs, room=config.room)
        _progress(f"{len(runs)} run(s) in the QA history of room {config.room}")
        if kind == ".pdf":
            from igrt.report.pdf import write_pdf

            write_pdf(report, out)
        else:
            from igrt.report.html import write_html

            write_html(report, out)
    except IgrtError as exc:
        print(f"igrt qa: the report could not be written: {exc.message}", file=sys.stderr)
        return 1
    _progress(f"wrote {out}")
    return 0
