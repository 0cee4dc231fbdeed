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


def test_an_error_is_not_kept_when_asked_so_and_the_next_caller_makes_it_again() -> None:
    once = Once(keep_errors=False)
    calls = 0

    def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("no pixels yet")
        return 7

    with pytest.raises(ValueError, match="no pixels yet"):
        once.get("k", flaky)
    assert "k" not in once
    assert once.get("k", flaky) == 7 and calls == 2
    assert "k" in once and once.made() == [("k", 7)]


def test_a_value_made_is_handed_out_while_another_key_is_being_made() -> None:
    once = Once()
    assert once.get("made", lambda: 1) == 1
    started, release = threading.Event(), threading.Event()

    def slow() -> int:
        started.set()
        assert release.wait(10)
        return 2

    maker = threading.Thread(target=lambda: once.get("slow", slow))
    maker.start()
    assert started.wait(10)
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.append(once.get("made", lambda: -1)))
    reader.start()
    reader.join(5)
    assert got == [1]  # not waiting for the other key
    assert "slow" in once and [k for k, _ in once.made()] == ["made"]  # being made: not listed
    release.set()
    maker.join(10)
    assert dict(once.made()) == {"made": 1, "slow": 2}
