"""Configuration: defaults, the documented file, partial files, every kind of error, state dir."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from igrt.config import (
    CbctIsocenter,
    Config,
    CouchConfig,
    DicomConfig,
    EngineName,
    Peer,
    RegistrationConfig,
    ReviewConfig,
    Role,
    StorageConfig,
    ZmqConfig,
    config_to_toml,
    default_config,
    load_config,
    parse_config,
)
from igrt.core.errors import ConfigError

DOCUMENTED = Path(__file__).resolve().parent.parent / "config" / "igrt.toml"
ENV = {"HOME": "/home/physicist"}
DEFAULT_DIR = Path("/home/physicist/.local/state/igrt/TB1")


def test_defaults_are_complete_safe_and_loopback_only() -> None:
    assert default_config(environ=ENV) == Config(
        room="TB1",
        dicom=DicomConfig(
            ae_title="IGRT",
            host="127.0.0.1",
            port=11112,
            settle_s=1.0,
            peers=(Peer("LINAC", Role.IMAGING), Peer("TPS", Role.PLANNING)),
        ),
        zmq=ZmqConfig(
            publish="tcp://127.0.0.1:5556", command="tcp://127.0.0.1:5557", heartbeat_s=1.0
        ),
        storage=StorageConfig(dir=DEFAULT_DIR),
        couch=CouchConfig(dof=6),
        registration=RegistrationConfig(
            cbct_isocenter=CbctIsocenter.ORIGIN,
            engine=EngineName.SIMPLEITK,
            cross_check=None,
            cross_check_tolerance_mm=0.5,
            cross_check_tolerance_deg=0.3,
            roi_size_mm=(160.0, 160.0, 120.0),
            roi_structure=None,
            perturbation_check=True,
            perturbation_tolerance_mm=0.5,
            perturbation_tolerance_deg=0.3,
            match_score_min=0.70,
            ambiguity_margin=0.10,
            fov_fraction_min=0.60,
            longitudinal_coverage_min=0.75,
            seed=20261121,
            planning_cache_mb=1024,
        ),
        review=ReviewConfig(max_translation_mm=10.0, max_rotation_deg=3.0),
    )


def test_load_config_without_a_file_gives_the_defaults() -> None:
    assert load_config(None, environ=ENV) == default_config(environ=ENV)


def test_documented_file_equals_the_built_in_defaults() -> None:
    assert load_config(DOCUMENTED, environ=ENV) == default_config(environ=ENV)


def _keys(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        return {k for name, v in value.items() for k in _keys(v, f"{prefix}{name}.")}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return {k for item in value for k in _keys(item, f"{prefix}[].")}
    return {prefix.rstrip(".")}


def test_documented_file_spells_out_every_key() -> None:
    documented = _keys(tomllib.loads(DOCUMENTED.read_text(encoding="utf-8")))
    written = _keys(tomllib.loads(config_to_toml(default_config(environ=ENV))))
    assert documented == written
    # room, 4 dicom, 7 limits, 2 peer, 3 zmq, 3 storage, dof, 16 reg, 2 review, 3 ui, 5 record,
    # 3 qa
    assert len(documented) == 50


def test_documented_file_comments_every_key() -> None:
    lines = DOCUMENTED.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            key = line.split("=")[0].strip()
            above = lines[i - 1].strip()
            # a key is explained by the comment above it, or is part of a commented group
            assert above.startswith("#") or "=" in above or above.startswith("[["), key


def test_missing_keys_take_defaults_and_ints_are_accepted_for_floats() -> None:
    cfg = parse_config({"dicom": {"port": 0, "settle_s": 2}, "couch": {"dof": 4}}, environ=ENV)
    default = default_config(environ=ENV)
    assert cfg == dataclasses.replace(
        default,
        dicom=dataclasses.replace(default.dicom, port=0, settle_s=2.0),
        couch=CouchConfig(dof=4),
    )
    assert type(cfg.dicom.settle_s) is float


def test_peers_in_the_file_replace_the_default_list() -> None:
    text = """
    [[dicom.peers]]
    ae_title = "TRUEBEAM_TB2"
    role = "imaging"
    [[dicom.peers]]
    ae_title = "ECLIPSE"
    role = "planning"
    [[dicom.peers]]
    ae_title = "ARIA"
    role = "planning"
    """
    cfg = parse_config(tomllib.loads(text), environ=ENV)
    assert cfg.dicom.peers == (
        Peer("TRUEBEAM_TB2", Role.IMAGING),
        Peer("ECLIPSE", Role.PLANNING),
        Peer("ARIA", Role.PLANNING),
    )
    assert cfg.dicom.peer("ECLIPSE ") == Peer("ECLIPSE", Role.PLANNING)
    assert cfg.dicom.peer("LINAC") is None


def test_cross_check_and_structure_parse_to_typed_values() -> None:
    reg = {"engine": "elastix", "cross_check": "simpleitk", "roi_structure": "PTV 'boost'"}
    cfg = parse_config({"registration": reg}, environ=ENV)
    assert cfg.registration.engine is EngineName.ELASTIX
    assert cfg.registration.cross_check is EngineName.SIMPLEITK
    assert cfg.registration.roi_structure == "PTV 'boost'"


def _nested(key: str, value: Any) -> dict[str, Any]:
    """``_nested("dicom.port", 1)`` -> ``{"dicom": {"port": 1}}``."""
    *tables, name = key.split(".")
    data: dict[str, Any] = {name: value}
    for table in reversed(tables):
        data = {table: data}
    return data


def _peers(*pairs: tuple[Any, Any]) -> dict[str, Any]:
    return {"dicom": {"peers": [{"ae_title": a, "role": r} for a, r in pairs]}}


ERROR_CASES = [
    # the review page
    pytest.param(_nested("ui.listen", "127.0.0.1"), "ui.listen", "HOST:PORT", id="ui-no-port"),
    pytest.param(_nested("ui.listen", "a b:80"), "ui.listen", "neither an IP", id="ui-host"),
    pytest.param(_nested("ui.listen", "h:70000"), "ui.listen", "port 0 to 65535", id="ui-port"),
    pytest.param(_nested("ui.operators_file", "ops.toml"), "ui.operators_file", "absolute",
                 id="ui-relative-operators"),
    pytest.param(_nested("ui.base_url", "igrt:8765"), "ui.base_url", "http(s) URL",
                 id="ui-base-url"),
    # unknown keys, at every level, with the closest known name
    pytest.param({"romm": "TB1"}, "romm", "did you mean 'room'", id="unknown-top"),
    pytest.param(_nested("dicom.prot", 1), "dicom.prot", "did you mean 'port'", id="unknown-dicom"),
    pytest.param(
        _nested("review.max_rotaton_deg", 1.0),
        "review.max_rotaton_deg",
        "did you mean 'max_rotation_deg'",
        id="unknown-review",
    ),
    pytest.param(
        {"dicom": {"peers": [{"ae_title": "A", "role": "imaging", "roel": "x"}]}},
        "dicom.peers[0].roel",
        "did you mean 'role'",
        id="unknown-peer",
    ),
    pytest.param(_nested("zmq.zzz", 1), "zmq.zzz", "the keys of [zmq] are", id="unknown-no-hint"),
    # room
    pytest.param({"room": ""}, "room", "1 to 32", id="room-empty"),
    pytest.param({"room": "TB 1"}, "room", "1 to 32", id="room-space"),
    pytest.param({"room": "R" * 33}, "room", "1 to 32", id="room-too-long"),
    pytest.param({"room": 1}, "room", "expected a string, got an integer", id="room-int"),
    # tables of the wrong type
    pytest.param({"dicom": []}, "dicom", "expected a table", id="dicom-not-table"),
    pytest.param({"registration": "x"}, "registration", "expected a table", id="reg-not-table"),
    # [dicom]
    pytest.param(_nested("dicom.port", True), "dicom.port", "got a boolean", id="port-bool"),
    pytest.param(_nested("dicom.port", 104.0), "dicom.port", "got a float", id="port-float"),
    pytest.param(_nested("dicom.port", "104"), "dicom.port", "got a string", id="port-str"),
    pytest.param(_nested("dicom.port", 65536), "dicom.port", "0 to 65535", id="port-high"),
    pytest.param(_nested("dicom.port", -1), "dicom.port", "0 to 65535", id="port-negative"),
    pytest.param(_nested("dicom.ae_title", ""), "dicom.ae_title", "1 to 16", id="ae-empty"),
    pytest.param(_nested("dicom.ae_title", "A" * 17), "dicom.ae_title", "1 to 16", id="ae-long"),
    pytest.param(_nested("dicom.ae_title", "A\\B"), "dicom.ae_title", "backslash", id="ae-bslash"),
    pytest.param(_nested("dicom.ae_title", "IGRT\n"), "dicom.ae_title", "'\\n'", id="ae-ctrl"),
    pytest.param(_nested("dicom.ae_title", "IGRTÄ"), "dicom.ae_title", "ASCII", id="ae-ascii"),
    pytest.param(_nested("dicom.ae_title", " IGRT"), "dicom.ae_title", "space", id="ae-lead-sp"),
    pytest.param(_nested("dicom.ae_title", "    "), "dicom.ae_title", "space", id="ae-all-sp"),
    pytest.param(_nested("dicom.host", ""), "dicom.host", "IP address", id="host-empty"),
    pytest.param(_nested("dicom.host", "linac host"), "dicom.host", "host name", id="host-space"),
    pytest.param(_nested("dicom.settle_s", -0.5), "dicom.settle_s", "0 to 3600", id="settle-neg"),
    pytest.param(_nested("dicom.settle_s", 3601), "dicom.settle_s", "0 to 3600", id="settle-big"),
    pytest.param(
        _nested("dicom.settle_s", float("inf")), "dicom.settle_s", "0 to 3600", id="settle-inf"
    ),
    pytest.param(
        _nested("dicom.settle_s", float("nan")), "dicom.settle_s", "0 to 3600", id="settle-nan"
    ),
    pytest.param(_nested("dicom.settle_s", False), "dicom.settle_s", "boolean", id="settle-bool"),
    pytest.param(_nested("dicom.settle_s", "1"), "dicom.settle_s", "a number", id="settle-str"),
    # [[dicom.peers]]
    pytest.param(
        _nested("dicom.peers", {"ae_title": "LINAC", "role": "imaging"}),
        "dicom.peers",
        "array of tables",
        id="peers-single-table",
    ),
    pytest.param(
        _peers(("LINAC", "imaging"), ("TPS", "physics")),
        "dicom.peers[1].role",
        "'imaging', 'planning'",
        id="peer-role",
    ),
    pytest.param(
        _peers(("LINAC", "imaging"), ("TPS", "planning"), ("LINAC", "planning")),
        "dicom.peers[2].ae_title",
        "already used by dicom.peers[0].ae_title",
        id="peer-duplicate",
    ),
    pytest.param(
        _peers(("LINAC", "imaging"), ("TPS\\1", "planning")),
        "dicom.peers[1].ae_title",
        "backslash",
        id="peer-ae",
    ),
    pytest.param(
        _peers(("LINAC", "imaging"), ("TPS", 2)), "dicom.peers[1].role", "string", id="peer-int"
    ),
    pytest.param(
        {"dicom": {"peers": [{"ae_title": "LINAC"}]}},
        "dicom.peers[0].role",
        "missing",
        id="peer-no-role",
    ),
    pytest.param(
        {"dicom": {"peers": [{"role": "imaging"}]}},
        "dicom.peers[0].ae_title",
        "missing",
        id="peer-no-ae",
    ),
    pytest.param(
        {"dicom": {"peers": [{"ae_title": "LINAC", "role": "imaging"}, 5]}},
        "dicom.peers[1]",
        "expected a table",
        id="peer-not-table",
    ),
    pytest.param(
        _peers(("LINAC", "imaging"), ("XVI", "imaging")),
        "dicom.peers",
        "no peer has role 'planning'",
        id="peers-no-planning",
    ),
    pytest.param(_peers(), "dicom.peers", "no peer has role 'imaging'", id="peers-empty"),
    # [zmq]
    pytest.param(_nested("zmq.publish", "tcp://127.0.0.1"), "zmq.publish", "tcp://", id="no-port"),
    pytest.param(_nested("zmq.publish", "udp://1.2.3.4:1"), "zmq.publish", "ipc://", id="udp"),
    pytest.param(_nested("zmq.publish", "inproc://x"), "zmq.publish", "tcp://", id="inproc"),
    pytest.param(
        _nested("zmq.publish", "ipc://igrt.sock"), "zmq.publish", "absolute", id="ipc-rel"
    ),
    pytest.param(_nested("zmq.publish", "ipc://"), "zmq.publish", "absolute", id="ipc-empty"),
    pytest.param(
        _nested("zmq.publish", "ipc:///" + "x" * 107), "zmq.publish", "107 bytes", id="ipc-long"
    ),
    pytest.param(_nested("zmq.publish", "tcp://h:70000"), "zmq.publish", "65535", id="zmq-port"),
    pytest.param(_nested("zmq.publish", "tcp://a b:1"), "zmq.publish", "host", id="zmq-host"),
    pytest.param(_nested("zmq.publish", "tcp://[foo]:1"), "zmq.publish", "host", id="zmq-ipv6"),
    pytest.param(_nested("zmq.command", 5557), "zmq.command", "string", id="zmq-int"),
    pytest.param(
        _nested("zmq.command", "tcp://127.0.0.1:5556"),
        "zmq.command",
        "same address as zmq.publish",
        id="zmq-same",
    ),
    pytest.param(
        {"zmq": {"publish": "tcp://*:6000", "command": "tcp://127.0.0.1:6000"}},
        "zmq.command",
        "same address as zmq.publish",
        id="zmq-same-port-wildcard",
    ),
    pytest.param(
        {"zmq": {"publish": "ipc:///run/igrt/a", "command": "ipc:///run/igrt/a"}},
        "zmq.command",
        "same address",
        id="zmq-same-ipc",
    ),
    pytest.param(_nested("zmq.heartbeat_s", 0), "zmq.heartbeat_s", "0.1 to 2", id="hb-zero"),
    pytest.param(_nested("zmq.heartbeat_s", 2.5), "zmq.heartbeat_s", "every 2 s", id="hb-slow"),
    # [storage]
    pytest.param(_nested("storage.dir", "state/igrt"), "storage.dir", "absolute", id="dir-rel"),
    pytest.param(_nested("storage.dir", "/a\0b"), "storage.dir", "absolute", id="dir-nul"),
    pytest.param(_nested("storage.dir", 5), "storage.dir", "string", id="dir-int"),
    # [couch]
    pytest.param(_nested("couch.dof", 5), "couch.dof", "6 (all axes)", id="dof-5"),
    pytest.param(_nested("couch.dof", 7), "couch.dof", "3 to 6", id="dof-7"),
    pytest.param(_nested("couch.dof", 6.0), "couch.dof", "integer", id="dof-float"),
    pytest.param(_nested("couch.dof", True), "couch.dof", "boolean", id="dof-bool"),
    # [registration]
    pytest.param(
        _nested("registration.cbct_isocenter", "centre"),
        "registration.cbct_isocenter",
        "'origin', 'center'",
        id="iso-centre",
    ),
    pytest.param(
        _nested("registration.engine", "itk"),
        "registration.engine",
        "'simpleitk', 'elastix'",
        id="engine",
    ),
    pytest.param(
        _nested("registration.cross_check", "ants"),
        "registration.cross_check",
        "'simpleitk', 'elastix', 'none'",
        id="cross-unknown",
    ),
    pytest.param(
        _nested("registration.cross_check", "simpleitk"),
        "registration.cross_check",
        "use 'elastix' or 'none'",
        id="cross-same-engine",
    ),
    pytest.param(
        _nested("registration.cross_check", False),
        "registration.cross_check",
        "string",
        id="cross-bool",
    ),
    pytest.param(
        _nested("registration.cross_check_tolerance_mm", 0),
        "registration.cross_check_tolerance_mm",
        "greater than 0",
        id="cross-tol-zero",
    ),
    pytest.param(
        _nested("registration.cross_check_tolerance_mm", 6),
        "registration.cross_check_tolerance_mm",
        "at most 5",
        id="cross-tol-big",
    ),
    pytest.param(
        _nested("registration.cross_check_tolerance_deg", -0.1),
        "registration.cross_check_tolerance_deg",
        "greater than 0",
        id="cross-tol-deg",
    ),
    pytest.param(_nested("qa.tolerance_mm", 0), "qa.tolerance_mm", "greater than 0",
                 id="qa-tol-zero"),
    pytest.param(_nested("qa.tolerance_mm", 11), "qa.tolerance_mm", "at most 10",
                 id="qa-tol-big"),
    pytest.param(_nested("qa.tolerance_deg", "0.5"), "qa.tolerance_deg", "number",
                 id="qa-tol-deg-string"),
    pytest.param(_nested("qa.tolerance_deg", 6), "qa.tolerance_deg", "at most 5",
                 id="qa-tol-deg-big"),
    pytest.param(_nested("qa.tolerance", 1), "qa.tolerance", "unknown key", id="qa-unknown"),
    pytest.param(
        _nested("registration.roi_size_mm", [160.0, 160.0]),
        "registration.roi_size_mm",
        "3 numbers",
        id="roi-two",
    ),
    pytest.param(
        _nested("registration.roi_size_mm", 160.0),
        "registration.roi_size_mm",
        "3 numbers",
        id="roi-scalar",
    ),
    pytest.param(
        _nested("registration.roi_size_mm", [160.0, 160.0, 10.0]),
        "registration.roi_size_mm[2]",
        "20 to 600",
        id="roi-small",
    ),
    pytest.param(
        _nested("registration.roi_size_mm", [160.0, "160", 120.0]),
        "registration.roi_size_mm[1]",
        "a number",
        id="roi-str",
    ),
    pytest.param(
        _nested("registration.roi_size_mm", [601, 160, 120]),
        "registration.roi_size_mm[0]",
        "20 to 600",
        id="roi-big",
    ),
    pytest.param(
        _nested("registration.roi_structure", "GTV\\CTV"),
        "registration.roi_structure",
        "backslash",
        id="structure-bslash",
    ),
    pytest.param(
        _nested("registration.roi_structure", "P" * 65),
        "registration.roi_structure",
        "at most 64",
        id="structure-long",
    ),
    pytest.param(
        _nested("registration.roi_structure", "PTV "),
        "registration.roi_structure",
        "space",
        id="structure-space",
    ),
    pytest.param(
        _nested("registration.perturbation_check", "yes"),
        "registration.perturbation_check",
        "true or false",
        id="perturb-str",
    ),
    pytest.param(
        _nested("registration.perturbation_check", 1),
        "registration.perturbation_check",
        "true or false",
        id="perturb-int",
    ),
    pytest.param(
        _nested("registration.perturbation_tolerance_mm", 0.0),
        "registration.perturbation_tolerance_mm",
        "greater than 0",
        id="perturb-tol-mm",
    ),
    pytest.param(
        _nested("registration.perturbation_tolerance_deg", 4),
        "registration.perturbation_tolerance_deg",
        "at most 3",
        id="perturb-tol-deg",
    ),
    pytest.param(_nested("registration.match_score_min", 1.2), "registration.match_score_min",
                 "0 to 1", id="match-score-big"),
    pytest.param(_nested("registration.ambiguity_margin", -0.1), "registration.ambiguity_margin",
                 "0 to 1", id="ambiguity-neg"),
    pytest.param(_nested("registration.fov_fraction_min", 0.1), "registration.fov_fraction_min",
                 "0.25 to 1", id="fov-fraction-low"),
    pytest.param(_nested("registration.longitudinal_coverage_min", "x"),
                 "registration.longitudinal_coverage_min", "number", id="coverage-str"),
    pytest.param(_nested("registration.seed", -1), "registration.seed", "0 to", id="seed-neg"),
    pytest.param(_nested("registration.seed", 2**32), "registration.seed", "0 to", id="seed-big"),
    pytest.param(_nested("registration.seed", 1.5), "registration.seed", "integer", id="seed-flt"),
    pytest.param(_nested("registration.seed", True), "registration.seed", "boolean", id="seed-b"),
    pytest.param(_nested("registration.planning_cache_mb", 10), "registration.planning_cache_mb",
                 "64 to", id="cache-small"),
    pytest.param(_nested("registration.planning_cache_mb", "1 GB"),
                 "registration.planning_cache_mb", "integer", id="cache-text"),
    # [review]
    pytest.param(
        _nested("review.max_translation_mm", 0),
        "review.max_translation_mm",
        "greater than 0",
        id="review-mm-zero",
    ),
    pytest.param(
        _nested("review.max_translation_mm", float("nan")),
        "review.max_translation_mm",
        "greater than 0",
        id="review-mm-nan",
    ),
    pytest.param(
        _nested("review.max_rotation_deg", 45),
        "review.max_rotation_deg",
        "at most 30",
        id="review-deg-big",
    ),
    # security (CONTRACT §10) and the SCP limits
    pytest.param({"dicom": {"peers": [{"ae_title": "LINAC", "role": "imaging", "host": "10.1.2"},
                                      {"ae_title": "TPS", "role": "planning"}]}},
                 "dicom.peers[0].host", "CIDR form", id="peer-host-bad"),
    pytest.param(_nested("dicom.limits.max_associations", 0), "dicom.limits.max_associations",
                 "allowed 1 to 1000", id="limit-zero"),
    pytest.param({"dicom": {"limits": {"max_associations": 2, "max_associations_per_peer": 3}}},
                 "dicom.limits.max_associations_per_peer", "all peers together",
                 id="limit-per-peer-above-total"),
    pytest.param(_nested("dicom.limits.max_pdu_bytes", 100), "dicom.limits.max_pdu_bytes",
                 "allowed 4096", id="pdu-small"),
    pytest.param(_nested("dicom.limits.request_timeout_s", 0), "dicom.limits.request_timeout_s",
                 "allowed 1 to 3600", id="request-timeout-zero"),
    pytest.param(_nested("dicom.limits.max_pending", 3), "dicom.limits.max_pending",
                 "did you mean 'max_pending_connections'", id="limit-unknown"),
    pytest.param(_nested("dicom.tls.certificate", "/etc/igrt/c.pem"), "dicom.tls.private_key",
                 "missing", id="tls-no-key"),
    pytest.param({"dicom": {"tls": {"certificate": "c.pem", "private_key": "/k.pem"}}},
                 "dicom.tls.certificate", "absolute path", id="tls-relative"),
    pytest.param({"dicom": {"tls": {"certificate": "/c.pem", "private_key": "/k.pem"}}},
                 "dicom.tls.ca_certificates", "require_client_certificate", id="tls-no-ca"),
    pytest.param(_nested("zmq.curve.server_secret_key", "/etc/igrt/s.key_secret"),
                 "zmq.curve.clients_dir", "missing", id="curve-no-clients"),
    pytest.param({"zmq": {"curve": {"server_secret_key": "/s", "clients_dir": "/c",
                                    "control_dir": "/d"}}},
                 "zmq.curve.control_dir", "did you mean 'control_clients_dir'",
                 id="curve-unknown-key"),
]


@pytest.mark.parametrize(("data", "key", "allowed"), ERROR_CASES)
def test_invalid_configuration_names_the_key(data: dict[str, Any], key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ=ENV)
    assert info.value.message.startswith(f"{key}: "), info.value.message
    assert allowed in info.value.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("dicom.host", "0.0.0.0", id="host-any"),
        pytest.param("dicom.host", "::", id="host-any6"),
        pytest.param("dicom.host", "fe80::1", id="host-ipv6"),
        pytest.param("dicom.host", "igrt-tb1.radonc.example.org", id="host-name"),
        pytest.param("dicom.ae_title", "IGRT_TB1 2", id="ae-inner-space"),
        pytest.param("dicom.port", 0, id="port-free"),
        pytest.param("dicom.settle_s", 0, id="settle-zero"),
        pytest.param("zmq.publish", "tcp://*:6000", id="zmq-wildcard"),
        pytest.param("zmq.publish", "tcp://[::1]:6000", id="zmq-ipv6"),
        pytest.param("zmq.publish", "tcp://eth0:6000", id="zmq-interface"),
        pytest.param("zmq.publish", "tcp://127.0.0.1:*", id="zmq-free"),
        pytest.param("zmq.publish", "ipc:///run/igrt/TB1/pub", id="zmq-ipc"),
        pytest.param("zmq.publish", "ipc://@igrt-TB1-pub", id="zmq-abstract"),
        pytest.param("zmq.heartbeat_s", 2, id="hb-2s"),
        pytest.param("couch.dof", 3, id="dof-3"),
        pytest.param("registration.cbct_isocenter", "center", id="iso-center"),
        pytest.param("registration.roi_size_mm", [20, 600, 120.5], id="roi-limits"),
        pytest.param("registration.seed", 0, id="seed-zero"),
        pytest.param("registration.planning_cache_mb", 64, id="cache-min"),
        pytest.param("storage.dir", "/srv/igrt/TB1", id="dir-absolute"),
    ],
)
def test_valid_values_are_accepted(key: str, value: Any) -> None:
    cfg = parse_config(_nested(key, value), environ=ENV)
    section, name = key.split(".")
    got = getattr(getattr(cfg, section), name)
    expected = tuple(float(v) for v in value) if isinstance(value, list) else value
    assert got == (Path(value) if name == "dir" else expected)


def test_two_free_ports_do_not_clash() -> None:
    zmq = {"publish": "tcp://127.0.0.1:*", "command": "tcp://127.0.0.1:*"}
    assert parse_config({"zmq": zmq}, environ=ENV).zmq.command == "tcp://127.0.0.1:*"


def test_same_port_on_two_interfaces_does_not_clash() -> None:
    zmq = {"publish": "tcp://10.1.2.3:6000", "command": "tcp://127.0.0.1:6000"}
    assert parse_config({"zmq": zmq}, environ=ENV).zmq.publish == "tcp://10.1.2.3:6000"




def test_security_tables_read_back_to_the_same_config() -> None:
    data = {
        "dicom": {
            "peers": [{"ae_title": "LINAC", "role": "imaging", "host": "10.20.30.7/24"},
                      {"ae_title": "TPS", "role": "planning", "host": "10.9.8.7"}],
            "limits": {"max_associations": 6, "max_associations_per_peer": 2},
            "tls": {"certificate": "/etc/igrt/tls/igrt.crt", "private_key": "/etc/igrt/tls/k",
                    "ca_certificates": "/etc/igrt/tls/ca.crt"},
        },
        "zmq": {"curve": {"server_secret_key": "/etc/igrt/curve/server.key_secret",
                          "clients_dir": "/etc/igrt/curve/clients"}},
    }
    cfg = parse_config(data, environ=ENV)
    assert [p.host for p in cfg.dicom.peers] == ["10.20.30.0/24", "10.9.8.7/32"]
    assert cfg.dicom.tls is not None and cfg.dicom.tls.require_client_certificate
    assert cfg.zmq.curve is not None and cfg.zmq.curve.control_clients_dir is None
    assert (cfg.dicom.limits.max_associations, cfg.dicom.limits.max_associations_per_peer) == (6, 2)
    assert parse_config(tomllib.loads(config_to_toml(cfg)), environ=ENV) == cfg
