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
    "Destination",
    "CurveConfig",
    "DicomConfig",
    "DicomLimits",
    "EngineName",
    "Peer",
    "RecordConfig",
    "QaConfig",
    "RegistrationConfig",
    "ReviewConfig",
    "Role",
    "StorageConfig",
    "UiConfig",
    "TlsConfig",
    "ZmqConfig",
]


@dataclass(frozen=True)
class Peer:
    ae_title: str
    role: Role
    #: an IP address or a network in CIDR form (``10.20.30.0/24``): an association from this AE
    #: title from any other address is rejected (CONTRACT §10); None = from any address
    host: str | None = None


DEFAULT_PEERS: tuple[Peer, ...] = (
    Peer("LINAC", Role.IMAGING),
    Peer("TPS", Role.PLANNING),
)


@dataclass(frozen=True)
class DicomLimits:
    """What one Storage SCP grants its peers (``[dicom.limits]``)."""

    max_associations: int = 16  # negotiated associations at once, all peers together
    max_associations_per_peer: int = 10  # ... from one calling AE title
    max_pending_connections: int = 16  # connected, no association yet: the oldest is dropped
    request_timeout_s: float = 10.0  # TCP (and TLS) connect to A-ASSOCIATE-RQ; release replies
    dimse_timeout_s: float = 60.0  # a DIMSE message begun must be complete within this
    network_timeout_s: float = 120.0  # an established association silent this long is aborted
    max_pdu_bytes: int = 262_144  # the largest P-DATA PDU a peer may send; larger ones close


@dataclass(frozen=True)
class TlsConfig:
    """``[dicom.tls]``: when present the SCP accepts TLS (1.2 or later) connections only."""

    certificate: Path  # PEM: the SCP's certificate (chain)
    private_key: Path  # PEM: its private key (unencrypted)
    ca_certificates: Path | None = None  # PEM: the CAs that sign the peers' certificates
    require_client_certificate: bool = True


@dataclass(frozen=True)
class DicomConfig:
    ae_title: str = "IGRT"
    host: str = "127.0.0.1"
    port: int = 11112  # 0 = let the OS pick a free port (tests)
    settle_s: float = 1.0
    peers: tuple[Peer, ...] = DEFAULT_PEERS
    limits: DicomLimits = DicomLimits()
    tls: TlsConfig | None = None

    def peer(self, calling_ae_title: str) -> Peer | None:
        """The configured peer for a calling AE title (leading/trailing spaces are not
        significant in DICOM AE titles), or None if it is not listed."""
        wanted = calling_ae_title.strip()
        return next((p for p in self.peers if p.ae_title == wanted), None)


@dataclass(frozen=True)
class CurveConfig:
    """``[zmq.curve]``: when present both sockets use CURVE (CONTRACT §10)."""

    server_secret_key: Path  # the server's certificate with its secret key (zmq.auth format)
    clients_dir: Path  # public certificates of the clients allowed to connect (readers)
    control_clients_dir: Path | None = None  # ... also allowed the control commands


@dataclass(frozen=True)
class ZmqConfig:
    publish: str = "tcp://127.0.0.1:5556"
    command: str = "tcp://127.0.0.1:5557"
    heartbeat_s: float = 1.0
    curve: CurveConfig | None = None


@dataclass(frozen=True)
class StorageConfig:
    dir: Path  # absolute; resolved from the environment when the file leaves it empty
    keep_days: int = 0  # purge received series older than this (never what is needed); 0 = never
    free_space_warning_mb: int = 2048  # warn (heartbeat, log) below this much free space; 0 = off


@dataclass(frozen=True)
class Destination:
    """A record-and-verify system (OIS) that receives the record of every approved correction."""

    ae_title: str
    host: str
    port: int


@dataclass(frozen=True)
class RecordConfig:
    """The record of approved corrections (CONTRACT §8)."""

    destinations: tuple[Destination, ...] = ()
    calling_ae_title: str = "IGRT"  # our AE title when we call a destination
    retry_initial_s: float = 10.0  # first retry after a failed delivery; doubled each time ...
    retry_max_s: float = 300.0  # ... up to this
    alarm_after_s: float = 900.0  # not acknowledged this long after approval: an `error` message
    timeout_s: float = 30.0  # association, DIMSE and network timeout of one delivery


@dataclass(frozen=True)
class CouchConfig:
    dof: int = 6  # 6 = all axes, 4 = translations + rotation (yaw), 3 = translations


class EngineName(StrEnum):
    """A registration engine (``[registration] engine`` and ``cross_check``)."""

    SIMPLEITK = "simpleitk"
    ELASTIX = "elastix"


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
    #: match quality (issue 9): the edge-agreement score a true match reaches; below -> review
    match_score_min: float = 0.70
    #: an alternative one vertebral level away within this of the score -> review
    ambiguity_margin: float = 0.10
    #: share of the box in the CBCT's field of view below which -> review (below 25%: failed)
    fov_fraction_min: float = 0.60
    #: share of the box's longitudinal extent the CBCT's slices cover, below which -> review
    longitudinal_coverage_min: float = 0.75
    seed: int = 20261121
    #: memory for prepared planning CTs (LRU; the most recent one is always kept)
    planning_cache_mb: int = 1024


@dataclass(frozen=True)
class ReviewConfig:
    max_translation_mm: float = 10.0  # length of the translation vector
    max_rotation_deg: float = 3.0  # magnitude of any single rotation


@dataclass(frozen=True)
class UiConfig:
    """The review page (CONTRACT §7)."""

    listen: str = "127.0.0.1:8765"  # HOST:PORT; port 0 = a free port (tests)
    operators_file: Path | None = None  # who may approve over HTTP, with hashed PINs
    base_url: str = ""  # how consoles reach the page (review_url); empty = from listen


@dataclass(frozen=True)
class QaConfig:
    """Physics QA (CONTRACT §9): TG-142 SRS/SBRT positioning tolerances."""

    tolerance_mm: float = 1.0  # each translation axis and the translation-vector length
    tolerance_deg: float = 0.5  # each rotation axis
    #: a declared QA offset (qa_expect) not taken by a CBCT within this many hours expires
    declaration_valid_h: float = 12.0


@dataclass(frozen=True)
class Config:
    room: str
    dicom: DicomConfig
    zmq: ZmqConfig
    storage: StorageConfig
    couch: CouchConfig
    registration: RegistrationConfig
    review: ReviewConfig
    ui: UiConfig = UiConfig()
    record: RecordConfig = RecordConfig()
    qa: QaConfig = QaConfig()


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
ASSOCIATIONS_MAX = 1000
PENDING_MAX = 1000
SCP_TIMEOUT_MIN_S = 1.0
SCP_TIMEOUT_MAX_S = 3600.0
PDU_MIN_BYTES = 4096  # what pynetdicom and DCMTK accept as the smallest maximum PDU
PDU_MAX_BYTES = 16 * 1024 * 1024
QA_TOLERANCE_MAX_MM = 10.0
QA_TOLERANCE_MAX_DEG = 5.0
QA_DECLARATION_MAX_H = 168.0  # a week
ROI_NAME_MAX = 64  # DICOM VR LO
KEEP_DAYS_MAX = 3650
FREE_SPACE_WARNING_MAX_MB = 10_000_000
RETRY_MIN_S = 0.1
RETRY_MAX_S = 86_400.0
ALARM_MIN_S = 1.0
ALARM_MAX_S = 7 * 86_400.0
RECORD_TIMEOUT_MIN_S = 1.0
RECORD_TIMEOUT_MAX_S = 600.0
