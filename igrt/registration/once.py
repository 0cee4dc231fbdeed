"""Values made once per key, by whichever thread asks first; a thread asking meanwhile waits
for that value (or its error) instead of making it again."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar, cast

_T = TypeVar("_T")


class Once:
    """A cache, safe across threads, where each value is made exactly once. An error is kept
    too: every caller of that key gets it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[Hashable, Future[Any]] = {}

    def get(self, key: Hashable, make: Callable[[], _T]) -> _T:
        with self._lock:
            found = self._made.get(key)
            mine = found is None
            if found is None:
                found = self._made[key] = Future()
        if mine:
            try:
                found.set_result(make())
            except BaseException as exc:  # noqa: BLE001 - kept for every caller, raised below
                found.set_exception(exc)
        return cast(_T, found.result())
