"""Values made once per key, by whichever thread asks first; a thread asking meanwhile waits
for that value (or its error) instead of making it again. Threads asking for other keys never
wait for it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar, cast

_T = TypeVar("_T")


class Once:
    """A cache, safe across threads, where each value is made exactly once. An error is kept
    too (every caller of that key gets it), unless ``keep_errors`` is False: then the callers
    waiting meanwhile get it and the next caller makes the value again."""

    def __init__(self, *, keep_errors: bool = True) -> None:
        self._keep_errors = keep_errors
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
                if not self._keep_errors:
                    with self._lock:
                        del self._made[key]
                found.set_exception(exc)
        return cast(_T, found.result())

    def __contains__(self, key: Hashable) -> bool:
        """Whether the value of ``key`` is made or being made."""
        with self._lock:
            return key in self._made

    def made(self) -> list[tuple[Hashable, Any]]:
        """The values made so far (not those being made, nor errors), with their keys."""
        with self._lock:
            futures = list(self._made.items())
        return [(key, future.result()) for key, future in futures
                if future.done() and future.exception() is None]
