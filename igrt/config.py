"""Service configuration: one TOML file, read once into frozen dataclasses, validated here only.

``load_config(path)`` reads the file with :mod:`tomllib`; ``parse_config(data)`` turns the parsed
tables into a :class:`Config` or raises :class:`~igrt.errors.ConfigError` with a message that
names the full dotted key (``dicom.port``, ``dicom.peers[1].role``,
``registration.roi_size_mm[2]``), what is wrong and what is allowed. Missing keys take the
built-in defaults, which are complete and safe (loopback only); a ``[[dicom.peers]]`` array in the
file replaces the default peer list as a whole.

The state directory is resolved here (not created): ``[storage] dir`` if given (absolute),
else ``$STATE_DIRECTORY`` (set by systemd's ``StateDirectory=``), else
``$XDG_STATE_HOME/igrt/<room>``, else ``~/.local/state/igrt/<room>``.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from igrt.errors import ConfigError

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=StrEnum)


class PeerRole(StrEnum):
    """What a calling AE may send (CONTRACT §3)."""

    IMAGING = "imaging"  # the linac console: CBCTs (and their Spatial Registrations)
    PLANNING = "planning"  # the planning system: planning CT, RT Plan, RT Structure Set


class CbctIsocenter(StrEnum):
    """Where the machine isocentre is in a CBCT that carries no link to the plan (CONTRACT §2)."""

    ORIGIN = "origin"  # at DICOM (0, 0, 0) of the CBCT
    CENTER = "center"  # at the centre of the CBCT volume


class EngineName(StrEnum):
    SIMPLEITK = "simpleitk"
    ELASTIX = "elastix"


@dataclass(frozen=True)
class Peer:
    ae_title: str
    role: PeerRole


DEFAULT_PEERS: tuple[Peer, ...] = (
    Peer("LINAC", PeerRole.IMAGING),
    Peer("TPS", PeerRole.PLANNING),
)


@dataclass(frozen=True)
class DicomConfig:
    ae_title: str = "IGRT"
    host: str = "127.0.0.1"
    port: int = 11112  # 0 = let the OS pick a free port (tests)
    settle_s: float = 1.0
    peers: tuple[Peer, ...] = DEFAULT_PEERS

    def peer(self, calling_ae_title: str) -> Peer | None:
        """The configured peer for a calling AE title (leading/trailing spaces are not
        significant in DICOM AE titles), or None if it is not listed."""
        wanted = calling_ae_title.strip()
        return next((p for p in self.peers if p.ae_title == wanted), None)


@dataclass(frozen=True)
class ZmqConfig:
    publish: str = "tcp://127.0.0.1:5556"
    command: str = "tcp://127.0.0.1:5557"
    heartbeat_s: float = 1.0


@dataclass(frozen=True)
class StorageConfig:
    dir: Path  # absolute; resolved from the environment when the file leaves it empty


@dataclass(frozen=True)
class CouchConfig:
    dof: int = 6  # 6 = all axes, 4 = translations + rotation (yaw), 3 = translations


@dataclass(frozen=True)
class RegistrationConfig:
    cbct_isocenter: CbctIsocenter = CbctIsocenter.ORIGIN
    engine: EngineName = EngineName.SIMPLEITK
    cross_check: EngineName | None = None  # second engine; disagreement -> review
    cross_check_tolerance_mm: float = 0.5
    cross_check_tolerance_deg: float = 0.3
    roi_size_mm: tuple[float, float, float] = (160.0, 160.0, 120.0)  # LPS x, y, z extents
    roi_structure: str | None = None  # RT Structure Set ROI Name used as registration region
    perturbation_check: bool = True  # rerun from a perturbed start; landing elsewhere -> review
    perturbation_tolerance_mm: float = 0.5
    perturbation_tolerance_deg: float = 0.3
    seed: int = 20261121


@dataclass(frozen=True)
class ReviewConfig:
    max_translation_mm: float = 10.0  # length of the translation vector
    max_rotation_deg: float = 3.0  # magnitude of any single rotation


@dataclass(frozen=True)
class Config:
    room: str
    dicom: DicomConfig
    zmq: ZmqConfig
    storage: StorageConfig
    couch: CouchConfig
    registration: RegistrationConfig
    review: ReviewConfig


DEFAULT_ROOM = "TB1"

# Limits. Where the contract gives none, the bound rejects values that would silently switch a
# check off (a cross-check tolerance of 50 mm checks nothing) or cannot be meant (a 1e9 s settle).
PORT_MAX = 65535
SETTLE_MAX_S = 3600.0
HEARTBEAT_MIN_S = 0.1
HEARTBEAT_MAX_S = 2.0  # CONTRACT §4: a heartbeat at least every 2 s
ROI_MIN_MM = 20.0
ROI_MAX_MM = 600.0
CHECK_TOLERANCE_MAX_MM = 5.0
CHECK_TOLERANCE_MAX_DEG = 3.0
REVIEW_MAX_MM = 100.0
REVIEW_MAX_DEG = 30.0
SEED_MAX = 2**32 - 1  # engines take an unsigned 32-bit seed
COUCH_DOFS = (3, 4, 6)
ROI_NAME_MAX = 64  # DICOM VR LO

_ROOM_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)
_TCP_RE = re.compile(r"tcp://(?P<host>\[[^\]]*\]|[^:/\[\]]+):(?P<port>\*|[0-9]{1,5})")
_IPC_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
_WILDCARD_HOSTS = {"*", "0.0.0.0", "[::]"}


# --- public API ----------------------------------------------------------------------------------
def default_config(*, environ: Mapping[str, str] | None = None) -> Config:
    """The built-in configuration: loopback only, peers LINAC (imaging) and TPS (planning)."""
    return parse_config({}, environ=environ)


def load_config(path: Path | None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML file; ``None`` gives :func:`default_config`."""
    if path is None:
        return default_config(environ=environ)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration file {path} is a directory, not a file") from None
    except PermissionError:
        raise ConfigError(f"configuration file {path} cannot be read: permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"configuration file {path} is not UTF-8 text (byte {exc.start}); TOML must be UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc.strerror}") from None
    try:
        return parse_config(data, environ=environ)
    except ConfigError as exc:
        raise ConfigError(f"configuration file {path}: {exc.message}") from None


def parse_config(data: Mapping[str, Any], *, environ: Mapping[str, str] | None = None) -> Config:
    """Validate parsed TOML tables (missing keys take defaults) and build the :class:`Config`."""
    env = os.environ if environ is None else environ
    root = _Section(data, "", Config)
    room = root.string("room", DEFAULT_ROOM)
    if not _ROOM_RE.fullmatch(room):
        raise ConfigError(
            f"room: {room!r} is not a valid room name; use 1 to 32 letters, digits, '_' or '-'"
        )
    return Config(
        room=room,
        dicom=_parse_dicom(root.section("dicom", DicomConfig)),
        zmq=_parse_zmq(root.section("zmq", ZmqConfig)),
        storage=_parse_storage(root.section("storage", StorageConfig), env, room),
        couch=_parse_couch(root.section("couch", CouchConfig)),
        registration=_parse_registration(root.section("registration", RegistrationConfig)),
        review=_parse_review(root.section("review", ReviewConfig)),
    )


def default_state_dir(environ: Mapping[str, str], room: str) -> Path:
    """Where the store lives when ``[storage] dir`` is empty (see the module docstring)."""
    state = environ.get("STATE_DIRECTORY", "")
    if state:
        # systemd joins several StateDirectory= entries with ':'; the first is ours.
        first = Path(state.split(":")[0])
        if first.is_absolute():
            return first
        logger.warning("ignoring $STATE_DIRECTORY=%r: not an absolute path", state)
    xdg = environ.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore relative paths
        return Path(xdg) / "igrt" / room
    home = environ.get("HOME", "")
    base = Path(home) if home and Path(home).is_absolute() else Path.home()
    return base / ".local" / "state" / "igrt" / room


def config_to_toml(cfg: Config) -> str:
    """A TOML document that :func:`parse_config` reads back to ``cfg`` (storage dir explicit)."""
    reg = cfg.registration
    tables: list[tuple[str, dict[str, object]]] = [
        ("", {"room": cfg.room}),
        ("[dicom]", {k: v for k, v in vars(cfg.dicom).items() if k != "peers"}),
        *(("[[dicom.peers]]", vars(p)) for p in cfg.dicom.peers),
        ("[zmq]", vars(cfg.zmq)),
        ("[storage]", {"dir": str(cfg.storage.dir)}),
        ("[couch]", vars(cfg.couch)),
        (
            "[registration]",
            {
                **vars(reg),
                "cross_check": reg.cross_check or "none",
                "roi_structure": reg.roi_structure or "",
            },
        ),
        ("[review]", vars(cfg.review)),
    ]
    lines: list[str] = []
    for header, values in tables:
        lines += [header] if header else []
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


# --- sections ------------------------------------------------------------------------------------
def _parse_dicom(t: _Section) -> DicomConfig:
    ae_title = t.string("ae_title")
    _check_ae_title(ae_title, t.key("ae_title"))
    host = t.string("host")
    _check_host(host, t.key("host"))
    return DicomConfig(
        ae_title=ae_title,
        host=host,
        port=t.integer("port", 0, PORT_MAX, note="(0 = let the system pick a free port)"),
        settle_s=t.number("settle_s", 0.0, SETTLE_MAX_S),
        peers=_parse_peers(t.data["peers"]) if "peers" in t.data else DEFAULT_PEERS,
    )


def _parse_peers(value: Any) -> tuple[Peer, ...]:
    if not isinstance(value, list):
        raise ConfigError(
            f"dicom.peers: expected an array of tables ([[dicom.peers]] sections), "
            f"got {_describe(value)}"
        )
    peers: list[Peer] = []
    first_use: dict[str, str] = {}
    for i, item in enumerate(value):
        t = _Section(item, f"dicom.peers[{i}]", Peer, title="[[dicom.peers]]")
        for name in ("ae_title", "role"):
            if name not in t.data:
                raise ConfigError(f"{t.key(name)}: missing; every [[dicom.peers]] table needs it")
        ae_title = t.string("ae_title")
        _check_ae_title(ae_title, t.key("ae_title"))
        if ae_title in first_use:
            raise ConfigError(
                f"{t.key('ae_title')}: {ae_title!r} is already used by {first_use[ae_title]}; "
                f"each peer AE title may appear once"
            )
        first_use[ae_title] = t.key("ae_title")
        peers.append(Peer(ae_title, t.enum("role", PeerRole)))
    for role in PeerRole:
        if not any(p.role is role for p in peers):
            raise ConfigError(
                f"dicom.peers: no peer has role {role.value!r}, so the service could never "
                f'receive what that role sends; add a [[dicom.peers]] table with role = "{role}"'
            )
    return tuple(peers)


def _parse_zmq(t: _Section) -> ZmqConfig:
    publish, command = t.string("publish"), t.string("command")
    _check_endpoint(publish, t.key("publish"))
    _check_endpoint(command, t.key("command"))
    if _endpoints_clash(publish, command):
        raise ConfigError(
            f"zmq.command: {command!r} is the same address as zmq.publish ({publish!r}); "
            f"the command socket needs its own address"
        )
    note = "(the contract requires a heartbeat at least every 2 s)"
    heartbeat_s = t.number("heartbeat_s", HEARTBEAT_MIN_S, HEARTBEAT_MAX_S, note=note)
    return ZmqConfig(publish=publish, command=command, heartbeat_s=heartbeat_s)


def _parse_storage(t: _Section, env: Mapping[str, str], room: str) -> StorageConfig:
    raw = t.string("dir", "")
    if not raw:
        return StorageConfig(dir=default_state_dir(env, room))
    path = Path(raw)
    if "\0" in raw or not path.is_absolute():
        raise ConfigError(
            f"storage.dir: {raw!r} is not an absolute path; give an absolute path such as "
            f"/var/lib/igrt/{room}, or leave it empty to use the default state directory"
        )
    state = env.get("STATE_DIRECTORY", "")
    if state and Path(state.split(":")[0]) != path:
        logger.warning(
            "storage.dir %s overrides $STATE_DIRECTORY %s; under the systemd unit's "
            "ProtectSystem=strict it must also be listed in ReadWritePaths=",
            path,
            state,
        )
    return StorageConfig(dir=path)


def _parse_couch(t: _Section) -> CouchConfig:
    dof = t.integer("dof", min(COUCH_DOFS), max(COUCH_DOFS))
    if dof not in COUCH_DOFS:
        raise ConfigError(
            f"couch.dof: {dof} is not a couch type; allowed 6 (all axes), "
            f"4 (translations + rotation about the vertical axis) or 3 (translations only)"
        )
    return CouchConfig(dof=dof)


def _parse_registration(t: _Section) -> RegistrationConfig:
    engine = t.enum("engine", EngineName)
    cross_check = _cross_check(t, engine)
    roi_structure = t.string("roi_structure", "")
    _check_roi_name(roi_structure, t.key("roi_structure"))
    return RegistrationConfig(
        cbct_isocenter=t.enum("cbct_isocenter", CbctIsocenter),
        engine=engine,
        cross_check=cross_check,
        cross_check_tolerance_mm=t.positive("cross_check_tolerance_mm", CHECK_TOLERANCE_MAX_MM),
        cross_check_tolerance_deg=t.positive("cross_check_tolerance_deg", CHECK_TOLERANCE_MAX_DEG),
        roi_size_mm=_roi_size(t),
        roi_structure=roi_structure or None,
        perturbation_check=t.boolean("perturbation_check"),
        perturbation_tolerance_mm=t.positive("perturbation_tolerance_mm", CHECK_TOLERANCE_MAX_MM),
        perturbation_tolerance_deg=t.positive(
            "perturbation_tolerance_deg", CHECK_TOLERANCE_MAX_DEG
        ),
        seed=t.integer("seed", 0, SEED_MAX),
    )


def _cross_check(t: _Section, engine: EngineName) -> EngineName | None:
    value = t.string("cross_check", "none")
    if value == "none":
        return None
    other = t.enum("cross_check", EngineName, extra=("none",))
    if other is engine:
        alternative = next(e for e in EngineName if e is not engine)
        raise ConfigError(
            f"{t.key('cross_check')}: {value!r} is also registration.engine, and the same engine "
            f"run twice cannot disagree; use {alternative.value!r} or 'none'"
        )
    return other


def _roi_size(t: _Section) -> tuple[float, float, float]:
    key, value = t.key("roi_size_mm"), t.get("roi_size_mm")
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ConfigError(
            f"{key}: expected an array of 3 numbers (x, y, z extents in mm), got {_describe(value)}"
        )
    x, y, z = (_check_number(v, f"{key}[{i}]", ROI_MIN_MM, ROI_MAX_MM) for i, v in enumerate(value))
    return (x, y, z)


def _parse_review(t: _Section) -> ReviewConfig:
    return ReviewConfig(
        max_translation_mm=t.positive("max_translation_mm", REVIEW_MAX_MM),
        max_rotation_deg=t.positive("max_rotation_deg", REVIEW_MAX_DEG),
    )


# --- typed reading -------------------------------------------------------------------------------
class _Section:
    """One TOML table: its dotted key, its known keys (the dataclass fields) and their defaults."""

    def __init__(self, data: Any, key: str, schema: type, *, title: str | None = None) -> None:
        self.path = key
        title = title or (f"[{key}]" if key else "the top level")
        if not isinstance(data, Mapping):
            raise ConfigError(f"{key or 'configuration'}: expected a table, got {_describe(data)}")
        known = [f.name for f in fields(schema)]
        for name in data:
            if name not in known:
                close = difflib.get_close_matches(str(name), known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(
                    f"{self.key(str(name))}: unknown key; {hint}"
                    f"the keys of {title} are {', '.join(known)}"
                )
        self.data: Mapping[str, Any] = data
        # Defaults of the dataclass fields that have one (StorageConfig.dir has none).
        self.defaults = {f.name: f.default for f in fields(schema) if f.default is not MISSING}

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, default: Any = MISSING) -> Any:
        if name in self.data:
            return self.data[name]
        return self.defaults[name] if default is MISSING else default

    def section(self, name: str, schema: type) -> _Section:
        return _Section(self.data.get(name, {}), self.key(name), schema)

    def string(self, name: str, default: Any = MISSING) -> str:
        value = self.get(name, default)
        if not isinstance(value, str):
            raise ConfigError(f"{self.key(name)}: expected a string, got {_describe(value)}")
        return value

    def boolean(self, name: str) -> bool:
        value = self.get(name)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected true or false, got {_describe(value)}")
        return value

    def integer(self, name: str, lo: int, hi: int, *, note: str = "") -> int:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.key(name)}: expected an integer, got {_describe(value)}")
        if not lo <= value <= hi:
            raise ConfigError(
                f"{self.key(name)}: {value} is out of range; allowed {lo} to {hi} {note}".rstrip()
            )
        return value

    def number(self, name: str, lo: float, hi: float, *, note: str = "") -> float:
        return _check_number(self.get(name), self.key(name), lo, hi, note=note)

    def positive(self, name: str, hi: float) -> float:
        return _check_number(self.get(name), self.key(name), 0.0, hi, above_lo=True)

    def enum(self, name: str, kind: type[E], *, extra: Sequence[str] = ()) -> E:
        value = self.string(name, getattr(self.defaults.get(name), "value", MISSING))
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(repr(v) for v in [*(m.value for m in kind), *extra])
            raise ConfigError(
                f"{self.key(name)}: {value!r} is not allowed; use one of {choices}"
            ) from None


def _check_number(
    value: Any, key: str, lo: float, hi: float, *, above_lo: bool = False, note: str = ""
) -> float:
    """An integer or float (not a boolean), finite, in ``[lo, hi]`` (``(lo, hi]`` if above_lo)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {_describe(value)}")
    number = float(value)
    in_range = (lo < number if above_lo else lo <= number) and number <= hi
    if not (math.isfinite(number) and in_range):
        allowed = f"greater than {lo:g} and at most {hi:g}" if above_lo else f"{lo:g} to {hi:g}"
        raise ConfigError(f"{key}: {value} is out of range; allowed {allowed} {note}".rstrip())
    return number


# --- value checks --------------------------------------------------------------------------------
def _check_ae_title(value: str, key: str) -> None:
    if not 1 <= len(value) <= 16:
        raise ConfigError(f"{key}: {value!r} has {len(value)} characters; an AE title has 1 to 16")
    bad = [c for c in value if not (" " <= c <= "~") or c == "\\"]
    if bad:
        raise ConfigError(
            f"{key}: {value!r} contains {bad[0]!r}; an AE title allows printable ASCII "
            f"characters except backslash"
        )
    if value != value.strip(" "):
        raise ConfigError(
            f"{key}: {value!r} starts or ends with a space; DICOM ignores those, "
            f"so write the AE title without them"
        )


def _check_roi_name(value: str, key: str) -> None:
    if len(value) > ROI_NAME_MAX or any(c == "\\" or ord(c) < 32 for c in value):
        raise ConfigError(
            f"{key}: {value!r} cannot be a DICOM ROI Name; it holds at most {ROI_NAME_MAX} "
            f"characters, no backslash or control characters"
        )
    if value != value.strip(" "):
        raise ConfigError(
            f"{key}: {value!r} starts or ends with a space; DICOM ignores those, "
            f"so write the ROI Name without them"
        )


def _check_host(value: str, key: str) -> None:
    if not (_is_ip(value) or _HOSTNAME_RE.fullmatch(value)):
        raise ConfigError(
            f"{key}: {value!r} is neither an IP address nor a host name; use e.g. 127.0.0.1 "
            f"(loopback only), 0.0.0.0 (all interfaces) or the address of one interface"
        )


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _check_endpoint(value: str, key: str) -> None:
    allowed = (
        "use tcp://HOST:PORT (HOST an IP address, [IPv6 address], host name, interface or *; "
        "PORT a number, or * for a free port) or ipc:///absolute/path"
    )
    if value.startswith("ipc://"):
        path = value[len("ipc://") :]
        if (
            not path.startswith(("/", "@"))
            or "\0" in path
            or not 2 <= len(path.encode()) <= _IPC_PATH_MAX
        ):
            raise ConfigError(
                f"{key}: {value!r} needs an absolute socket path (ipc:///run/igrt/TB1/pub) or an "
                f"abstract name (ipc://@name), at most {_IPC_PATH_MAX} bytes"
            )
        return
    match = _TCP_RE.fullmatch(value)
    if match is None:
        raise ConfigError(f"{key}: {value!r} is not a ZeroMQ endpoint; {allowed}")
    host, port = match["host"], match["port"]
    if host.startswith("["):
        host_ok = ":" in host and _is_ip(host[1:-1])
    else:
        host_ok = host == "*" or _is_ip(host) or bool(_HOSTNAME_RE.fullmatch(host))
    if not host_ok:
        raise ConfigError(f"{key}: {host!r} in {value!r} is not a usable host; {allowed}")
    if port != "*" and int(port) > PORT_MAX:
        raise ConfigError(f"{key}: port {port} in {value!r} is out of range; allowed 0 to 65535")


def _endpoints_clash(a: str, b: str) -> bool:
    """Would binding both fail (the same ipc path, or one TCP port on overlapping hosts)?"""
    ma, mb = _TCP_RE.fullmatch(a), _TCP_RE.fullmatch(b)
    if ma is None or mb is None:
        return a == b
    if "*" in (ma["port"], mb["port"]) or 0 in (int(ma["port"]), int(mb["port"])):
        return False  # free ports are distinct
    ha, hb = ma["host"].lower(), mb["host"].lower()
    wildcard = ha in _WILDCARD_HOSTS or hb in _WILDCARD_HOSTS
    return int(ma["port"]) == int(mb["port"]) and (ha == hb or wildcard)


# --- formatting ----------------------------------------------------------------------------------
def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int | float):
        return f"{'an integer' if isinstance(value, int) else 'a float'} ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, datetime | date | time):
        return f"a date/time ({value.isoformat()})"
    return f"a {type(value).__name__}"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".e") else text + ".0"
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value)  # strings and StrEnum members
    escaped = "".join(
        f"\\u{ord(c):04x}" if ord(c) < 32 or ord(c) == 127 or c in '"\\' else c for c in text
    )
    return f'"{escaped}"'
