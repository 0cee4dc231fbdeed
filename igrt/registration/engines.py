"""The configured engines, made once and warmed: the primary engine and the optional
cross-check engine of ``[registration]``.

The service makes one :class:`EnginePool` at start-up and warms it before it says READY:
itk-elastix loads most of itself lazily on its first registration (about 20 s), SimpleITK
pays a smaller one-time cost. ``igrt register`` makes one per run and does not warm it.
"""

from __future__ import annotations

import logging
import time

from igrt.config import EngineName, RegistrationConfig
from igrt.registration.problem import Engine

log = logging.getLogger(__name__)


def make_engine(name: EngineName | str) -> Engine:
    if str(name) == EngineName.SIMPLEITK:
        from igrt.registration.sitk_engine import SimpleItkEngine

        return SimpleItkEngine()
    if str(name) == EngineName.ELASTIX:
        from igrt.registration.elastix_engine import ElastixEngine

        return ElastixEngine()
    raise ValueError(f"unknown registration engine {name!r}")


class EnginePool:
    """The engines one configuration uses."""

    def __init__(self, cfg: RegistrationConfig) -> None:
        self.primary = make_engine(cfg.engine)
        self.cross_check = make_engine(cfg.cross_check) if cfg.cross_check else None

    def engines(self) -> list[Engine]:
        return [self.primary] + ([self.cross_check] if self.cross_check else [])

    def warm(self) -> float:
        """Run each engine once on a tiny problem; returns the seconds it took."""
        t0 = time.perf_counter()
        for engine in self.engines():
            t = time.perf_counter()
            if engine.name == EngineName.ELASTIX:
                from igrt.registration.elastix_engine import warm_up as warm_elastix

                warm_elastix()
            else:
                from igrt.registration.sitk_engine import warm_up as warm_sitk

                warm_sitk()
            log.info("engine %s warmed in %.2f s", engine.name, time.perf_counter() - t)
        return time.perf_counter() - t0
