"""services.logs: journald priority prefixes exactly when stderr is the journal, pynetdicom's
per-PDU lines off at INFO."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.logs import JournalFormatter, configure, priority, stderr_is_journal


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = logging.getLogger("pynetdicom").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("pynetdicom").setLevel(quiet)


@pytest.mark.parametrize(("level", "expected"), [
    (logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6),
    (logging.DEBUG, 7)])
def test_priorities_are_syslog_levels(level: int, expected: int) -> None:
    assert priority(level) == expected


def test_every_line_of_a_record_carries_the_prefix() -> None:
    record = logging.LogRecord("igrt.x", logging.WARNING, __file__, 1, "two\nlines", None, None)
    text = JournalFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert text.splitlines() == ["<4>WARNING igrt.x: two", "<4>lines"]


def test_journal_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    with (tmp_path / "stderr").open("w") as stream:
        st = os.fstat(stream.fileno())
        assert stderr_is_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not stderr_is_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not stderr_is_journal(stream, {})
        assert not stderr_is_journal(stream, {"JOURNAL_STREAM": "garbage"})


def test_under_the_journal_lines_have_priorities_and_no_time(tmp_path: Path) -> None:
    path = tmp_path / "stderr"
    with path.open("w") as stream:
        st = os.fstat(stream.fileno())
        configure("info", stream=stream, environ={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        logging.getLogger("igrt.test").warning("disk low")
        logging.getLogger("igrt.test").debug("not shown")
    assert path.read_text() == "<4>WARNING igrt.test: disk low\n"


def test_pynetdicom_is_quiet_at_info_and_speaks_at_debug() -> None:
    out = io.StringIO()
    configure("info", stream=out, environ={})
    logging.getLogger("pynetdicom.assoc").info("Received Store Request")
    logging.getLogger("pynetdicom.assoc").warning("a real problem")
    assert "Received Store Request" not in out.getvalue()
    assert "a real problem" in out.getvalue()
    configure("debug", stream=out, environ={})
    logging.getLogger("pynetdicom.assoc").info("Received Store Request")
    assert "Received Store Request" in out.getvalue()
