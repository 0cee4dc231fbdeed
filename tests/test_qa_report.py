"""igrt.report: the QA history as PDF (rendered with poppler's pdftoppm) and HTML (opened in a
real headless Chromium); every page must show something, the HTML must carry its images."""

from __future__ import annotations

import base64
import io
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import chromium
from PIL import Image

from igrt.report.document import LATEST_IMAGES, build_report
from igrt.report.html import render_html, write_html
from igrt.report.pdf import write_pdf
from igrt.store.qa_history import QaHistory

AXES = ("lateral_mm", "longitudinal_mm", "vertical_mm", "pitch_deg", "roll_deg", "rotation_deg")


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def message(n: int, diff_mm: float, level: str) -> dict[str, Any]:
    diff = {a: (diff_mm if a.endswith("_mm") else diff_mm / 4) for a in AXES}
    return {"schema": "igrt/qa/v1", "time": f"2026-11-{n + 1:02d}T07:{n:02d}:00.000Z",
            "room": "TB1", "source": "command_line", "passed": level != "fail", "level": level,
            "expected": {a: 0.0 for a in AXES}, "measured": diff, "difference": diff,
            "vector_error_mm": round(abs(diff_mm) * 3 ** 0.5, 2), "tolerance_mm": 1.0,
            "tolerance_deg": 0.5, "axes": {a: level for a in AXES}, "findings": [],
            "phantom": "<iq_cylinder>", "status": "ok", "engine": "simpleitk",
            "software_version": "0.1.0"}


@pytest.fixture
def history(tmp_path: Path) -> QaHistory:
    h = QaHistory.open(tmp_path / "state")
    levels = ["pass"] * 20 + ["warning", "fail"]
    for n, level in enumerate(levels):
        diff = {"pass": 0.1 * (n % 5 - 2), "warning": 0.8, "fail": -1.6}[level]
        images = {name: png(k) for k, (name, _) in enumerate(LATEST_IMAGES)} \
            if n == len(levels) - 1 else {}
        h.append_run(message(n, diff, level), images)
    return h


def not_blank(image: Image.Image) -> bool:
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    return bool(grey.std() > 3.0 and (grey < 200).mean() > 0.005)


def test_pdf_pages_render_and_are_not_blank(history: QaHistory, tmp_path: Path) -> None:
    out = tmp_path / "qa.pdf"
    write_pdf(build_report(history.runs(), room="TB1"), out)
    proc = subprocess.run(["pdftoppm", "-r", "40", "-png", str(out), str(tmp_path / "page")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 3  # summary, trends, latest images
    for page in pages:
        assert not_blank(Image.open(page)), f"{page.name} is blank"


def test_html_carries_the_table_charts_and_images(history: QaHistory, tmp_path: Path) -> None:
    report = build_report(history.runs(), room="TB1")
    html = render_html(report)
    assert "&lt;iq_cylinder&gt;" in html and "<iq_cylinder>" not in html  # escaped
    assert html.count("<tr>") == 1 + 22
    assert "class='text fail'" in html and "class='text warning'" in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 7 + len(LATEST_IMAGES)  # a chart per axis and the vector
    for data in images:
        assert not_blank(Image.open(io.BytesIO(base64.b64decode(data))))
    spc = {c.axis: c.spc for c in report.charts}
    assert spc["vector_mm"] is not None and spc["vector_mm"].n == 20


def test_html_renders_in_a_browser(history: QaHistory, tmp_path: Path) -> None:
    out = tmp_path / "qa.html"
    write_html(build_report(history.runs(), room="TB1"), out)
    with chromium() as browser:
        browser.get(out.as_uri())
        loaded = browser.execute_script(
            "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0)"
            ".length")
        shot = Image.open(io.BytesIO(browser.get_screenshot_as_png()))
    assert loaded == 7 + len(LATEST_IMAGES)
    assert not_blank(shot)


def test_an_empty_history_still_gives_a_report(tmp_path: Path) -> None:
    with QaHistory.open(tmp_path) as h:
        report = build_report(h.runs(), room="TB1")
    write_pdf(report, tmp_path / "empty.pdf")
    assert (tmp_path / "empty.pdf").read_bytes().startswith(b"%PDF")
    assert "0 runs" in render_html(report)
