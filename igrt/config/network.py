"""The network sections of the configuration: ``[dicom]`` (with ``[dicom.limits]``,
``[dicom.tls]`` and the ``[[dicom.peers]]`` array) and ``[zmq]`` (with ``[zmq.curve]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from igrt.config import model
from igrt.config.values import (
    Section,
    check_absolute_path,
    check_ae_title,
    check_endpoint,
    check_host,
    check_network,
    describe,
    endpoints_clash,
)
from igrt.core.errors import ConfigError
from igrt.core.kinds import Role


def parse_dicom(t: Section) -> model.DicomConfig:
    ae_title = t.string("ae_title")
    check_ae_title(ae_title, t.key("ae_title"))
    host = t.string("host")
    check_host(host, t.key("host"))
    return model.DicomConfig(
        ae_title=ae_title,
        host=host,
        port=t.integer("port", 0, model.PORT_MAX, note="(0 = let the system pick a free port)"),
        settle_s=t.number("settle_s", 0.0, model.SETTLE_MAX_S),
        peers=_parse_peers(t.data["peers"]) if "peers" in t.data else model.DEFAULT_PEERS,
        limits=_parse_limits(t.section("limits", model.DicomLimits)),
        tls=_parse_tls(t.section("tls", model.TlsConfig)) if "tls" in t.data else None,
    )


def _parse_limits(t: Section) -> model.DicomLimits:
    lo, hi = model.SCP_TIMEOUT_MIN_S, model.SCP_TIMEOUT_MAX_S
    limits = model.DicomLimits(
        max_associations=t.integer("max_associations", 1, model.ASSOCIATIONS_MAX),
        max_associations_per_peer=t.integer("max_associations_per_peer", 1,
                                            model.ASSOCIATIONS_MAX),
        max_pending_connections=t.integer("max_pending_connections", 1, model.PENDING_MAX),
        request_timeout_s=t.number("request_timeout_s", lo, hi),
        dimse_timeout_s=t.number("dimse_timeout_s", lo, hi),
        network_timeout_s=t.number("network_timeout_s", lo, hi),
        max_pdu_bytes=t.integer("max_pdu_bytes", model.PDU_MIN_BYTES, model.PDU_MAX_BYTES),
    )
    if limits.max_associations_per_peer > limits.max_associations:
        raise ConfigError(
            f"{t.key('max_associations_per_peer')}: {limits.max_associations_per_peer} is more "
            f"than {t.key('max_associations')} ({limits.max_associations}); one peer cannot "
            "have more associations than all peers together"
        )
    return limits


def _path(t: Section, name: str, what: str, *, required: bool = True) -> Path | None:
    if name not in t.data:
        if required:
            raise ConfigError(f"{t.key(name)}: missing; {what} is required in [{t.path}]")
        return None
    value = t.string(name)
    check_absolute_path(value, t.key(name), what)
    return Path(value)


def _parse_tls(t: Section) -> model.TlsConfig:
    certificate = _path(t, "certificate", "the SCP's certificate (PEM)")
    private_key = _path(t, "private_key", "the SCP's private key (PEM)")
    ca = _path(t, "ca_certificates", "the CA certificates of the peers (PEM)", required=False)
    require = t.boolean("require_client_certificate")
    if require and ca is None:
        raise ConfigError(
            f"{t.key('ca_certificates')}: missing; with require_client_certificate = true the "
            "SCP needs the CA certificates that sign the peers' certificates"
        )
    assert certificate is not None and private_key is not None
    return model.TlsConfig(certificate=certificate, private_key=private_key,
                           ca_certificates=ca, require_client_certificate=require)


def _parse_curve(t: Section) -> model.CurveConfig:
    secret = _path(t, "server_secret_key", "the server's secret certificate file")
    clients = _path(t, "clients_dir", "the directory of the clients' public certificates")
    control = _path(t, "control_clients_dir",
                    "the directory of the control clients' public certificates", required=False)
    assert secret is not None and clients is not None
    return model.CurveConfig(server_secret_key=secret, clients_dir=clients,
                             control_clients_dir=control)


def _parse_peers(value: Any) -> tuple[model.Peer, ...]:
    if not isinstance(value, list):
        raise ConfigError(
            f"dicom.peers: expected an array of tables ([[dicom.peers]] sections), "
            f"got {describe(value)}"
        )
    peers: list[model.Peer] = []
    first_use: dict[str, str] = {}
    for i, item in enumerate(value):
        t = Section(item, f"dicom.peers[{i}]", model.Peer, title="[[dicom.peers]]")
        for name in ("ae_title", "role"):
            if name not in t.data:
                raise ConfigError(f"{t.key(name)}: missing; every [[dicom.peers]] table needs it")
        ae_title = t.string("ae_title")
        check_ae_title(ae_title, t.key("ae_title"))
        if ae_title in first_use:
            raise ConfigError(
                f"{t.key('ae_title')}: {ae_title!r} is already used by {first_use[ae_title]}; "
                f"each peer AE title may appear once"
            )
        first_use[ae_title] = t.key("ae_title")
        host = None
        if "host" in t.data:
            host = check_network(t.string("host"), t.key("host"))
        peers.append(model.Peer(ae_title, t.enum("role", Role), host))
    for role in Role:
        if not any(p.role is role for p in peers):
            raise ConfigError(
                f"dicom.peers: no peer has role {role.value!r}, so the service could never "
                f'receive what that role sends; add a [[dicom.peers]] table with role = "{role}"'
            )
    return tuple(peers)


def parse_zmq(t: Section) -> model.ZmqConfig:
    publish, command = t.string("publish"), t.string("command")
    check_endpoint(publish, t.key("publish"))
    check_endpoint(command, t.key("command"))
    if endpoints_clash(publish, command):
        raise ConfigError(
            f"zmq.command: {command!r} is the same address as zmq.publish ({publish!r}); "
            f"the command socket needs its own address"
        )
    note = "(the contract requires a heartbeat at least every 2 s)"
    heartbeat_s = t.number("heartbeat_s", model.HEARTBEAT_MIN_S, model.HEARTBEAT_MAX_S, note=note)
    curve = _parse_curve(t.section("curve", model.CurveConfig)) if "curve" in t.data else None
    return model.ZmqConfig(publish=publish, command=command, heartbeat_s=heartbeat_s,
                           curve=curve)
