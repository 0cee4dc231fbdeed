"""Trend charts of the QA report (matplotlib, drawn on a private Agg canvas: no global pyplot
state, safe on any thread). One chart per axis: the differences over time, coloured by level,
the tolerance band, the action level and the SPC limits (mean ± 3σ of the last 20 runs)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure

from igrt.core.qa import SpcLimits

LEVEL_COLOURS = {"pass": "#2e7d32", "warning": "#ef8f00", "fail": "#c62828"}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def trend_chart(title: str, points: Sequence[tuple[str, float | None, str]], *,
                tolerance: float | None, action: float, spc: SpcLimits | None,
                one_sided: bool = False) -> bytes:
    """A PNG: ``points`` are (ISO time, difference, level), oldest first."""
    fig = Figure(figsize=(7.0, 2.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    shown = [(_when(t), v, level) for t, v, level in points if v is not None]
    if tolerance is not None:
        lo = 0.0 if one_sided else -tolerance
        ax.axhspan(lo, tolerance, color="#e8f5e9", zorder=0, label=f"tolerance ±{tolerance:g}")
        for sign in ((1,) if one_sided else (1, -1)):
            ax.axhline(sign * tolerance, color="#c62828", lw=1.0)
            ax.axhline(sign * action * tolerance, color="#ef8f00", lw=0.9, ls="--",
                       label=f"action {action:.0%}" if sign == 1 else None)
    if shown:
        when = date2num([p[0] for p in shown])
        ax.plot(when, [p[1] for p in shown], color="#607d8b", lw=0.8, zorder=2)
        ax.scatter(when, [p[1] for p in shown], zorder=3, s=22,
                   c=[LEVEL_COLOURS.get(p[2], "#000000") for p in shown])
        ax.xaxis_date()
    if spc is not None:
        ax.axhline(spc.mean, color="#1565c0", lw=0.9, ls=":", label=f"mean {spc.mean:+.2f}")
        for value in (spc.lower, spc.upper):
            ax.axhline(value, color="#1565c0", lw=0.9, ls="-.")
        ax.plot([], [], color="#1565c0", ls="-.", label=f"SPC ±3σ (last {spc.n})")
    if not shown:
        ax.text(0.5, 0.5, "no measured runs", transform=ax.transAxes, ha="center",
                va="center", color="#777777")
    ax.set_title(title, fontsize=9, loc="left")
    ax.tick_params(labelsize=7)
    ax.grid(True, color="#dddddd", lw=0.5)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, loc="upper left", ncols=4, frameon=False)
    fig.autofmt_xdate()
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
