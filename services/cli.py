"""``igrt`` command line (CONTRACT §5)."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import faulthandler
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

from igrt.config import Config, load_config
from igrt.core.argv import join_negative_values
from igrt.core.errors import ConfigError
from services import qa_cli
from services.logs import LEVELS, configure
from services.one_shot import keep_freed_memory, load_simpleitk_beside, no_cycle_collection

if TYPE_CHECKING:
    from igrt.dicom.files import ScanResult
    from services.curve import ClientKeys

log = logging.getLogger(__name__)

USAGE_EXIT = 2


def _log_options(default: object) -> argparse.ArgumentParser:
    """``-v`` / ``--log-level``, accepted before and after the sub-command (the sub-command's
    copy has no default, so it never overrides what was given before it)."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("-v", "--verbose", action="store_const", const="debug",
                         dest="log_level", default=default, help="debug logging")
    options.add_argument("--log-level", choices=LEVELS, dest="log_level", default=default,
                         help="log level (default: info)")
    return options


class _Version(argparse.Action):
    """``--version``, the installed version looked up only when asked for (reading the
    package metadata costs every other command ~30 ms of start-up)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from igrt.dicom.identity import software_version

        print(f"igrt {software_version()}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igrt", description=__doc__,
                                     parents=[_log_options("info")])
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="show the program's version number and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    sub_options = _log_options(argparse.SUPPRESS)

    serve = sub.add_parser("serve", help="run the service in the foreground",
                           parents=[sub_options])
    serve.add_argument("--config", type=Path, help="TOML file (default: built-in defaults)")

    register = sub.add_parser("register", help="register offline; print one correction message",
                              parents=[sub_options])
    register.add_argument("--planning", type=Path, required=True,
                          help="directory with the planning CT, RT Plan (and RT Structure Set)")
    register.add_argument("--cbct", type=Path, required=True,
                          help="directory with the CBCT series (and a Spatial Registration)")
    register.add_argument("--config", type=Path)
    register.add_argument("--plan", help="SOP Instance UID of the plan, if there are several")
    register.add_argument("--isocenter", type=int,
                          help="index of the isocentre, if the plan has several")

    listen = sub.add_parser("listen", help="print the feed as a console would see it",
                            parents=[sub_options])
    listen.add_argument("--config", type=Path)
    listen.add_argument("--count", type=int, default=0,
                        help="stop after this many new correction messages, not counting the "
                             "latest one shown at start (0 = never)")
    listen.add_argument("--timeout", type=float, default=0.0,
                        help="stop after this many seconds (0 = never)")
    _client_key_options(listen)
    listen.add_argument("--pretty", action="store_true",
                        help="blocks for a human (patient, plan, status, reasons, the six "
                             "numbers, the review URL; decisions) instead of topic<TAB>json")

    operators = sub.add_parser("operators", help="manage who may approve on the review page",
                               parents=[sub_options])
    operators_sub = operators.add_subparsers(dest="operators_command", required=True)
    add = operators_sub.add_parser("add", help="add an operator with a PIN (asked twice, or "
                                                "read from standard input with --pin-stdin)")
    add.add_argument("name", help="the operator's name as shown in decisions")
    add.add_argument("--file", type=Path, required=True, help="the operators file ([ui] "
                                                               "operators_file)")
    add.add_argument("--pin-stdin", action="store_true", help="read the PIN from stdin")

    demo = sub.add_parser("demo", help="send a phantom case to a running service and show the "
                                       "correction received beside the known answer",
                          parents=[sub_options])
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

    qa_cli.add_parsers(sub, parents=[sub_options])
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
    from services.curve import ClientKeys

    return ClientKeys.load(server_key=server_key, client_key=args.client_key)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``igrt`` command (``argv``: its arguments, default ``sys.argv[1:]``); returns
    its exit status."""
    return _command_and_status(argv)[1]


def _command_and_status(argv: Sequence[str] | None) -> tuple[str, int]:
    if not faulthandler.is_enabled():  # a crash in native code (ITK, a decoder): a traceback
        with contextlib.suppress(OSError, ValueError, RuntimeError):  # no file behind stderr
            faulthandler.enable()
    _small_pages()
    args = _parser().parse_args(join_negative_values(
        sys.argv[1:] if argv is None else argv, ("--expected",)))
    configure(args.log_level)
    command = str(args.command)
    if command == "operators":
        return command, _add_operator(args)
    try:
        config = load_config(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"igrt: configuration error: {exc.message}", file=sys.stderr)
        return command, 2
    return command, _run(args, config)


def program() -> NoReturn:
    """The ``igrt`` program (the console script): :func:`main`, then the exit. The commands of
    :data:`QUICK_EXIT` leave without tearing the interpreter down."""
    command, code = _command_and_status(sys.argv[1:])
    if command in QUICK_EXIT:
        _exit_now(code)
    sys.exit(code)


#: Commands that end without tearing the interpreter down: they have printed their result,
#: joined the threads whose work it is and closed their files (``igrt register``: the planning
#: thread is joined in ``OfflineRegistration``; a helper thread still smoothing a guess ahead
#: has nothing to leave behind; nothing is registered with ``atexit``), and what is left
#: is freeing the volumes and unloading ITK and NumPy one object at a time (0.15-0.2 s of a
#: ~3 s ``igrt register``, measured).
QUICK_EXIT = frozenset({"register"})


def _exit_now(code: int) -> NoReturn:
    """Flush what is buffered (the message on stdout, the log, C's own stdio buffers) and
    leave with ``code``; a status 0 whose message could not be written (stdout closed or
    broken) becomes 120, Python's own status for that."""
    logging.shutdown()
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        code = code or 120
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)  # what native code (elastix's log) printed
    os._exit(code)


def _small_pages() -> None:
    """NumPy's large arrays in ordinary 4 KiB pages, unless ``NUMPY_MADVISE_HUGEPAGE`` says
    otherwise. NumPy asks the kernel for huge pages (``madvise``) for every array over 4 MB; with
    the kernel's default ``defrag = madvise`` a fresh one is then compacted for synchronously:
    a CBCT volume (94 MB) took 0.27-0.32 s to fault in here, against 0.06 s in 4 KiB pages, and
    the service assembled each CBCT into fresh memory (``cbct_s`` 0.26-0.35 s, then
    0.07-0.11 s)."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return
    setter = madvise_hugepage_setter()
    if setter is not None:
        setter(False)


def madvise_hugepage_setter() -> Callable[[bool], bool] | None:
    """NumPy's switch for its huge-page advice (it returns the previous setting): in
    ``numpy._core.multiarray`` from NumPy 2, ``numpy.core.multiarray`` before; None if absent."""
    import importlib

    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            setter = getattr(importlib.import_module(module), "_set_madvise_hugepage", None)
        except ImportError:
            continue
        if callable(setter):
            return cast("Callable[[bool], bool]", setter)
    return None


def _run(args: argparse.Namespace, config: Config) -> int:
    if args.command == "register":
        return _register(args, config)
    if args.command == "serve":
        from services.app import serve

        return serve(config)
    if args.command == "keys":
        from services.keys import create_keys

        return create_keys(args.dir, readers=args.reader, controllers=args.control)
    if args.command == "qa":
        return qa_cli.main(args, config)
    if args.command in ("listen", "demo"):
        try:
            keys = client_keys(args, config)
        except ConfigError as exc:
            print(f"igrt {args.command}: {exc.message}", file=sys.stderr)
            return 2
        if args.command == "listen":
            from services.listen import listen

            return listen(config, count=args.count, timeout_s=args.timeout, pretty=args.pretty,
                          keys=keys)
        from services.demo import demo

        return demo(config, shift=args.shift, position=args.position, size=args.size, keys=keys)
    raise AssertionError(args.command)


def _register(args: argparse.Namespace, config: Config) -> int:
    """Print the message on stdout; exit 0 with a correction (ok or review), 1 when failed, 2
    on a usage error (a directory missing, empty, or the two swapped). Each directory is
    scanned once: the usage checks read the registration's scans. The CBCT directory is read
    in a child process (``igrt.planning.cbct_aside``) while the planning directory is scanned
    and its planning side prepared."""
    with no_cycle_collection():
        return _register_unguarded(args, config)


def _register_unguarded(args: argparse.Namespace, config: Config) -> int:
    # SimpleITK's library loaded while pydicom is imported (the dynamic loader runs beside
    # Python), the thread joined before anything else, whatever happens: the CBCT child is
    # forked with no other thread running (none may be inside the loader then)
    loading = load_simpleitk_beside()
    try:
        from igrt.dicom.files import scan
        from igrt.planning.cbct_aside import CbctAside
    finally:
        if loading is not None:
            loading.join()

    found: dict[str, ScanResult] = {}
    keep_freed_memory()
    problem = register_usage_problem(args.planning, args.cbct)
    if problem is not None:
        print(f"igrt register: {problem}", file=sys.stderr)
        return USAGE_EXIT
    # before the registration's imports (SimpleITK's module code, the pipeline), which the
    # child does not need: it reads while they are made
    aside = CbctAside(args.cbct)
    try:
        found["--planning"] = scan(args.planning, keep_datasets=True)
        from igrt.offline import OfflineRegistration

        problem = register_contents_problem(args.planning, args.cbct, found)
        if problem is None:
            run = OfflineRegistration(args.planning, config, plan_uid=args.plan,
                                      isocenter_index=args.isocenter,
                                      planning_found=found["--planning"])
    except BaseException:
        aside.cancel()  # the child is not left behind
        raise
    if problem is not None:
        aside.cancel()
        print(f"igrt register: {problem}", file=sys.stderr)
        return USAGE_EXIT
    run.cbct_grid(aside.grid())  # the planning side is prepared for it while the child assembles
    read = aside.result()
    found["--cbct"] = read.found if read is not None else scan(args.cbct, keep_datasets=True)
    problem = register_contents_problem(args.planning, args.cbct, found)
    if problem is not None:
        run.cancel()
        print(f"igrt register: {problem}", file=sys.stderr)
        return USAGE_EXIT
    message = run.register(args.cbct, cbct_found=found["--cbct"],
                           cbct_series=read.series if read is not None else None)
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


def register_usage_problem(planning: Path, cbct: Path) -> str | None:
    """A sentence naming the argument when the paths cannot be the two directories."""
    for flag, path in (("--planning", planning), ("--cbct", cbct)):
        if not path.exists():
            return f"{flag} {path}: no such directory"
        if not path.is_dir():
            return f"{flag} {path} is not a directory"
    if planning.resolve() == cbct.resolve():
        return (f"--planning and --cbct both name {planning}; give the planning set and the CBCT "
                "in two directories")
    return None


def register_contents_problem(planning: Path, cbct: Path,
                              found: dict[str, ScanResult]) -> str | None:
    """A sentence naming the argument when the directories scanned so far (``found`` by flag:
    ``--planning``, then also ``--cbct``) cannot be what they are given as: empty of what igrt
    reads, or the two swapped."""
    for flag, path in (("--planning", planning), ("--cbct", cbct)):
        f = found.get(flag)
        if f is not None and not (f.image_series or f.rt_plans or f.structure_sets
                                  or f.registrations):
            return f"{flag} {path} holds no DICOM file igrt reads (CT, RT Plan, RT Structure Set)"
    if "--cbct" in found and not found["--planning"].rt_plans and found["--cbct"].rt_plans:
        return (f"--planning {planning} holds no RT Plan but --cbct {cbct} does: are --planning "
                "and --cbct swapped?")
    return None


if __name__ == "__main__":
    raise SystemExit(main())
