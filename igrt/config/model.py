"""The configuration as frozen dataclasses, with the built-in defaults (CONTRACT §6), and the
limits the parser enforces. Read and validated by ``igrt.config.parse``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from igrt.core.kinds import Role
from igrt.core.nominal import CbctIsocenter

__all__ = [
    "DEFAULT_PEERS",
    "DEFAULT_ROOM",
    "CbctIsocenter",
    "Config",
    "CouchConfig",
    "DicomConfig",
    "EngineName",
    "Peer",
    "RegistrationConfig",
    "ReviewConfig",
    "Role",
    "StorageConfig",
    "ZmqConfig",
]


class EngineName(StrEnum):
    SIMPLEITK = "simpleitk"
    ELASTIX = "elastix"


@dataclass(frozen=True)
class Peer:
    ae_title: str
    role: Role


DEFAULT_PEERS: tuple[Peer, ...] = (
    Peer("LINAC", Role.IMAGING),
    Peer("TPS", Role.PLANNING),
)


@dataclass(frozen=True)
class DicomConfig:
    ae_title: str = "IGRT"
    host: str = "127.0.0.1"
    port: int = 11112  # 0 = let the OS pick a free port (tests)
    settle_s: float = 1.0
    peers: tuple[Peer, ...] = DEFAULT_PEERS

    def peer(self, calling_ae_title: str) -> Peer | None:
        """The configured peer for a calling AE title (leading/trailing spaces are not
        significant in DICOM AE titles), or None if it is not listed."""
        wanted = calling_ae_title.strip()
        return next((p for p in self.peers if p.ae_title == wanted), None)


@dataclass(frozen=True)
class ZmqConfig:
    publish: str = "tcp://127.0.0.1:5556"
    command: str = "tcp://127.0.0.1:5557"
    heartbeat_s: float = 1.0


@dataclass(frozen=True)
class StorageConfig:
    dir: Path  # absolute; resolved from the environment when the file leaves it empty


@dataclass(frozen=True)
class CouchConfig:
    dof: int = 6  # 6 = all axes, 4 = translations + rotation (yaw), 3 = translations


@dataclass(frozen=True)
class RegistrationConfig:
    cbct_isocenter: CbctIsocenter = CbctIsocenter.ORIGIN
    engine: EngineName = EngineName.SIMPLEITK
    cross_check: EngineName | None = None  # second engine; disagreement -> review
    cross_check_tolerance_mm: float = 0.5
    cross_check_tolerance_deg: float = 0.3
    roi_size_mm: tuple[float, float, float] = (160.0, 160.0, 120.0)  # LPS x, y, z extents
    roi_structure: str | None = None  # RT Structure Set ROI Name used as registration region
    perturbation_check: bool = True  # rerun from a perturbed start; landing elsewhere -> review
    perturbation_tolerance_mm: float = 0.5
    perturbation_tolerance_deg: float = 0.3
    seed: int = 20261121
    #: memory for prepared planning CTs (LRU; the most recent one is always kept)
    planning_cache_mb: int = 1024


@dataclass(frozen=True)
class ReviewConfig:
    max_translation_mm: float = 10.0  # length of the translation vector
    max_rotation_deg: float = 3.0  # magnitude of any single rotation


@dataclass(frozen=True)
class Config:
    room: str
    dicom: DicomConfig
    zmq: ZmqConfig
    storage: StorageConfig
    couch: CouchConfig
    registration: RegistrationConfig
    review: ReviewConfig


DEFAULT_ROOM = "TB1"

# Limits. Where the contract gives none, the bound rejects values that would silently switch a
# check off (a cross-check tolerance of 50 mm checks nothing) or cannot be meant (a 1e9 s settle).
PORT_MAX = 65535
SETTLE_MAX_S = 3600.0
HEARTBEAT_MIN_S = 0.1
HEARTBEAT_MAX_S = 2.0  # CONTRACT §4: a heartbeat at least every 2 s
ROI_MIN_MM = 20.0
ROI_MAX_MM = 600.0
CHECK_TOLERANCE_MAX_MM = 5.0
CHECK_TOLERANCE_MAX_DEG = 3.0
REVIEW_MAX_MM = 100.0
REVIEW_MAX_DEG = 30.0
SEED_MAX = 2**32 - 1  # engines take an unsigned 32-bit seed
PLANNING_CACHE_MIN_MB = 64
PLANNING_CACHE_MAX_MB = 65536
COUCH_DOFS = (3, 4, 6)
ROI_NAME_MAX = 64  # DICOM VR LO
