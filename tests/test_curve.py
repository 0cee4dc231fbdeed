"""CURVE on both sockets (CONTRACT §10), with certificates made by ``igrt keys``, real sockets and
a real store: anonymous and unlisted clients receive nothing; a reader gets heartbeats and
``status`` but the control commands are refused with a sentence; a control client may run them.
The command policy is also checked as the pure table it is."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import zmq
from test_commands import plan_meta
from zmq_clients import ServiceState, make_config

from igrt.config import Config, CurveConfig
from igrt.core.errors import ConfigError
from igrt.store import Store
from services.command_policy import CONTROL_COMMANDS, CommandPolicy
from services.commands import CommandServer
from services.curve import ClientKeys, CurveKeys
from services.keys import create_keys
from services.publisher import Publisher

SILENCE_S = 1.5  # heartbeats come every 0.2 s: this long without one proves the refusal


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("curve")
    out = io.StringIO()
    assert create_keys(directory, readers=["console"], controllers=["therapist"], out=out) == 0
    assert "[zmq.curve]" in out.getvalue()
    # a client that is not listed: a certificate made elsewhere
    assert create_keys(directory / "elsewhere", readers=["stranger"], controllers=[],
                       out=io.StringIO()) == 0
    return directory


def curve_config(tmp_path: Path, keydir: Path) -> Config:
    cfg = make_config(tmp_path)
    curve = CurveConfig(server_secret_key=keydir / "server.key_secret",
                        clients_dir=keydir / "clients",
                        control_clients_dir=keydir / "control_clients")
    return replace(cfg, zmq=replace(cfg.zmq, curve=curve))


def client_keys(keydir: Path, name: str, *, server: Path | None = None) -> ClientKeys:
    return ClientKeys.load(server_key=server or keydir / "server.key",
                           client_key=keydir / "client_secrets" / f"{name}.key_secret")


@pytest.fixture
def channels(tmp_path: Path, keydir: Path, store: Store,
             state: ServiceState) -> Iterator[tuple[Publisher, CommandServer]]:
    cfg = curve_config(tmp_path, keydir)
    assert cfg.zmq.curve is not None
    keys = CurveKeys.load(cfg.zmq.curve)
    publisher = Publisher(cfg, state=state, last_seq=store.last_seq, curve=keys)
    commands = CommandServer(cfg, store, state=state, curve=keys)
    publisher.start()
    commands.start()
    yield publisher, commands
    commands.stop()
    publisher.stop()


def subscribe(context: zmq.Context[Any], endpoint: str,
              keys: ClientKeys | None) -> zmq.Socket[Any]:
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    if keys is not None:
        keys.apply(sub)
    sub.connect(endpoint)
    return sub


def ask(context: zmq.Context[Any], endpoint: str, keys: ClientKeys | None,
        request: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any] | None:
    """The reply, or None when none came within ``timeout_s``."""
    req = context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        keys.apply(req)
    req.connect(endpoint)
    try:
        req.send(json.dumps(request).encode())
        if not req.poll(round(timeout_s * 1000)):
            return None
        reply: dict[str, Any] = json.loads(req.recv())
        return reply
    finally:
        req.close(linger=0)


@pytest.mark.parametrize("who", ["anonymous", "unlisted"])
def test_an_anonymous_or_unlisted_client_receives_nothing(
    context: zmq.Context[Any], channels: tuple[Publisher, CommandServer], keydir: Path, who: str
) -> None:
    publisher, commands = channels
    keys = None if who == "anonymous" else ClientKeys.load(
        server_key=keydir / "server.key",
        client_key=keydir / "elsewhere" / "client_secrets" / "stranger.key_secret")
    sub = subscribe(context, publisher.endpoint, keys)
    try:
        assert sub.poll(round(SILENCE_S * 1000)) == 0
    finally:
        sub.close(linger=0)
    assert ask(context, commands.endpoint, keys, {"cmd": "ping"}, timeout_s=SILENCE_S) is None


def test_a_reader_gets_heartbeats_and_status_but_not_the_control_commands(
    context: zmq.Context[Any], channels: tuple[Publisher, CommandServer], keydir: Path,
    store: Store
) -> None:
    publisher, commands = channels
    keys = client_keys(keydir, "console")
    sub = subscribe(context, publisher.endpoint, keys)
    try:
        assert sub.poll(5000), "no heartbeat for a listed reader"
        topic, body = sub.recv_multipart()
        assert topic == b"heartbeat" and json.loads(body)["room"] == "TB1"
    finally:
        sub.close(linger=0)
    status = ask(context, commands.endpoint, keys, {"cmd": "status"})
    assert status is not None and status["ok"] and status["last_seq"] == 0
    store.store_instance(data=b"plan-a", meta=plan_meta("1.5.20.1"))
    reply = ask(context, commands.endpoint, keys,
                {"cmd": "select_plan", "patient_id": "PAT-001", "plan_uid": "1.5.20.1"})
    assert reply is not None
    assert reply["ok"] is False and reply["cmd"] == "select_plan"
    assert reply["error"].startswith("select_plan is refused: client ")
    assert "only a control client" in reply["error"]
    assert store.selected_plan("PAT-001") is None


def test_a_control_client_may_select_a_plan(
    context: zmq.Context[Any], channels: tuple[Publisher, CommandServer], keydir: Path,
    store: Store
) -> None:
    _, commands = channels
    store.store_instance(data=b"plan-a", meta=plan_meta("1.5.20.1"))
    reply = ask(context, commands.endpoint, client_keys(keydir, "therapist"),
                {"cmd": "select_plan", "patient_id": "PAT-001", "plan_uid": "1.5.20.1"})
    assert reply == {"ok": True, "cmd": "select_plan", "patient_id": "PAT-001",
                     "plan_uid": "1.5.20.1"}
    assert store.selected_plan("PAT-001") == "1.5.20.1"


def test_a_client_with_the_wrong_server_key_receives_nothing(
    context: zmq.Context[Any], channels: tuple[Publisher, CommandServer], keydir: Path
) -> None:
    publisher, _ = channels
    impostor = keydir / "elsewhere" / "server.key"  # another server's public key
    sub = subscribe(context, publisher.endpoint,
                    client_keys(keydir, "therapist", server=impostor))
    try:
        assert sub.poll(round(SILENCE_S * 1000)) == 0
    finally:
        sub.close(linger=0)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        pytest.param({"server_secret_key": "server.key"}, "zmq.curve.server_secret_key",
                     id="public-file-as-secret"),
        pytest.param({"server_secret_key": "missing.key_secret"}, "zmq.curve.server_secret_key",
                     id="missing-secret"),
        pytest.param({"clients_dir": "nowhere"}, "zmq.curve.clients_dir", id="missing-dir"),
    ],
)
def test_unusable_curve_files_name_the_key(keydir: Path, change: dict[str, str],
                                           key: str) -> None:
    curve = CurveConfig(server_secret_key=keydir / "server.key_secret",
                        clients_dir=keydir / "clients")
    curve = replace(curve, **{k: keydir / v for k, v in change.items()})
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        CurveKeys.load(curve)


def test_keys_refuses_to_replace_an_existing_client(keydir: Path) -> None:
    err = io.StringIO()
    before = (keydir / "clients" / "console.key").read_bytes()
    assert create_keys(keydir, readers=["console"], controllers=[], out=io.StringIO(),
                       err=err) == 2
    assert "already exists" in err.getvalue()
    assert (keydir / "clients" / "console.key").read_bytes() == before
    secret = keydir / "client_secrets" / "console.key_secret"
    assert secret.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("cmd", sorted(CONTROL_COMMANDS))
def test_policy_refuses_control_commands_to_readers_only(cmd: str) -> None:
    policy = CommandPolicy(frozenset({"CONTROLKEY"}))
    assert policy.refusal(cmd, "CONTROLKEY") is None
    assert policy.refusal(cmd, "READERKEY") is not None
    assert policy.refusal("status", "READERKEY") is None
    assert CommandPolicy().refusal(cmd, None) is None  # without CURVE nobody is identified


def test_listen_with_a_reader_key_prints_heartbeats(
    channels: tuple[Publisher, CommandServer], keydir: Path, tmp_path: Path
) -> None:
    from services.listen import listen

    publisher, commands = channels
    cfg = curve_config(tmp_path, keydir)
    cfg = replace(cfg, zmq=replace(cfg.zmq, publish=publisher.endpoint,
                                   command=commands.endpoint))
    out, err = io.StringIO(), io.StringIO()
    began = time.monotonic()
    assert listen(cfg, timeout_s=1.0, out=out, err=err,
                  keys=client_keys(keydir, "console")) == 0
    assert time.monotonic() - began < 5.0
    assert "heartbeat\t" in out.getvalue(), err.getvalue()
    assert "did not give the latest correction" not in err.getvalue()


def test_igrt_serve_with_curve_end_to_end(keydir: Path, tmp_path: Path,
                                          context: zmq.Context[Any]) -> None:
    from service_process import ServiceProcess

    curve = {"server_secret_key": str(keydir / "server.key_secret"),
             "clients_dir": str(keydir / "clients"),
             "control_clients_dir": str(keydir / "control_clients")}
    svc = ServiceProcess(tmp_path, extra={"zmq": {"curve": curve}}).start()
    try:
        reader, control = client_keys(keydir, "console"), client_keys(keydir, "therapist")
        assert ask(context, svc.command, None, {"cmd": "ping"}, timeout_s=SILENCE_S) is None
        status = ask(context, svc.command, reader, {"cmd": "status"})
        assert status is not None and status["ok"]
        select = {"cmd": "select_plan", "patient_id": "PAT-001", "plan_uid": "1.5.20.1"}
        refused = ask(context, svc.command, reader, select)
        assert refused is not None and "only a control client" in refused["error"]
        allowed = ask(context, svc.command, control, select)  # authorised; the plan is unknown
        assert allowed is not None and "cannot be selected" in allowed["error"]
        sub = subscribe(context, svc.publish, reader)
        try:
            assert sub.poll(5000) and sub.recv_multipart()[0] == b"heartbeat"
        finally:
            sub.close(linger=0)
    finally:
        svc.close()


def test_the_cli_makes_keys_and_listen_asks_for_them(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from services.cli import main

    assert main(["keys", "--dir", str(tmp_path / "k"), "--reader", "tb1-console"]) == 0
    assert "[zmq.curve]" in capsys.readouterr().out
    assert (tmp_path / "k" / "clients" / "tb1-console.key").is_file()
    config = tmp_path / "igrt.toml"
    config.write_text(
        '[zmq]\npublish = "tcp://127.0.0.1:45999"\ncommand = "tcp://127.0.0.1:45998"\n'
        f'[zmq.curve]\nserver_secret_key = "{tmp_path}/k/server.key_secret"\n'
        f'clients_dir = "{tmp_path}/k/clients"\n', encoding="utf-8")
    assert main(["listen", "--config", str(config), "--timeout", "0.5"]) == 2
    assert "--client-key" in capsys.readouterr().err
    secret = tmp_path / "k" / "client_secrets" / "tb1-console.key_secret"
    assert main(["listen", "--config", str(config), "--timeout", "0.5",
                 "--client-key", str(secret)]) == 0  # no service there: it just times out
