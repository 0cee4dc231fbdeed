"""Typed reading of TOML tables and the value checks of the configuration: every refusal is a
:class:`~igrt.core.errors.ConfigError` naming the full dotted key, what is wrong and what is
allowed."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any, TypeVar

from igrt.config.model import PORT_MAX, ROI_NAME_MAX
from igrt.core.errors import ConfigError

E = TypeVar("E", bound=StrEnum)

ROOM_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)
_TCP_RE = re.compile(r"tcp://(?P<host>\[[^\]]*\]|[^:/\[\]]+):(?P<port>\*|[0-9]{1,5})")
_IPC_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
_WILDCARD_HOSTS = {"*", "0.0.0.0", "[::]"}


# --- typed reading -------------------------------------------------------------------------------
class Section:
    """One TOML table: its dotted key, its known keys (the dataclass fields) and their defaults."""

    def __init__(self, data: Any, key: str, schema: type, *, title: str | None = None) -> None:
        self.path = key
        title = title or (f"[{key}]" if key else "the top level")
        if not isinstance(data, Mapping):
            raise ConfigError(f"{key or 'configuration'}: expected a table, got {describe(data)}")
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

    def section(self, name: str, schema: type) -> Section:
        return Section(self.data.get(name, {}), self.key(name), schema)

    def string(self, name: str, default: Any = MISSING) -> str:
        value = self.get(name, default)
        if not isinstance(value, str):
            raise ConfigError(f"{self.key(name)}: expected a string, got {describe(value)}")
        return value

    def boolean(self, name: str) -> bool:
        value = self.get(name)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected true or false, got {describe(value)}")
        return value

    def integer(self, name: str, lo: int, hi: int, *, note: str = "") -> int:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.key(name)}: expected an integer, got {describe(value)}")
        if not lo <= value <= hi:
            raise ConfigError(
                f"{self.key(name)}: {value} is out of range; allowed {lo} to {hi} {note}".rstrip()
            )
        return value

    def number(self, name: str, lo: float, hi: float, *, note: str = "") -> float:
        return check_number(self.get(name), self.key(name), lo, hi, note=note)

    def positive(self, name: str, hi: float) -> float:
        return check_number(self.get(name), self.key(name), 0.0, hi, above_lo=True)

    def enum(self, name: str, kind: type[E], *, extra: Sequence[str] = ()) -> E:
        value = self.string(name, getattr(self.defaults.get(name), "value", MISSING))
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(repr(v) for v in [*(m.value for m in kind), *extra])
            raise ConfigError(
                f"{self.key(name)}: {value!r} is not allowed; use one of {choices}"
            ) from None


def check_number(
    value: Any, key: str, lo: float, hi: float, *, above_lo: bool = False, note: str = ""
) -> float:
    """An integer or float (not a boolean), finite, in ``[lo, hi]`` (``(lo, hi]`` if above_lo)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {describe(value)}")
    number = float(value)
    in_range = (lo < number if above_lo else lo <= number) and number <= hi
    if not (math.isfinite(number) and in_range):
        allowed = f"greater than {lo:g} and at most {hi:g}" if above_lo else f"{lo:g} to {hi:g}"
        raise ConfigError(f"{key}: {value} is out of range; allowed {allowed} {note}".rstrip())
    return number


# --- value checks --------------------------------------------------------------------------------
def check_ae_title(value: str, key: str) -> None:
    if not 1 <= len(value) <= 16:
        raise ConfigError(f"{key}: {value!r} has {len(value)} characters; an AE title has 1 to 16")
    bad = [c for c in value if not (" " <= c <= "~") or c == "\\"]
    if bad:
        raise ConfigError(
            f"{key}: {value!r} contains {bad[0]!r}; an AE title allows printable ASCII "
            f"characters except backslash"
        )
    _check_no_edge_spaces(value, key, "AE title")


def check_roi_name(value: str, key: str) -> None:
    if len(value) > ROI_NAME_MAX or any(c == "\\" or ord(c) < 32 for c in value):
        raise ConfigError(
            f"{key}: {value!r} cannot be a DICOM ROI Name; it holds at most {ROI_NAME_MAX} "
            f"characters, no backslash or control characters"
        )
    _check_no_edge_spaces(value, key, "ROI Name")


def _check_no_edge_spaces(value: str, key: str, what: str) -> None:
    if value != value.strip(" "):
        raise ConfigError(
            f"{key}: {value!r} starts or ends with a space; DICOM ignores those, "
            f"so write the {what} without them"
        )


def check_host(value: str, key: str) -> None:
    if not (is_ip(value) or _HOSTNAME_RE.fullmatch(value)):
        raise ConfigError(
            f"{key}: {value!r} is neither an IP address nor a host name; use e.g. 127.0.0.1 "
            f"(loopback only), 0.0.0.0 (all interfaces) or the address of one interface"
        )


def check_listen(value: str, key: str) -> None:
    """``HOST:PORT`` (``[IPv6]:PORT``) for an HTTP listener; port 0 = a free port."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not port.isdigit() or int(port) > PORT_MAX:
        raise ConfigError(f"{key}: {value!r} is not HOST:PORT (e.g. 127.0.0.1:8765; port 0 to "
                          f"{PORT_MAX})")
    check_host(host, key)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_network(value: str, key: str) -> str:
    """An IP address or a network in CIDR form (``10.20.30.0/24``), normalised."""
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ConfigError(
            f"{key}: {value!r} is neither an IP address nor a network in CIDR form; use e.g. "
            "10.20.30.41 (one machine) or 10.20.30.0/24 (a network)"
        ) from None
    return str(network)


def check_absolute_path(value: str, key: str, what: str) -> None:
    if not value or "\0" in value or not value.startswith("/"):
        raise ConfigError(f"{key}: {value!r} is not an absolute path; give the absolute path of "
                          f"{what}")


def check_endpoint(value: str, key: str) -> None:
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
        host_ok = ":" in host and is_ip(host[1:-1])
    else:
        host_ok = host == "*" or is_ip(host) or bool(_HOSTNAME_RE.fullmatch(host))
    if not host_ok:
        raise ConfigError(f"{key}: {host!r} in {value!r} is not a usable host; {allowed}")
    if port != "*" and int(port) > PORT_MAX:
        raise ConfigError(f"{key}: port {port} in {value!r} is out of range; allowed 0 to 65535")


def endpoints_clash(a: str, b: str) -> bool:
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
def describe(value: Any) -> str:
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


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".e") else text + ".0"
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    text = str(value)  # strings and StrEnum members
    escaped = "".join(
        f"\\u{ord(c):04x}" if ord(c) < 32 or ord(c) == 127 or c in '"\\' else c for c in text
    )
    return f'"{escaped}"'
