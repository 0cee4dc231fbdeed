"""A value that starts with '-' reaches argparse as the option's value, nothing else changes."""

from __future__ import annotations

import pytest

from igrt.core.argv import join_negative_values


@pytest.mark.parametrize(("argv", "joined"), [
    (["qa", "run", "--expected", "-5,0,0,0,0,0"], ["qa", "run", "--expected=-5,0,0,0,0,0"]),
    (["--expected", "5,0,0"], ["--expected", "5,0,0"]),
    (["--expected"], ["--expected"]),
    (["--other", "-1", "--expected", "-2"], ["--other", "-1", "--expected=-2"]),
    (["--expected=-1"], ["--expected=-1"]),
])
def test_a_negative_value_is_joined_to_its_option(argv: list[str], joined: list[str]) -> None:
    assert join_negative_values(argv, ("--expected",)) == joined
