"""What a QA report shows, assembled once for both formats: the summary rows (one per run, the
six differences and the vector coloured by level), the trend charts per axis (tolerance band,
action level, SPC limits of the last 20 runs), and the latest run with its fused images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from igrt.core.clock import now_text
from igrt.core.errors import QaError
from igrt.core.qa import ACTION_FRACTION, AXES, SPC_WINDOW, VECTOR, SpcLimits, spc_limits
from igrt.report.charts import trend_chart

#: Axis titles, in table and chart order.
AXIS_TITLES = {
    "lateral_mm": "Lateral (mm)", "longitudinal_mm": "Longitudinal (mm)",
    "vertical_mm": "Vertical (mm)", "pitch_deg": "Pitch (°)", "roll_deg": "Roll (°)",
    "rotation_deg": "Rotation (°)", VECTOR: "Vector (mm)",
}
#: The fused images of the latest run shown, in order: (image name, caption).
LATEST_IMAGES = tuple(
    (f"{view}_{kind}", f"{view} {caption}")
    for kind, caption in (("after_blend_bone", "after correction (blend, bone)"),
                          ("after_checker_bone", "after correction (checkerboard, bone)"),
                          ("before_blend_bone", "before correction (blend, bone)"))
    for view in ("axial", "coronal", "sagittal")
)


class RunRecord(Protocol):
    """A run of the history (``igrt.store.qa_history.QaRun`` is one)."""

    @property
    def message(self) -> Mapping[str, Any]: ...

    @property
    def images(self) -> Mapping[str, Path]: ...


@dataclass(frozen=True)
class Row:
    run_id: int
    time: str
    phantom: str
    source: str
    status: str
    level: str  # pass | warning | fail
    differences: dict[str, float | None]  # by axis (AXES and VECTOR)
    axis_levels: dict[str, str]
    findings: tuple[str, ...]


@dataclass(frozen=True)
class Chart:
    axis: str
    png: bytes
    spc: SpcLimits | None


@dataclass(frozen=True)
class Report:
    room: str
    generated: str
    software_version: str
    tolerance_mm: float | None
    tolerance_deg: float | None
    rows: tuple[Row, ...]
    charts: tuple[Chart, ...]
    latest: Mapping[str, Any] | None
    latest_images: tuple[tuple[str, bytes], ...]  # (caption, PNG)
    phantoms: tuple[str, ...]
    engines: tuple[str, ...]

    @property
    def counts(self) -> dict[str, int]:
        return {level: sum(r.level == level for r in self.rows)
                for level in ("pass", "warning", "fail")}


def build_report(runs: Sequence[RunRecord], *, room: str, version: str | None = None) -> Report:
    """The report of ``runs`` (oldest first)."""
    rows = tuple(_row(r.message) for r in runs)
    latest = runs[-1].message if runs else None
    tol_mm = float(latest["tolerance_mm"]) if latest else None
    tol_deg = float(latest["tolerance_deg"]) if latest else None
    charts = []
    for axis in (*AXES, VECTOR):
        points = [(r.time, r.differences[axis], r.level) for r in rows
                  if r.differences[axis] is not None]
        limit = tol_deg if axis.endswith("_deg") else tol_mm
        spc = spc_limits([p[1] for p in points if p[1] is not None], window=SPC_WINDOW)
        png = trend_chart(AXIS_TITLES[axis], points, tolerance=limit, action=ACTION_FRACTION,
                          spc=spc, one_sided=axis == VECTOR)
        charts.append(Chart(axis, png, spc))
    images: list[tuple[str, bytes]] = []
    if runs:
        for name, caption in LATEST_IMAGES:
            path = runs[-1].images.get(name)
            if path is not None:
                try:
                    images.append((caption, Path(path).read_bytes()))
                except OSError as exc:
                    raise QaError(f"the QA image {path} cannot be read: {exc.strerror}") from exc
    return Report(
        room=room, generated=now_text(),
        software_version=version or str((latest or {}).get("software_version", "unknown")),
        tolerance_mm=tol_mm, tolerance_deg=tol_deg, rows=rows, charts=tuple(charts),
        latest=latest, latest_images=tuple(images),
        phantoms=tuple(sorted({r.phantom for r in rows})),
        engines=tuple(sorted({str(r.message.get("engine")) for r in runs})),
    )


def _row(m: Mapping[str, Any]) -> Row:
    diff = m.get("difference") or {}
    differences: dict[str, float | None] = {a: diff.get(a) for a in AXES}
    differences[VECTOR] = m.get("vector_error_mm")
    return Row(run_id=int(m.get("run_id", 0)), time=str(m.get("time", "")),
               phantom=str(m.get("phantom") or m.get("patient_id") or "?"),
               source=str(m.get("source", "")), status=str(m.get("status", "")),
               level=str(m.get("level", "fail")), differences=differences,
               axis_levels={str(k): str(v) for k, v in (m.get("axes") or {}).items()},
               findings=tuple(str(f) for f in m.get("findings") or []))
