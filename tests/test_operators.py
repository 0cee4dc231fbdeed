"""services.operators: PINs stored as scrypt hashes, checked in constant time, a lock-out after
repeated failures, and the operators file refused with the config key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from igrt.core.errors import ConfigError, UnknownOperatorError
from services.operators import (
    LOCKOUT_S,
    MAX_FAILURES,
    Operators,
    hash_pin,
    load_operators,
    operator_line,
    pin_matches,
)


def test_a_pin_is_stored_hashed_and_salted() -> None:
    a, b = hash_pin("2468"), hash_pin("2468")
    assert a != b and "2468" not in a  # a salt of its own, never the PIN itself
    assert pin_matches(a, "2468") and pin_matches(b, "2468")
    assert not pin_matches(a, "2469") and not pin_matches("garbage", "2468")
    with pytest.raises(ValueError, match="at least 4"):
        hash_pin("12")


def test_the_operators_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "operators.toml"
    path.write_text(operator_line("J. Smith", "2468") + operator_line('A "B"', "1357"))
    pins = load_operators(path)
    assert set(pins) == {"J. Smith", 'A "B"'}
    assert Operators(pins).verify(" J. Smith ", "2468") == "J. Smith"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param(None, "ui.operators_file: .* does not exist", id="missing"),
        pytest.param("[[operator]\n", "cannot be read as TOML", id="not-toml"),
        pytest.param('[[operator]]\nname = "A"\npin = "1234"\n', "needs exactly a name and a pin "
                     "hash", id="clear-pin"),
        pytest.param('[[operator]]\nname = "A"\n', "needs exactly a name", id="no-pin"),
        pytest.param('[other]\nx = 1\n', "only \\[\\[operator\\]\\] tables", id="other-table"),
    ],
)
def test_bad_operators_files_are_start_up_errors(tmp_path: Path, text: str | None,
                                                 error: str) -> None:
    path = tmp_path / "operators.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=error):
        load_operators(path)


def test_twice_the_same_operator_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "operators.toml"
    path.write_text(operator_line("A", "2468") * 2)
    with pytest.raises(ConfigError, match="'A' appears twice"):
        load_operators(path)


def test_wrong_pins_lock_the_operator_out_for_a_while() -> None:
    now = [100.0]
    ops = Operators({"A": hash_pin("2468")}, clock=lambda: now[0])
    for _ in range(MAX_FAILURES):
        with pytest.raises(UnknownOperatorError, match="not recognised"):
            ops.verify("A", "0000")
    with pytest.raises(UnknownOperatorError, match="locked out"):
        ops.verify("A", "2468")  # even the right PIN, while locked out
    now[0] += LOCKOUT_S + 1
    assert ops.verify("A", "2468") == "A"
    with pytest.raises(UnknownOperatorError, match="not recognised"):
        ops.verify("nobody", "2468")
