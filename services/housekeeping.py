"""Housekeeping of the service (README "Operations"): the retention purge (``[storage]
keep_days``, at start-up and every hour) and the disk-space watermark (``[storage]
free_space_warning_mb``), read by every heartbeat.

The watermark warns before the disk is full, so C-STOREs are not the first to notice (they are
refused with ``0xA700`` once it is): below the watermark every heartbeat carries a
``low_disk_space`` warning, and the log says so once when it starts and once when it ends.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from igrt.config import Config
from igrt.core.reasons import ReasonCode, reason
from igrt.store import Store

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 3600.0
DISK_CHECK_INTERVAL_S = 5.0
MB = 1024 * 1024


def free_mb(path: Path) -> float:
    """Free space available to igrt (unprivileged) on the file system holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / MB


class DiskWatch:
    """``warnings()`` for the heartbeat: ``[]``, or one ``low_disk_space`` reason. The file
    system is read at most every ``interval_s``."""

    def __init__(self, path: Path, threshold_mb: int, *,
                 free: Callable[[Path], float] = free_mb,
                 clock: Callable[[], float] = time.monotonic,
                 interval_s: float = DISK_CHECK_INTERVAL_S) -> None:
        self._path = path
        self._threshold_mb = threshold_mb
        self._free = free
        self._clock = clock
        self._interval_s = interval_s
        self._checked_at: float | None = None
        self._warning: str | None = None
        self._lock = threading.Lock()

    def warnings(self) -> list[str]:
        if self._threshold_mb <= 0:
            return []
        with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._interval_s:
                self._checked_at = now
                self._check()
            return [] if self._warning is None else [self._warning]

    def _check(self) -> None:
        try:
            free = self._free(self._path)
        except OSError as exc:
            log.error("cannot read the free space of %s: %s", self._path, exc)
            return
        if free >= self._threshold_mb:
            if self._warning is not None:
                log.info("disk space under %s is back above the watermark (%.0f MB free)",
                         self._path, free)
            self._warning = None
            return
        text = reason(ReasonCode.LOW_DISK_SPACE,
                      f"{free:.0f} MB free under {self._path}, below [storage] "
                      f"free_space_warning_mb ({self._threshold_mb} MB); C-STOREs are refused "
                      "with 0xA700 when the disk is full: free space or set [storage] keep_days")
        if self._warning is None:
            log.warning("%s", text)
        self._warning = text


class Retention:
    """The purge thread: once at start-up, then every ``interval_s``; off when keep_days is 0."""

    def __init__(self, config: Config, store: Store, *,
                 interval_s: float = PURGE_INTERVAL_S) -> None:
        self._keep_days = config.storage.keep_days
        self._store = store
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._keep_days <= 0:
            log.info("retention off ([storage] keep_days = 0): received DICOM is kept")
            return
        self._thread = threading.Thread(target=self._run, name="igrt-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._store.purge_older_than(self._keep_days)
            except Exception:  # noqa: BLE001 - retry at the next interval; the log has it
                log.exception("retention: the purge failed; trying again in %g s",
                              self._interval_s)
            self._stop.wait(self._interval_s)
