"""The operators who may approve or reject on the review page, with their PINs stored hashed
(scrypt, a per-operator salt), from the file named by ``[ui] operators_file``::

    [[operator]]
    name = "J. Smith"
    pin = "scrypt:16384:8:1:<salt hex>:<hash hex>"

``igrt operators add NAME --file FILE`` writes such a line. A PIN is checked in constant time;
after :data:`MAX_FAILURES` wrong PINs an operator is locked out for :data:`LOCKOUT_S`, so a PIN
cannot be guessed by trying them all."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from igrt.core.errors import ConfigError, UnknownOperatorError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 16384, 8, 1
PIN_MIN_CHARS = 4
MAX_FAILURES = 5
LOCKOUT_S = 300.0
KEY = "ui.operators_file"


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """The stored form of a PIN."""
    if len(pin) < PIN_MIN_CHARS or not pin.isprintable():
        raise ValueError(f"a PIN needs at least {PIN_MIN_CHARS} printable characters")
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=32)
    return f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}:{salt.hex()}:{digest.hex()}"


def pin_matches(stored: str, pin: str) -> bool:
    """Whether ``pin`` is the PIN of ``stored`` (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split(":")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(bytes.fromhex(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, bytes.fromhex(digest))


def load_operators(path: Path) -> dict[str, str]:
    """Operator name -> stored PIN hash; a start-up error naming the key on any problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{KEY}: {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{KEY}: {path} cannot be read as TOML: {exc}") from None
    items = data.get("operator", [])
    unknown = sorted(set(data) - {"operator"})
    if unknown or not isinstance(items, list):
        raise ConfigError(f"{KEY}: {path} must hold only [[operator]] tables")
    out: dict[str, str] = {}
    for n, item in enumerate(items):
        name, pin = (item.get("name"), item.get("pin")) if isinstance(item, dict) else (None, None)
        if not isinstance(name, str) or not name.strip() or not isinstance(pin, str) \
                or not pin.startswith("scrypt:") or set(item) - {"name", "pin"}:
            raise ConfigError(f"{KEY}: operator[{n}] in {path} needs exactly a name and a pin "
                              "hash written by `igrt operators add`")
        if name.strip() in out:
            raise ConfigError(f"{KEY}: operator {name.strip()!r} appears twice in {path}")
        out[name.strip()] = pin
    return out


def operator_line(name: str, pin: str) -> str:
    """The TOML of one operator, to append to the operators file."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'[[operator]]\nname = "{escaped}"\npin = "{hash_pin(pin)}"\n'


@dataclass
class Operators:
    """The check of an operator's PIN, with the lock-out after repeated failures."""

    pins: dict[str, str]
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, name: str, pin: str) -> str:
        """The operator's name as registered, or :class:`UnknownOperatorError`."""
        name = name.strip()
        now = self.clock()
        with self._lock:
            recent = [t for t in self._failures.get(name, []) if now - t < LOCKOUT_S]
            self._failures[name] = recent
            if len(recent) >= MAX_FAILURES:
                raise UnknownOperatorError(
                    f"operator {name!r} is locked out after {MAX_FAILURES} wrong PINs; try "
                    f"again in {LOCKOUT_S - (now - recent[0]):.0f} s")
        stored = self.pins.get(name)
        if stored is not None and pin_matches(stored, pin):
            with self._lock:
                self._failures.pop(name, None)
            return name
        with self._lock:
            self._failures.setdefault(name, []).append(now)
        raise UnknownOperatorError("the operator name or the PIN is not recognised")
