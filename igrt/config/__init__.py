"""Service configuration (CONTRACT §6): one TOML file, read once into frozen dataclasses
(``model``), validated at start-up (``parse``, ``values``)."""

from igrt.config.model import *  # noqa: F403 - the dataclasses, enums and defaults
from igrt.config.model import __all__ as _model_names
from igrt.config.parse import (
    config_to_toml,
    default_config,
    default_state_dir,
    load_config,
    parse_config,
)

__all__ = [*_model_names, "config_to_toml", "default_config", "default_state_dir",
           "load_config", "parse_config"]
