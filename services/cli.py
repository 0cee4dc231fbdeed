"""``igrt`` command line (CONTRACT §5)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from igrt.config import Config, load_config
from igrt.core.errors import ConfigError
from services import qa_cli

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igrt", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service in the foreground")
    serve.add_argument("--config", type=Path, help="TOML file (default: built-in defaults)")

    register = sub.add_parser("register", help="register offline; print one correction message")
    register.add_argument("--planning", type=Path, required=True,
                          help="directory with the planning CT, RT Plan (and RT Structure Set)")
    register.add_argument("--cbct", type=Path, required=True,
                          help="directory with the CBCT series (and a Spatial Registration)")
    register.add_argument("--config", type=Path)
    register.add_argument("--plan", help="SOP Instance UID of the plan, if there are several")
    register.add_argument("--isocenter", type=int,
                          help="index of the isocentre, if the plan has several")

    listen = sub.add_parser("listen", help="print the feed as a console would see it")
    listen.add_argument("--config", type=Path)
    listen.add_argument("--count", type=int, default=0,
                        help="stop after this many new correction messages, not counting the "
                             "latest one shown at start (0 = never)")
    listen.add_argument("--timeout", type=float, default=0.0,
                        help="stop after this many seconds (0 = never)")
    listen.add_argument("--pretty", action="store_true",
                        help="blocks for a human (patient, plan, status, reasons, the six "
                             "numbers, the review URL; decisions) instead of topic<TAB>json")

    operators = sub.add_parser("operators", help="manage who may approve on the review page")
    operators_sub = operators.add_subparsers(dest="operators_command", required=True)
    add = operators_sub.add_parser("add", help="add an operator with a PIN (asked twice, or "
                                                "read from standard input with --pin-stdin)")
    add.add_argument("name", help="the operator's name as shown in decisions")
    add.add_argument("--file", type=Path, required=True, help="the operators file ([ui] "
                                                               "operators_file)")
    add.add_argument("--pin-stdin", action="store_true", help="read the PIN from stdin")

    demo = sub.add_parser("demo", help="send a phantom case to a running service and show the "
                                       "correction received beside the known answer")
    demo.add_argument("--config", type=Path)
    demo.add_argument("--shift", default="3.0,-5.0,2.0,1.0,-0.5,1.5",
                      help="known couch correction: lat,long,vert,pitch,roll,rotation")
    demo.add_argument("--position", default="HFS", choices=["HFS", "FFS", "HFP", "FFP"])
    demo.add_argument("--size", default="small", choices=["small", "full"])

    qa_cli.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(qa_cli.join_negative_expected(
        list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "operators":
        return _add_operator(args)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"igrt: configuration error: {exc.message}", file=sys.stderr)
        return 2
    return _run(args, config)


def _run(args: argparse.Namespace, config: Config) -> int:
    if args.command == "register":
        return _register(args, config)
    if args.command == "serve":
        from services.app import serve

        return serve(config)
    if args.command == "listen":
        from services.listen import listen

        return listen(config, count=args.count, timeout_s=args.timeout, pretty=args.pretty)
    if args.command == "qa":
        return qa_cli.main(args, config)
    if args.command == "demo":
        from services.demo import demo

        return demo(config, shift=args.shift, position=args.position, size=args.size)
    raise AssertionError(args.command)


def _register(args: argparse.Namespace, config: Config) -> int:
    """Print the message on stdout; exit 0 with a correction (ok or review), 1 when failed."""
    from igrt.offline import register_offline

    message = register_offline(args.planning, args.cbct, config, plan_uid=args.plan,
                               isocenter_index=args.isocenter)
    sys.stdout.write(json.dumps(message, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 1 if message["status"] == "failed" else 0


def _add_operator(args: argparse.Namespace) -> int:
    """Append an operator (name and scrypt hash of the PIN) to the operators file."""
    import getpass

    from services.operators import PIN_MIN_CHARS, load_operators, operator_line

    if args.pin_stdin:
        pin = sys.stdin.readline().rstrip("\n")
    else:
        pin = getpass.getpass(f"PIN for {args.name}: ")
        if getpass.getpass("the same PIN again: ") != pin:
            print("igrt operators: the two PINs differ; nothing written", file=sys.stderr)
            return 2
    if len(pin) < PIN_MIN_CHARS or not pin.isprintable():
        print(f"igrt operators: a PIN needs at least {PIN_MIN_CHARS} printable characters",
              file=sys.stderr)
        return 2
    path: Path = args.file
    if path.exists():
        try:
            known = load_operators(path)
        except ConfigError as exc:
            print(f"igrt operators: {exc.message}", file=sys.stderr)
            return 2
        if args.name.strip() in known:
            print(f"igrt operators: {args.name.strip()!r} is already in {path}", file=sys.stderr)
            return 2
    with path.open("a", encoding="utf-8") as f:
        f.write(operator_line(args.name.strip(), pin))
    path.chmod(0o640)
    print(f"igrt operators: {args.name.strip()} added to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
