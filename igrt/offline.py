"""``igrt register``: one planning directory and one CBCT directory in, one ``correction``
message out (CONTRACT §4–5). Offline messages are not part of the service's feed: their ``seq``
is 0.

The planning side is prepared while the CBCT is scanned and read: the directory's plan is known
before the CBCT is, so its planning CT is read, cropped, masked and its pyramid made on a second
thread (most of that work runs outside Python's lock, in numpy and SimpleITK), and the pipeline
finds it prepared. Whether that plan is the right one is decided afterwards exactly as without the
head start (a plan of another patient is refused, several plans need ``--plan``).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from igrt import pipeline
from igrt.config import Config
from igrt.config.model import EngineName
from igrt.core.errors import IgrtError
from igrt.core.image_series import ImageSeries
from igrt.core.matching import select_isocenter
from igrt.core.messages import correction_message
from igrt.core.nominal import nominal_alignment
from igrt.core.plan import Plan
from igrt.core.types import Grid
from igrt.dicom.files import ScanResult
from igrt.dicom.series_loader import assemble
from igrt.planning.directory import DirectoryCbct, DirectoryPlanning, header_grid
from igrt.registration.cbct_side import CbctSide, cbct_side
from igrt.registration.reference_cache import ReferenceCache
from igrt.registration.sitk_engine import warm_up

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def register_offline(planning_dir: Path, cbct_dir: Path, config: Config, *,
                     plan_uid: str | None = None, isocenter_index: int | None = None,
                     planning_found: ScanResult | None = None,
                     cbct_found: ScanResult | None = None) -> dict[str, Any]:
    """The correction message for one CBCT; refusals become a ``failed`` message.
    ``planning_found``, ``cbct_found``: the directories' scans (``scan(directory,
    keep_datasets=True)``) when the caller made them already; else they are scanned here."""
    run = OfflineRegistration(planning_dir, config, plan_uid=plan_uid,
                              isocenter_index=isocenter_index, planning_found=planning_found)
    return run.register(cbct_dir, cbct_found=cbct_found)


class OfflineRegistration:
    """``igrt register`` in two steps, so that the planning side is prepared while the CBCT
    directory is still being scanned and read: made with the planning directory (its
    preparation starts on a second thread), then :meth:`register` with the CBCT directory, or
    :meth:`cancel` when there is none (the command line found a usage error)."""

    def __init__(self, planning_dir: Path, config: Config, *, plan_uid: str | None = None,
                 isocenter_index: int | None = None,
                 planning_found: ScanResult | None = None) -> None:
        self._config = config
        self._isocenter_index = isocenter_index
        self._planning = DirectoryPlanning(planning_dir, plan_uid=plan_uid, found=planning_found)
        self._references = ReferenceCache(config.registration.planning_cache_mb * 1024 * 1024)
        self._grid: _Box[Grid] = _Box()
        self._built = threading.Event()
        self._stop = threading.Event()
        self._chosen: _Box[Plan] = _Box()  # the plan the planning thread prepares (or None)
        self._ahead = threading.Thread(
            target=_prepare_ahead, name="igrt-planning-ahead",
            args=(self._planning, config, self._references, plan_uid, isocenter_index,
                  self._grid, self._built, self._stop, self._chosen),
            daemon=True)  # never holds the process: it waits for a grid that may never come
        self._ahead.start()

    def register(self, cbct_dir: Path, *, cbct_found: ScanResult | None = None,
                 cbct_series: ImageSeries | None = None) -> dict[str, Any]:
        """The correction message for the CBCT of ``cbct_dir`` (``cbct_found``: its scan;
        ``cbct_series``: its one series, read already: ``igrt.planning.cbct_aside``)."""
        cbct = DirectoryCbct(cbct_dir, found=cbct_found)
        self._planning.attach_cbct(cbct)
        loaded: _Loaded | None = None
        try:
            loaded = _Loaded(cbct, self._grid, series=cbct_series)
        finally:  # the planning thread waits for the grid: it gets None if reading the CBCT broke
            self._grid.put(loaded.grid if loaded is not None else None)
            if loaded is None:
                self._ahead.join()
        # the registration starts once the planning side is built (its CBCT side is prepared
        # while the planning thread still makes the pyramid levels it will ask for); until
        # then SimpleITK's registration pays its one-time start-up here (its code paged in,
        # ~40-80 ms on this machine), which its first run would otherwise pay
        ahead: CbctSide | None = None
        if self._config.registration.engine == EngineName.SIMPLEITK:
            if not self._built.is_set():
                warm_up()
            ahead = self._cbct_side_ahead(loaded)
        self._built.wait()
        try:
            outcome = pipeline.run(loaded, self._planning, self._config,
                                   isocenter_index=self._isocenter_index,
                                   references=self._references, keep_levels=False,
                                   ahead=ahead)
        finally:
            self._ahead.join()
        return correction_message(outcome, room=self._config.room, dof=self._config.couch.dof,
                                  seq=0)

    def _cbct_side_ahead(self, loaded: _Loaded) -> CbctSide | None:
        """The registration's CBCT side, made while the planning thread still builds the
        planning side (this core is idle then), for the plan that thread prepares: the pipeline
        takes it only if it sets the CBCT up exactly so (``runner.prepare``). Whatever is
        unusual (no plan it could choose, a refusal) is left to the pipeline, which names it.
        The planning thread decides the plan before it reads the planning CT."""
        plan = self._chosen.get()
        if plan is None:
            return None
        reg = self._config.registration
        try:
            series = loaded.load()
            nominal = nominal_alignment(
                series, plan, np.asarray(select_isocenter(plan, index=self._isocenter_index)),
                self._planning.spatial_registrations(series.info), reg.cbct_isocenter)
            return cbct_side(series.volume, series.padding_mask, nominal.matrix,
                             reg.roi_size_mm, levels_now=True)
        except Exception as exc:  # noqa: BLE001 - a head start only: the pipeline reports problems
            log.debug("CBCT side not made ahead: %s: %s", type(exc).__name__, exc)
            return None

    def cbct_grid(self, grid: Grid | None) -> None:
        """The CBCT's voxel grid, known from its headers before its series is assembled (read
        aside: ``igrt.planning.cbct_aside``): the planning side is prepared for it from now.
        None: not known yet (the series, or the reading of the directory here, gives it)."""
        if grid is not None:
            self._grid.put(grid)

    def cancel(self) -> None:
        """No CBCT after all: the planning thread stops at its next step (what it is doing,
        reading the planning CT or preparing it for a grid given already, it finishes)."""
        self._stop.set()
        self._grid.put(None)
        self._ahead.join()


class _Box(Generic[_T]):
    """A value handed once from one thread to another: the CBCT's voxel grid from the main
    thread to the planning thread, the plan it prepares the other way."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._value: _T | None = None

    def put(self, value: _T | None) -> None:
        """The value (None: there is none: the CBCT cannot be read, no plan is prepared);
        only the first call counts."""
        if not self._ready.is_set():
            self._value = value
            self._ready.set()

    def get(self) -> _T | None:
        self._ready.wait()
        return self._value


class _Loaded:
    """The CBCT, read while the planning side was being prepared (a CbctSource that hands
    over the series, or the refusal, it met), or handed over read (``series``). Its voxel grid
    goes to ``grid`` as soon as the headers are decoded, before the pixels are assembled."""

    def __init__(self, source: DirectoryCbct, grid: _Box[Grid], *,
                 series: ImageSeries | None = None) -> None:
        self._error: IgrtError | None = None
        self._series: ImageSeries | None = series
        if series is not None:
            grid.put(self.grid)
            return
        try:
            instances = source.decoded()
            grid.put(header_grid(instances))
            self._series = assemble(instances)
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
                   plan_uid: str | None, isocenter_index: int | None, grid: _Box[Grid],
                   built: threading.Event, stop: threading.Event, chosen: _Box[Plan]) -> None:
    """Prepare the directory's one plan (the chosen one) if it is unambiguous; anything
    unusual is left to the pipeline, which names it. The planning CT is read while the CBCT
    is; it is prepared for the CBCT's grid once that is known. ``built`` is set once the
    planning side is built (its pyramid levels are made after, while the registration
    prepares its CBCT side; a level asked for meanwhile waits for it), or when nothing more
    will be. ``stop``: there is no CBCT after all; nothing more is prepared. ``chosen``: the plan
    it prepares, put there before its planning CT is read (None when it prepares none)."""
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
        chosen.put(plan)
        planning.load_planning_ct(ct_id, around_mm=pipeline.planning_box(iso, config))
        cbct_grid = grid.get()
        if cbct_grid is None or stop.is_set():
            return  # the CBCT cannot be read (the pipeline says why), or there is none
        reference, _ = pipeline.reference_for(planning, plan, structure_sets, config, cbct=None,
                                              isocenter_index=isocenter_index,
                                              references=references, keep_levels=False,
                                              cbct_grid=cbct_grid)
        built.set()
        if not stop.is_set():
            reference.warm(*cbct_grid)
    except Exception as exc:  # noqa: BLE001 - a head start only: the pipeline reports problems
        log.debug("planning side not prepared ahead: %s: %s", type(exc).__name__, exc)
    finally:
        chosen.put(None)  # no plan prepared, if none was put before
        built.set()
