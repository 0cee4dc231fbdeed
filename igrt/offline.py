"""``igrt register``: one planning directory and one CBCT directory in, one ``correction``
message out (CONTRACT §4–5). Offline messages are not part of the service's feed: their ``seq``
is 0.

The planning side is prepared while the CBCT is read: the directory's plan is known before the
CBCT is, so its planning CT is read, cropped, masked and its pyramid made on a second thread
(most of that work runs outside Python's lock, in numpy and SimpleITK), and the pipeline finds
it prepared. Whether that plan is the right one is decided afterwards exactly as without the
head start (a plan of another patient is refused, several plans need ``--plan``).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from igrt import pipeline
from igrt.config import Config
from igrt.core.errors import IgrtError
from igrt.core.image_series import ImageSeries
from igrt.core.messages import correction_message
from igrt.planning.directory import DirectoryCbct, DirectoryPlanning
from igrt.registration.reference_cache import ReferenceCache

log = logging.getLogger(__name__)


def register_offline(planning_dir: Path, cbct_dir: Path, config: Config, *,
                     plan_uid: str | None = None,
                     isocenter_index: int | None = None) -> dict[str, Any]:
    """The correction message for one CBCT; refusals become a ``failed`` message."""
    cbct = DirectoryCbct(cbct_dir)
    planning = DirectoryPlanning(planning_dir, cbct=cbct, plan_uid=plan_uid)
    references = ReferenceCache(config.registration.planning_cache_mb * 1024 * 1024)
    ahead = threading.Thread(target=_prepare_ahead, name="igrt-planning-ahead",
                             args=(planning, config, references, plan_uid, isocenter_index))
    ahead.start()
    loaded = _Loaded(cbct)
    ahead.join()
    outcome = pipeline.run(loaded, planning, config, isocenter_index=isocenter_index,
                           references=references, keep_levels=False)
    return correction_message(outcome, room=config.room, dof=config.couch.dof, seq=0)


class _Loaded:
    """The CBCT, read while the planning side was being prepared (a CbctSource that hands
    over the series, or the refusal, it met)."""

    def __init__(self, source: DirectoryCbct) -> None:
        self._error: IgrtError | None = None
        self._series: ImageSeries | None = None
        try:
            self._series = source.load()
        except IgrtError as exc:
            self._error = exc

    @property
    def series_uid(self) -> str | None:
        return self._series.info.series_uid if self._series is not None else None

    def load(self) -> ImageSeries:
        if self._error is not None:
            raise self._error
        assert self._series is not None
        return self._series


def _prepare_ahead(planning: DirectoryPlanning, config: Config, references: ReferenceCache,
                   plan_uid: str | None, isocenter_index: int | None) -> None:
    """Prepare the directory's one plan (the chosen one) if it is unambiguous; anything
    unusual is left to the pipeline, which names it."""
    try:
        plans = [p for p in planning.plans("") if plan_uid in (None, p.sop_instance_uid)]
        if len(plans) != 1:
            return
        plan = plans[0]
        if isocenter_index is None and len(plan.isocenters_mm) != 1:
            return
        structure_sets = planning.structure_sets(plan)
        reference, _ = pipeline.reference_for(planning, plan, structure_sets, config, cbct=None,
                                              isocenter_index=isocenter_index,
                                              references=references, keep_levels=False)
        reference.warm()
    except Exception as exc:  # noqa: BLE001 - a head start only: the pipeline reports problems
        log.debug("planning side not prepared ahead: %s: %s", type(exc).__name__, exc)
