"""Logging of the ``igrt`` command: one configuration, on stderr.

* Level from ``-v`` (debug) or ``--log-level``; INFO by default.
* pynetdicom logs a line per PDU and per C-STORE at INFO; those are off unless the level is
  DEBUG (the Storage SCP writes one summary line per association instead).
* Run by systemd with stderr connected to the journal (``$JOURNAL_STREAM`` names stderr's
  device and inode), each line starts with its syslog priority (``<3>`` error, ``<4>`` warning,
  ``<6>`` info, ``<7>`` debug: sd-daemon(3)) and carries no time stamp (the journal adds it), so
  ``journalctl -p warning -u igrt@TB1`` shows the warnings.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error")
QUIET_LIBRARIES = ("pynetdicom",)
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"


def priority(levelno: int) -> int:
    """The syslog priority of a logging level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """Prefixes every line of a record (tracebacks too) with ``<priority>``."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def stderr_is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """``$JOURNAL_STREAM`` (``device:inode``) names this stream's file (systemd.exec(5))."""
    value = environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return bool(inode) and (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError):
        return False


def configure(level: str = "info", *, stream: TextIO | None = None,
              environ: Mapping[str, str] | None = None) -> None:
    """Configure the root logger once for the process."""
    out = stream if stream is not None else sys.stderr
    env = os.environ if environ is None else environ
    handler = logging.StreamHandler(out)
    if stderr_is_journal(out, env):
        handler.setFormatter(JournalFormatter(JOURNAL_FORMAT))
    else:
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if numeric <= logging.DEBUG
                                         else logging.WARNING)
