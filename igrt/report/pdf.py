"""The QA report as PDF (reportlab's platypus: flowing tables and images, A4 landscape)."""

from __future__ import annotations

import io
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Image,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.flowables import Flowable

from igrt.core.errors import QaError
from igrt.core.qa import AXES, VECTOR
from igrt.report.document import AXIS_TITLES, Report

LEVEL_FILL = {"pass": colors.HexColor("#c8e6c9"), "warning": colors.HexColor("#ffe0b2"),
              "fail": colors.HexColor("#ffcdd2")}


def _image(png: bytes, width_mm: float) -> Image:
    image = Image(io.BytesIO(png))
    scale = width_mm * mm / image.imageWidth
    image.drawWidth, image.drawHeight = width_mm * mm, image.imageHeight * scale
    return image


def _text(value: object) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _story(report: Report) -> list[Flowable]:
    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["BodyText"].clone("small", fontSize=7, leading=8)
    c = report.counts
    story: list[Flowable] = [
        Paragraph(f"Physics QA report — room {_text(report.room)}", styles["Title"]),
        Paragraph(f"Generated {_text(report.generated)} by igrt "
                  f"{_text(report.software_version)}. Phantoms: "
                  f"{_text(', '.join(report.phantoms) or 'none')}. Engines: "
                  f"{_text(', '.join(report.engines) or 'none')}.", body),
    ]
    if report.tolerance_mm is not None:
        story.append(Paragraph(f"Tolerance {report.tolerance_mm:g} mm per axis and vector, "
                               f"{report.tolerance_deg:g}° per rotation; action level at 70 %. "
                               f"{len(report.rows)} runs: {c['pass']} pass, {c['warning']} "
                               f"warning, {c['fail']} fail.", body))
    axes = (*AXES, VECTOR)
    header = ["run", "time (UTC)", "phantom", "source", "status", "result",
              *(AXIS_TITLES[a] for a in axes)]
    data: list[list[object]] = [[Paragraph(f"<b>{_text(h)}</b>", small) for h in header]]
    style = [("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
             ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eceff1")),
             ("FONTSIZE", (0, 1), (-1, -1), 7), ("ALIGN", (6, 1), (-1, -1), "RIGHT")]
    for i, row in enumerate(report.rows, start=1):
        data.append([row.run_id, row.time[:19].replace("T", " "), Paragraph(_text(row.phantom),
                     small), row.source, row.status, row.level.upper(),
                     *("—" if row.differences[a] is None else f"{row.differences[a]:+.2f}"
                       for a in axes)])
        style.append(("BACKGROUND", (5, i), (5, i), LEVEL_FILL.get(row.level, colors.white)))
        for j, a in enumerate(axes, start=6):
            fill = LEVEL_FILL.get(row.axis_levels.get(a, ""))
            if fill is not None:
                style.append(("BACKGROUND", (j, i), (j, i), fill))
    story += [Spacer(1, 4 * mm), Table(data, repeatRows=1, style=TableStyle(style)),
              PageBreak(), Paragraph("Trends (difference measured − expected)",
                                     styles["Heading2"])]
    charts = [_image(ch.png, 105) for ch in report.charts]
    pairs = [charts[i:i + 2] + [""] * (2 - len(charts[i:i + 2])) for i in range(0, len(charts), 2)]
    story.append(Table(pairs))
    if report.latest is not None:
        latest = report.latest
        story += [PageBreak(), Paragraph(
            f"Latest run {int(latest.get('run_id', 0))}: {_text(latest.get('phantom'))}, "
            f"{_text(latest.get('time'))}, {_text(str(latest.get('level', '')).upper())}",
            styles["Heading2"])]
        for finding in latest.get("findings") or []:
            story.append(Paragraph(f"• {_text(finding)}", body))
        cells: list[object] = [Table([[_image(png, 56)], [Paragraph(_text(caption), small)]])
                               for caption, png in report.latest_images]
        grid = [cells[i:i + 3] + [""] * (3 - len(cells[i:i + 3]))
                for i in range(0, len(cells), 3)]
        if grid:
            story.append(Table(grid))
        else:
            story.append(Paragraph("No fused images (the registration failed).", body))
    return story


def write_pdf(report: Report, path: Path) -> None:
    doc = SimpleDocTemplate(str(path), pagesize=landscape(A4), leftMargin=12 * mm,
                            rightMargin=12 * mm, topMargin=12 * mm, bottomMargin=12 * mm,
                            title=f"igrt QA report {report.room}", author="igrt")
    try:
        doc.build(_story(report))
    except OSError as exc:
        raise QaError(f"{path} cannot be written: {exc.strerror}") from exc
