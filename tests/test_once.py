"""``igrt.registration.once``: each value made once, by whichever thread asks first."""

from __future__ import annotations

import threading

import pytest

from igrt.registration.once import Once


def test_a_value_is_made_once_and_a_thread_asking_meanwhile_waits_for_it() -> None:
    once = Once()
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow() -> list[int]:
        calls.append(threading.current_thread().name)
        started.set()
        assert release.wait(10)
        return [1, 2]

    got: dict[str, object] = {}
    first = threading.Thread(target=lambda: got.setdefault("first", once.get("k", slow)))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lambda: got.setdefault("second", once.get("k", slow)))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waiting for the first thread's value, not making its own
    release.set()
    first.join(10)
    second.join(10)
    assert len(calls) == 1
    assert got["first"] is got["second"]
    assert once.get("k", slow) is got["first"]
    assert once.get("other", lambda: [3]) == [3]


def test_an_error_is_kept_for_every_caller() -> None:
    once = Once()
    calls = 0

    def broken() -> int:
        nonlocal calls
        calls += 1
        raise ValueError("no pixels")

    for _ in range(2):
        with pytest.raises(ValueError, match="no pixels"):
            once.get("k", broken)
    assert calls == 1
