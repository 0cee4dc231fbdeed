"""``igrt register``: one planning directory and one CBCT directory in, one ``correction``
message out (CONTRACT §4–5). Offline messages are not part of the service's feed: their ``seq``
is 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from igrt import pipeline
from igrt.config import Config
from igrt.core.messages import correction_message
from igrt.planning.directory import DirectoryCbct, DirectoryPlanning


def register_offline(planning_dir: Path, cbct_dir: Path, config: Config, *,
                     plan_uid: str | None = None,
                     isocenter_index: int | None = None) -> dict[str, Any]:
    """The correction message for one CBCT; refusals become a ``failed`` message."""
    cbct = DirectoryCbct(cbct_dir)
    planning = DirectoryPlanning(planning_dir, cbct=cbct, plan_uid=plan_uid)
    outcome = pipeline.run(cbct, planning, config, isocenter_index=isocenter_index)
    return correction_message(outcome, room=config.room, dof=config.couch.dof, seq=0)
