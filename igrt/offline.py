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

import numpy as np

from igrt import pipeline
from igrt.config import Config
from igrt.core.errors import IgrtError
from igrt.core.image_series import ImageSeries
from igrt.core.matching import select_isocenter
from igrt.core.messages import correction_message
from igrt.dicom.files import ScanResult
from igrt.planning.directory import DirectoryCbct, DirectoryPlanning
from igrt.registration.reference import Grid
from igrt.registration.reference_cache import ReferenceCache

log = logging.getLogger(__name__)


def register_offline(planning_dir: Path, cbct_dir: Path, config: Config, *,
                     plan_uid: str | None = None, isocenter_index: int | None = None,
                     planning_found: ScanResult | None = None,
                     cbct_found: ScanResult | None = None) -> dict[str, Any]:
    """The correction message for one CBCT; refusals become a ``failed`` message.
    ``planning_found``, ``cbct_found``: the directories' scans (``scan(directory,
    keep_datasets=True)``) when the caller made them already; else they are scanned here."""
    cbct = DirectoryCbct(cbct_dir, found=cbct_found)
    planning = DirectoryPlanning(planning_dir, cbct=cbct, plan_uid=plan_uid,
                                 found=planning_found)
    references = ReferenceCache(config.registration.planning_cache_mb * 1024 * 1024)
    grid: _GridBox = _GridBox()
    ahead = threading.Thread(target=_prepare_ahead, name="igrt-planning-ahead",
                             args=(planning, config, references, plan_uid, isocenter_index, grid))
    ahead.start()
    loaded: _Loaded | None = None
    try:
        loaded = _Loaded(cbct)
    finally:  # the planning thread waits for the grid: it gets None if reading the CBCT broke
        grid.put(loaded.grid if loaded is not None else None)
    ahead.join()
    outcome = pipeline.run(loaded, planning, config, isocenter_index=isocenter_index,
                           references=references, keep_levels=False)
    return correction_message(outcome, room=config.room, dof=config.couch.dof, seq=0)


class _GridBox:
    """The CBCT's voxel grid, handed from the main thread to the planning thread."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._grid: Grid | None = None

    def put(self, grid: Grid | None) -> None:
        self._grid = grid
        self._ready.set()

    def get(self) -> Grid | None:
        self._ready.wait()
        return self._grid


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

    @property
    def grid(self) -> Grid | None:
        if self._series is None:
            return None
        volume = self._series.volume
        return (volume.spacing_mm, np.asarray(volume.direction, dtype=np.float64))

    def load(self) -> ImageSeries:
        if self._error is not None:
            raise self._error
        assert self._series is not None
        return self._series


def _prepare_ahead(planning: DirectoryPlanning, config: Config, references: ReferenceCache,
                   plan_uid: str | None, isocenter_index: int | None, grid: _GridBox) -> None:
    """Prepare the directory's one plan (the chosen one) if it is unambiguous; anything
    unusual is left to the pipeline, which names it. The planning CT is read while the CBCT
    is; it is prepared for the CBCT's grid once that is known."""
    try:
        plans = [p for p in planning.plans("") if plan_uid in (None, p.sop_instance_uid)]
        if len(plans) != 1:
            return
        plan = plans[0]
        if isocenter_index is None and len(plan.isocenters_mm) != 1:
            return
        structure_sets = planning.structure_sets(plan)
        ct_id = planning.planning_ct(plan, structure_sets, cbct=None)
        iso = select_isocenter(plan, index=isocenter_index)
        planning.load_planning_ct(ct_id, around_mm=pipeline.planning_box(iso, config))
        cbct_grid = grid.get()
        if cbct_grid is None:
            return  # the CBCT cannot be read: the pipeline says why
        reference, _ = pipeline.reference_for(planning, plan, structure_sets, config, cbct=None,
                                              isocenter_index=isocenter_index,
                                              references=references, keep_levels=False,
                                              cbct_grid=cbct_grid)
        reference.warm(*cbct_grid)
    except Exception as exc:  # noqa: BLE001 - a head start only: the pipeline reports problems
        log.debug("planning side not prepared ahead: %s: %s", type(exc).__name__, exc)
