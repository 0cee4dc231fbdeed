"""The QA report as one self-contained HTML file (images embedded as data URIs, every value
escaped)."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from igrt.core.errors import QaError
from igrt.core.qa import AXES, VECTOR
from igrt.report.document import AXIS_TITLES, Report

_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:0.85em}
th,td{border:1px solid #bbb;padding:3px 6px;text-align:right}
th{background:#eceff1} td.text{text-align:left}
.pass{background:#c8e6c9}.warning{background:#ffe0b2}.fail{background:#ffcdd2}
img{max-width:100%}.charts img{width:48%;margin:0.5%}
.images figure{display:inline-block;margin:4px;width:31%}
.images img{width:100%} figcaption{font-size:0.8em}
"""


def _png(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{b64}">'


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def render_html(report: Report) -> str:
    axes = (*AXES, VECTOR)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>igrt QA report, room {escape(report.room)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Physics QA report — room {escape(report.room)}</h1>",
        "<p>", f"Generated {escape(report.generated)} by igrt "
        f"{escape(report.software_version)}.<br>",
        f"Phantoms: {escape(', '.join(report.phantoms) or 'none')}. "
        f"Engines: {escape(', '.join(report.engines) or 'none')}.<br>",
    ]
    if report.tolerance_mm is not None:
        parts.append(f"Tolerance {report.tolerance_mm:g} mm per axis and vector, "
                     f"{report.tolerance_deg:g}° per rotation; action level at 70 %.<br>")
    c = report.counts
    parts.append(f"{len(report.rows)} runs: {c['pass']} pass, {c['warning']} warning, "
                 f"{c['fail']} fail.</p>")
    parts.append("<h2>Runs</h2><table><tr><th>run</th><th>time (UTC)</th><th>phantom</th>"
                 "<th>source</th><th>status</th><th>result</th>"
                 + "".join(f"<th>{escape(AXIS_TITLES[a])}</th>" for a in axes) + "</tr>")
    for row in report.rows:
        cells = "".join(
            f"<td class='{escape(row.axis_levels.get(a, ''))}'>"
            f"{_number(row.differences[a])}</td>" for a in axes)
        parts.append(
            f"<tr><td>{row.run_id}</td><td class='text'>{escape(row.time)}</td>"
            f"<td class='text'>{escape(row.phantom)}</td><td class='text'>"
            f"{escape(row.source)}</td><td class='text'>{escape(row.status)}</td>"
            f"<td class='text {escape(row.level)}' title='{escape('; '.join(row.findings))}'>"
            f"{escape(row.level.upper())}</td>{cells}</tr>")
    parts.append("</table>")
    parts.append("<h2>Trends (difference measured − expected)</h2><div class='charts'>")
    parts += [_png(ch.png, f"trend {AXIS_TITLES[ch.axis]}") for ch in report.charts]
    parts.append("</div>")
    if report.latest is not None:
        latest = report.latest
        parts.append(f"<h2>Latest run: {int(latest.get('run_id', 0))} "
                     f"({escape(str(latest.get('phantom')))}, {escape(str(latest.get('time')))}, "
                     f"{escape(str(latest.get('level', '')).upper())})</h2>")
        findings = latest.get("findings") or []
        if findings:
            parts.append("<ul>" + "".join(f"<li>{escape(str(f))}</li>" for f in findings)
                         + "</ul>")
        parts.append("<div class='images'>")
        for caption, png in report.latest_images:
            parts.append(f"<figure>{_png(png, caption)}<figcaption>{escape(caption)}"
                         "</figcaption></figure>")
        if not report.latest_images:
            parts.append("<p>No fused images (the registration failed).</p>")
        parts.append("</div>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_html(report: Report, path: Path) -> None:
    try:
        Path(path).write_text(render_html(report), encoding="utf-8")
    except OSError as exc:
        raise QaError(f"{path} cannot be written: {exc.strerror}") from exc
