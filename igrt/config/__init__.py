"""Service configuration (CONTRACT §6): one TOML file, read once into frozen dataclasses
(``model``), validated at start-up (``parse``, ``values``)."""

from igrt.config.model import (
    DEFAULT_PEERS,
    DEFAULT_ROOM,
    Config,
    CouchConfig,
    DicomConfig,
    EngineName,
    Peer,
    RegistrationConfig,
    ReviewConfig,
    StorageConfig,
    ZmqConfig,
)
from igrt.config.parse import (
    config_to_toml,
    default_config,
    default_state_dir,
    load_config,
    parse_config,
)
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
    "config_to_toml",
    "default_config",
    "default_state_dir",
    "load_config",
    "parse_config",
]
