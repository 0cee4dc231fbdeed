"""Physics QA runs (CONTRACT §9), for ``igrt qa run`` and the service alike: a registered
phantom CBCT and the offset it was acquired at become an ``igrt/qa/v1`` message (scored by
``igrt.core.qa``) and the fused images kept with it in the QA history
(``igrt.store.qa_history``).

The images are the review panels (``igrt.review``) a physicist looks at: the three planes after
the correction (blend and checkerboard, bone and soft-tissue windows) and before it (blend, bone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from igrt import pipeline
from igrt.config import Config
from igrt.core.case import Registered
from igrt.core.clock import now_text
from igrt.core.geometry import CouchCorrection
from igrt.core.messages import correction_message
from igrt.core.qa import Tolerance, correction_from, qa_message, score
from igrt.planning.directory import DirectoryCbct, DirectoryPlanning
from igrt.review.png import encode
from igrt.review.render import render

log = logging.getLogger(__name__)

#: The review panels kept with a QA run (``<view>_<stage>_<mode>_<preset>``).
KEPT_PANELS = tuple(
    f"{view}_{kind}"
    for view in ("axial", "coronal", "sagittal")
    for kind in ("after_blend_bone", "after_checker_bone", "after_blend_soft",
                 "before_blend_bone")
)

Progress = Callable[[str], None]


def software_version() -> str:
    try:
        return metadata.version("igrt")
    except metadata.PackageNotFoundError:
        return "unknown"


def tolerance_of(config: Config) -> Tolerance:
    return Tolerance(tolerance_mm=config.qa.tolerance_mm, tolerance_deg=config.qa.tolerance_deg)


def engine_of(config: Config) -> str:
    reg = config.registration
    return str(reg.engine) + (f" (cross-check {reg.cross_check})" if reg.cross_check else "")


def score_correction(correction: Mapping[str, Any], expected: CouchCorrection, config: Config, *,
                     source: str, phantom: str | None,
                     extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The QA message of one correction message (``measured`` compared with ``expected``)."""
    measured = correction.get("measured")
    reasons = [str(r) for r in correction.get("reasons") or []]
    tolerance = tolerance_of(config)
    result = score(expected, None if measured is None else correction_from(measured),
                   tolerance=tolerance, reasons=reasons)
    cbct = correction.get("cbct") or {}
    plan = correction.get("plan") or {}
    context: dict[str, Any] = {
        "phantom": phantom or correction.get("patient_id"),
        "patient_id": correction.get("patient_id"),
        "cbct": {"series_uid": cbct.get("series_uid"),
                 "acquisition_datetime": cbct.get("acquisition_datetime")},
        "plan": {"sop_instance_uid": plan.get("sop_instance_uid"), "label": plan.get("label"),
                 "patient_position": plan.get("patient_position")} if plan else None,
        "status": correction.get("status"),
        "reasons": reasons,
        "engine": engine_of(config),
        "software_version": software_version(),
        **(extra or {}),
    }
    return qa_message(result, tolerance=tolerance, time=now_text(), room=config.room,
                      source=source, context=context)


def fused_images(registered: Registered | None) -> dict[str, bytes]:
    """The kept review panels as PNG bytes ({} without a registration)."""
    if registered is None:
        return {}
    return {p.name: encode(p) for p in render(registered) if p.name in KEPT_PANELS}


def run_offline(planning_dir: Path, cbct_dir: Path, expected: CouchCorrection, config: Config, *,
                phantom: str | None, progress: Progress) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Register one phantom CBCT against its planning set and score it: the QA message (not yet
    in the history) and its fused images."""
    progress(f"registering the CBCT in {cbct_dir} to the planning set in {planning_dir} "
             f"({engine_of(config)})")
    cbct = DirectoryCbct(cbct_dir)
    planning = DirectoryPlanning(planning_dir, cbct=cbct)
    outcome = pipeline.run(cbct, planning, config)
    correction = correction_message(outcome, room=config.room, dof=config.couch.dof, seq=0)
    progress(f"registration {correction['status']}; scoring against the expected offset")
    registration = correction.get("registration") or {}
    message = score_correction(correction, expected, config, source="command_line",
                               phantom=phantom,
                               extra={"registration_s": registration.get("elapsed_s")})
    progress("rendering the fused images")
    images = fused_images(outcome.registered)
    return message, images
