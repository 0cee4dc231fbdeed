"""benchmarks/adversarial.py at small size, with the normal shift set: issue 9's acceptance on the
phantoms, through the code of ``igrt register`` (no silent wrong result, every findable case
found, at most one false review in the shift set, the checks' cost printed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "adversarial.py"


@pytest.mark.slow
def test_the_adversarial_benchmark_has_no_silent_wrong_result(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(BENCHMARK), "--size", "small", "--shift-set",
                           "--work", str(tmp_path)], capture_output=True, text=True,
                          timeout=900, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    assert re.search(r"^silent wrong: 0 of 11$", out, re.M), out
    found = re.search(r"^findable cases found within 0.5 mm / 0.3°: (\d+) of (\d+)$", out, re.M)
    assert found and found[1] == found[2] == "6", out
    false_review = re.search(r"^false review on the shift set: (\d+) of 13$", out, re.M)
    assert false_review and int(false_review[1]) <= 1, out
    for name in ("another body", "mirrored body"):
        row = next(line for line in out.splitlines() if line.strip().startswith(name))
        assert " review " in row and "poor_match" in row, row
    assert re.search(r"^match checks \(issue 9\) cost: median \d+\.\d{3} s", out, re.M), out
