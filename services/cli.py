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
from services.curve import ClientKeys

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
    _client_key_options(listen)

    demo = sub.add_parser("demo", help="send a phantom case to a running service and show the "
                                       "correction received beside the known answer")
    demo.add_argument("--config", type=Path)
    demo.add_argument("--shift", default="3.0,-5.0,2.0,1.0,-0.5,1.5",
                      help="known couch correction: lat,long,vert,pitch,roll,rotation")
    demo.add_argument("--position", default="HFS", choices=["HFS", "FFS", "HFP", "FFP"])
    demo.add_argument("--size", default="small", choices=["small", "full"])
    _client_key_options(demo)

    keys = sub.add_parser("keys", help="create CURVE certificates in the layout of [zmq.curve]")
    keys.add_argument("--dir", type=Path, required=True,
                      help="directory for server.key(_secret), clients/, control_clients/")
    keys.add_argument("--reader", action="append", default=[], metavar="NAME",
                      help="create a client that may read the feed and query (repeatable)")
    keys.add_argument("--control", action="append", default=[], metavar="NAME",
                      help="create a client also allowed select_plan, approve, reject and "
                           "register_again (repeatable)")
    return parser


def _client_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client-key", type=Path, metavar="FILE",
                        help="this client's secret CURVE certificate (NAME.key_secret), when "
                             "the service runs with [zmq.curve]")
    parser.add_argument("--server-key", type=Path, metavar="FILE",
                        help="the service's public CURVE certificate (server.key); default: "
                             "read from [zmq.curve] server_secret_key when this machine has it")


def client_keys(args: argparse.Namespace, config: Config) -> ClientKeys | None:
    """The CURVE keys for ``igrt listen``/``demo``; ConfigError when they are needed but missing
    or unreadable."""
    curve = config.zmq.curve
    if args.client_key is None:
        if curve is not None:
            raise ConfigError("the service uses CURVE ([zmq.curve]); give this client's secret "
                              "certificate with --client-key (create one with `igrt keys`)")
        return None
    server_key = args.server_key
    if server_key is None:
        if curve is None:
            raise ConfigError("--client-key needs --server-key (the service's server.key)")
        server_key = curve.server_secret_key
    return ClientKeys.load(server_key=server_key, client_key=args.client_key)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(getattr(args, "config", None))
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
    if args.command == "keys":
        from services.keys import create_keys

        return create_keys(args.dir, readers=args.reader, controllers=args.control)
    if args.command in ("listen", "demo"):
        try:
            keys = client_keys(args, config)
        except ConfigError as exc:
            print(f"igrt {args.command}: {exc.message}", file=sys.stderr)
            return 2
        if args.command == "listen":
            from services.listen import listen

            return listen(config, count=args.count, timeout_s=args.timeout, keys=keys)
        from services.demo import demo

        return demo(config, shift=args.shift, position=args.position, size=args.size, keys=keys)
    raise AssertionError(args.command)


def _register(args: argparse.Namespace, config: Config) -> int:
    """Print the message on stdout; exit 0 with a correction (ok or review), 1 when failed."""
    from igrt.offline import register_offline

    message = register_offline(args.planning, args.cbct, config, plan_uid=args.plan,
                               isocenter_index=args.isocenter)
    sys.stdout.write(json.dumps(message, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 1 if message["status"] == "failed" else 0


if __name__ == "__main__":
    raise SystemExit(main())
