"""igrt.config: configuration files (TOML) and the state directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_config import ENV

from igrt.config import (
    CbctIsocenter,
    StorageConfig,
    config_to_toml,
    default_config,
    load_config,
    parse_config,
)
from igrt.core.errors import ConfigError


# --- files ---------------------------------------------------------------------------------------
def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "TB9.toml"
    with pytest.raises(ConfigError, match="TB9.toml does not exist"):
        load_config(path, environ=ENV)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, environ=ENV)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "igrt.toml"
    path.write_text('room = "TB1"\n[dicom]\nport = \n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=ENV)
    assert str(path) in info.value.message
    assert "not valid TOML" in info.value.message
    assert "line 3" in info.value.message


def test_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "igrt.toml"
    path.write_bytes(b'room = "TB\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path, environ=ENV)


def test_value_error_in_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "TB2.toml"
    path.write_text('room = "TB2"\n\n[dicom]\nport = "104"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=ENV)
    assert info.value.message == (
        f"configuration file {path}: dicom.port: expected an integer, got a string ('104')"
    )


def test_partial_file_takes_defaults(tmp_path: Path) -> None:
    path = tmp_path / "TB2.toml"
    path.write_text('room = "TB2"\n[registration]\ncbct_isocenter = "center"\n', encoding="utf-8")
    cfg = load_config(path, environ=ENV)
    default = default_config(environ=ENV)
    assert cfg == dataclasses.replace(
        default,
        room="TB2",
        storage=StorageConfig(Path("/home/physicist/.local/state/igrt/TB2")),
        registration=dataclasses.replace(default.registration, cbct_isocenter=CbctIsocenter.CENTER),
    )


def test_config_to_toml_reads_back_to_the_same_config(tmp_path: Path) -> None:
    data = {
        "room": "TB_3",
        "dicom": {"ae_title": 'IGRT "3"', "port": 104, "settle_s": 0.25},
        "zmq": {"publish": "ipc:///run/igrt/TB_3/pub", "command": "tcp://*:7000"},
        "storage": {"dir": "/srv/igrt/TB_3"},
        "couch": {"dof": 3},
        "registration": {
            "engine": "elastix",
            "cross_check": "simpleitk",
            "roi_size_mm": [100, 120.5, 1e2],
            "roi_structure": 'PTV "boost" ü',
            "perturbation_check": False,
            "seed": 7,
        },
        "review": {"max_translation_mm": 5, "max_rotation_deg": 1.5},
    }
    cfg = parse_config(data, environ=ENV)
    path = tmp_path / "TB_3.toml"
    path.write_text(config_to_toml(cfg), encoding="utf-8")
    assert load_config(path, environ={}) == cfg


# --- state directory -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("environ", "room", "expected"),
    [
        pytest.param(
            {"STATE_DIRECTORY": "/var/lib/igrt/TB1", "XDG_STATE_HOME": "/x", "HOME": "/h"},
            "TB1",
            "/var/lib/igrt/TB1",
            id="systemd",
        ),
        pytest.param(
            {"STATE_DIRECTORY": "/var/lib/igrt/TB1:/var/lib/other", "HOME": "/h"},
            "TB1",
            "/var/lib/igrt/TB1",
            id="systemd-several",
        ),
        pytest.param(
            {"STATE_DIRECTORY": "", "XDG_STATE_HOME": "/x/state", "HOME": "/h"},
            "TB1",
            "/x/state/igrt/TB1",
            id="xdg",
        ),
        pytest.param(
            {"XDG_STATE_HOME": "relative/state", "HOME": "/h"},
            "TB2",
            "/h/.local/state/igrt/TB2",
            id="xdg-relative-ignored",
        ),
        pytest.param({"HOME": "/h"}, "TB2", "/h/.local/state/igrt/TB2", id="home"),
        pytest.param(
            {"STATE_DIRECTORY": "var/lib/igrt", "HOME": "/h"},
            "TB1",
            "/h/.local/state/igrt/TB1",
            id="systemd-relative-ignored",
        ),
    ],
)
def test_empty_storage_dir_resolves_from_the_environment(
    environ: dict[str, str], room: str, expected: str
) -> None:
    cfg = parse_config({"room": room, "storage": {"dir": ""}}, environ=environ)
    assert cfg.storage.dir == Path(expected)


def test_explicit_storage_dir_wins_over_the_environment() -> None:
    environ = {"STATE_DIRECTORY": "/var/lib/igrt/TB1", "HOME": "/h"}
    cfg = parse_config({"storage": {"dir": "/srv/igrt"}}, environ=environ)
    assert cfg.storage.dir == Path("/srv/igrt")


def test_config_is_frozen() -> None:
    cfg = default_config(environ=ENV)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.dicom.port = 104  # type: ignore[misc]
