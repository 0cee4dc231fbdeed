"""CBCT instances decoded as they arrive: each stored file is parsed once, when the worker hears
of it, so that when the series is complete only the assembly check and the registration remain.

The store stays the record of truth: :meth:`CbctAssembler.assemble` takes the instances the
store holds for the series at that moment, reuses each one decoded earlier if its file is still
the one that was decoded (same inode, size and modification time: a re-sent instance replaces
its file by a new one), decodes the others now, and forgets what the store no longer lists.
Series that are never assembled (an aborted association) are dropped with
:meth:`CbctAssembler.discard`; at most ``max_series`` partial series are held, the least
recently fed is dropped first.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from igrt.core.errors import UnreadableError
from igrt.core.image_series import ImageSeries
from igrt.dicom.instance_decoder import DecodedInstance, decode_instance, read_file
from igrt.dicom.series_loader import assemble
from igrt.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Held:
    file: tuple[int, int, int]  # inode, size, modification time: a replaced file differs
    decoded: DecodedInstance


class CbctAssembler:
    """Decoded instances of the CBCT series being received, by series and file."""

    def __init__(self, store: Store, *, max_series: int = 4) -> None:
        self._store = store
        self._max_series = max_series
        self._series: OrderedDict[str, dict[Path, _Held]] = OrderedDict()
        self._lock = threading.Lock()
        #: how many instances of the last assembled series had been decoded as they arrived
        self.last_decoded_on_arrival = 0

    def add(self, series_uid: str, sop_instance_uid: str) -> None:
        """Decode one stored instance of ``series_uid`` (an ``instance`` event)."""
        record = self._store.instance(sop_instance_uid)
        if record is None or record.series_uid != series_uid:
            return  # not (or no longer) held under this series: the assembly will tell
        held = _decode(record.path)
        if held is None:
            return
        with self._lock:
            series = self._series.setdefault(series_uid, {})
            self._series.move_to_end(series_uid)
            series[record.path] = held
            while len(self._series) > self._max_series:
                dropped, _ = self._series.popitem(last=False)
                log.info("series %s: decoded instances dropped (too many partial series)",
                         dropped)

    def assemble(self, series_uid: str, *, release: bool = True) -> ImageSeries:
        """The volume of the instances the store holds for ``series_uid`` now; the decoded
        instances are released (a series is registered once) unless ``release`` is False
        (a registration ahead of time, which may have to be done again)."""
        with self._lock:
            known = self._series.pop(series_uid, {}) if release else \
                dict(self._series.get(series_uid, {}))
        decoded = []
        reused = 0
        for n, path in enumerate(self._store.series_instances(series_uid)):
            held = known.get(path)
            if held is not None and _same_file(path, held):
                decoded.append(held.decoded)
                reused += 1
            else:
                decoded.append(decode_instance(read_file(path), n))
        log.info("series %s: %d instances decoded on arrival, %d now", series_uid, reused,
                 len(decoded) - reused)
        self.last_decoded_on_arrival = reused
        return assemble(decoded)

    def discard(self, series_uid: str) -> None:
        with self._lock:
            self._series.pop(series_uid, None)

    def held_series(self) -> list[str]:
        with self._lock:
            return list(self._series)


def _decode(path: Path) -> _Held | None:
    try:
        file = _identity(path)  # before reading: a file replaced meanwhile is read again later
        decoded = decode_instance(read_file(path))
    except (OSError, UnreadableError) as exc:
        log.warning("%s could not be decoded on arrival (%s); it is read again at assembly",
                    path, exc)
        return None
    return _Held(file, decoded)


def _identity(path: Path) -> tuple[int, int, int]:
    stat = os.stat(path)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _same_file(path: Path, held: _Held) -> bool:
    try:
        return _identity(path) == held.file
    except OSError:
        return False
