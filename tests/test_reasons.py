"""igrt.core.reasons: one vocabulary of reason codes, documented in the README and used by every
error class."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import igrt.core.errors as errors
import phantoms.generator
from igrt.core.errors import IgrtError
from igrt.core.reasons import ReasonCode, code_of, reason

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_codes() -> list[str]:
    text = README.read_text()
    section = text[text.index("### Reason codes"):]
    section = section[:section.index("\n## ")]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)


def test_the_readme_table_lists_exactly_the_reason_codes() -> None:
    listed = readme_codes()
    assert len(listed) == len(set(listed)), "a code is listed twice"
    assert set(listed) == {c.value for c in ReasonCode}


def all_error_classes() -> list[type[IgrtError]]:
    found: list[type[IgrtError]] = []
    todo: list[type[IgrtError]] = [IgrtError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_class_has_its_own_code() -> None:
    classes = [c for c in all_error_classes() if c.__module__ in (errors.__name__,
                                                                    phantoms.generator.__name__)]
    assert len(classes) > 40
    codes = [c.code for c in classes]
    assert all(isinstance(code, ReasonCode) for code in codes)
    assert len(codes) == len(set(codes)), "two error classes share a code"


def test_every_error_class_lives_in_the_one_errors_module() -> None:
    elsewhere = {c.__qualname__ for c in all_error_classes()
                 if c.__module__ not in (errors.__name__, phantoms.generator.__name__)
                 and not c.__module__.startswith("test")}
    assert elsewhere == set()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        pytest.param("unstable: a restart differs", ReasonCode.UNSTABLE, id="known"),
        pytest.param("no_plan:x", ReasonCode.NO_PLAN, id="no-space"),
        pytest.param("bogus: sentence", None, id="unknown-code"),
        pytest.param("no code at all", None, id="no-colon"),
    ],
)
def test_code_of(text: str, code: ReasonCode | None) -> None:
    assert code_of(text) is code


def test_reason_is_code_colon_sentence() -> None:
    assert reason(ReasonCode.AT_BOUND, "too far") == "at_bound: too far"
    assert IgrtError("x").reason == "error: x"
