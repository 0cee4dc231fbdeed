"""DICOM security of the Storage SCP (CONTRACT §10, issue 10): TLS with client certificates
(DCMTK ``storescu +tls`` and pynetdicom), peer ``host`` binding, and the association limits, over
a real network with real SCUs and a real store."""

from __future__ import annotations

import queue
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import dicom_factory as factory
import pytest
import scp_client as client
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from tls_certs import Certificates, make_certificates

from igrt.config import Config, Peer, Role, TlsConfig
from igrt.core.errors import ConfigError
from igrt.store import Store
from services.scp import SeriesEvent, StorageScp


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def with_dicom(cfg: Config, **changes: object) -> Config:
    return replace(cfg, dicom=replace(cfg.dicom, **changes))  # type: ignore[arg-type]


@pytest.fixture
def tls_scp(tmp_path: Path, store: Store, certs: Certificates,
            events: queue.Queue[SeriesEvent]) -> Iterator[StorageScp]:
    tls = TlsConfig(certificate=certs.server_cert, private_key=certs.server_key,
                    ca_certificates=certs.ca, require_client_certificate=True)
    cfg = with_dicom(client.make_config(tmp_path / "state"), tls=tls)
    with StorageScp(cfg, store, on_series_activity=events.put) as server:
        yield server


def storescu_tls(port: int, path: Path, *tls: str | Path) -> tuple[int, str]:
    done = client.dcmtk("storescu", *tls, "-aet", "LINAC", "-aec", client.IGRT, client.HOST,
                        str(port), path)
    return done.returncode, done.stdout + done.stderr


def test_storescu_over_tls_with_a_client_certificate_stores(
    tls_scp: StorageScp, store: Store, certs: Certificates, tmp_path: Path,
    events: queue.Queue[SeriesEvent]
) -> None:
    [path] = factory.write([client.ct("over tls")], tmp_path / "send")
    code, output = storescu_tls(tls_scp.port, path, "+tls", certs.client_key, certs.client_cert,
                                "+cf", certs.ca)
    assert code == 0, output
    assert [e.event.value for e in client.next_events(events, 2)] == ["instance", "released"]
    assert len(client.instance_files(store.root)) == 1


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("plain", id="plain-tcp"),
        pytest.param("anonymous", id="tls-without-client-certificate"),
        pytest.param("rogue", id="client-certificate-not-signed-by-the-ca"),
    ],
)
def test_plain_tcp_and_tls_without_a_trusted_client_certificate_are_refused(
    tls_scp: StorageScp, store: Store, certs: Certificates, tmp_path: Path, how: str
) -> None:
    [path] = factory.write([client.ct(f"refused {how}")], tmp_path / "send")
    options: dict[str, tuple[str | Path, ...]] = {
        "plain": (),
        "anonymous": ("+tla", "+cf", certs.ca),
        "rogue": ("+tls", certs.rogue_key, certs.rogue_cert, "+cf", certs.ca),
    }
    code, output = storescu_tls(tls_scp.port, path, *options[how])
    assert code != 0, output
    assert client.instance_files(store.root) == []
    # the SCP still serves a proper TLS peer (pynetdicom, with the client certificate)
    ae = AE(ae_title="LINAC")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = client.WAIT_S
    ae.add_requested_context(Verification)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certs.ca))
    context.load_cert_chain(certs.client_cert, certs.client_key)
    assoc = ae.associate(client.HOST, tls_scp.port, ae_title=client.IGRT,
                         tls_args=(context, client.HOST))
    assert assoc.is_established
    assert int(assoc.send_c_echo().Status) == 0x0000
    assoc.release()


def test_a_tls_client_that_never_handshakes_does_not_stall_others(
    tls_scp: StorageScp, certs: Certificates, tmp_path: Path
) -> None:
    import socket
    import time

    silent = [socket.create_connection((client.HOST, tls_scp.port), timeout=client.WAIT_S)
              for _ in range(5)]
    try:
        [path] = factory.write([client.ct("beside silent")], tmp_path / "send")
        began = time.monotonic()
        code, output = storescu_tls(tls_scp.port, path, "+tls", certs.client_key,
                                    certs.client_cert, "+cf", certs.ca)
        assert code == 0, output
        assert time.monotonic() - began < 5.0
    finally:
        for sock in silent:
            sock.close()


@pytest.mark.parametrize(
    ("change", "key"),
    [
        pytest.param({"certificate": "missing.crt"}, "dicom.tls.certificate", id="no-cert"),
        pytest.param({"private_key": "ca.crt"}, "dicom.tls.", id="cert-as-key"),
        pytest.param({"ca_certificates": "server.key"}, "dicom.tls.ca_certificates",
                     id="key-as-ca"),
    ],
)
def test_unusable_tls_files_name_the_key(tmp_path: Path, store: Store, certs: Certificates,
                                         change: dict[str, str], key: str) -> None:
    tls = TlsConfig(certificate=certs.server_cert, private_key=certs.server_key,
                    ca_certificates=certs.ca)
    paths: dict[str, Any] = {k: certs.ca.parent / v for k, v in change.items()}
    tls = replace(tls, **paths)
    cfg = with_dicom(client.make_config(tmp_path / "state"), tls=tls)
    with pytest.raises(ConfigError, match=rf"^{key}"):
        StorageScp(cfg, store, on_series_activity=lambda e: None)


# --- peer binding --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "accepted"),
    [pytest.param("10.99.0.0/16", False, id="other-network"),
     pytest.param("192.0.2.7/32", False, id="other-address"),
     pytest.param("127.0.0.0/8", True, id="own-network"),
     pytest.param("127.0.0.1/32", True, id="own-address")],
)
def test_a_peer_bound_to_another_network_is_rejected(tmp_path: Path, store: Store,
                                                     host: str, accepted: bool) -> None:
    peers = (Peer("LINAC", Role.IMAGING, host), Peer("TPS", Role.PLANNING))
    cfg = with_dicom(client.make_config(tmp_path / "state"), peers=peers)
    with StorageScp(cfg, store, on_series_activity=lambda e: None) as server:
        with client.associated(server.port, calling="LINAC") as assoc:
            assert assoc.is_established is accepted
            if not accepted:
                assert assoc.is_rejected
                rejection: Any = assoc.acceptor.primitive
                assert (rejection.result, rejection.result_source,
                        rejection.diagnostic) == (0x01, 0x01, 0x03)
        assert client.echo(server.port, calling="TPS") == 0x0000  # an unbound peer from anywhere
        done = client.dcmtk("echoscu", "-aet", "LINAC", "-aec", client.IGRT, client.HOST,
                            str(server.port))
        assert (done.returncode == 0) is accepted, done.stderr


# --- association limits ------------------------------------------------------------------------
def test_association_limits_per_peer_and_in_all(tmp_path: Path, store: Store) -> None:
    cfg = client.make_config(tmp_path / "state")
    cfg = with_dicom(cfg, limits=replace(cfg.dicom.limits, max_associations=3,
                                         max_associations_per_peer=2))
    with StorageScp(cfg, store, on_series_activity=lambda e: None) as server, \
            client.associated(server.port, calling="LINAC") as a1, \
            client.associated(server.port, calling="LINAC") as a2:
        assert a1.is_established and a2.is_established
        with client.associated(server.port, calling="LINAC") as a3:
            assert a3.is_rejected
            rejection: Any = a3.acceptor.primitive
            assert (rejection.result, rejection.result_source,
                    rejection.diagnostic) == (0x02, 0x03, 0x02)
        with client.associated(server.port, calling="TPS") as t1:
            assert t1.is_established
            with client.associated(server.port, calling="TPS") as t2:
                assert t2.is_rejected  # 3 in all
        a1.release()
        assert client.echo(server.port, calling="LINAC") == 0x0000  # a slot is free again
