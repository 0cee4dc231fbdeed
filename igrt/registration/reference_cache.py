"""Prepared planning references kept in memory, least recently used evicted first, bounded by
the memory they hold (``[registration] planning_cache_mb``). The most recently used reference
is always kept, even alone over the bound: a patient's planning set is never evicted by itself.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from igrt.registration.reference import PlanningReference

log = logging.getLogger(__name__)


class ReferenceCache:
    """An LRU of :class:`PlanningReference` by a key that names the planning CT's content
    and everything the preparation depended on."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, PlanningReference] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> PlanningReference | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return found

    def put(self, key: Hashable, reference: PlanningReference) -> None:
        with self._lock:
            self._entries[key] = reference
            self._entries.move_to_end(key)
        self.trim()

    def get_or_build(self, key: Hashable,
                     build: Callable[[], PlanningReference]) -> PlanningReference:
        found = self.get(key)
        if found is None:
            found = build()
            self.put(key, found)
        return found

    def trim(self) -> None:
        """Evict least recently used references until the rest fit (levels made since a
        reference was added count too)."""
        with self._lock:
            while len(self._entries) > 1 and self._total() > self.max_bytes:
                key, dropped = self._entries.popitem(last=False)
                log.info("planning CT %s evicted from the cache (%.0f MB)",
                         dropped.ct.series_uid, dropped.nbytes / 1e6)

    def _total(self) -> int:
        return sum(r.nbytes for r in self._entries.values())

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._total()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries
