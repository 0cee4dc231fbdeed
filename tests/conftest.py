"""Fixtures shared by the test modules: a ZeroMQ context, an open store in a temporary state
directory, the service state the channels report, a running Storage SCP and its events."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from scp_client import make_config
from service_process import ServiceProcess
from store_factory import StepClock
from zmq_clients import ServiceState

from igrt.store import Store
from services.scp import SeriesEvent, StorageScp


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.term()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An open store under ``tmp_path / "state"``; its wall clock steps 1 s per reading."""
    with Store.open(tmp_path / "state", clock=StepClock()) as opened:
        yield opened


@pytest.fixture
def state() -> ServiceState:
    return ServiceState()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def events() -> queue.Queue[SeriesEvent]:
    return queue.Queue()


@pytest.fixture
def scp(state_dir: Path, store: Store, events: queue.Queue[SeriesEvent]) -> Iterator[StorageScp]:
    with StorageScp(make_config(state_dir), store, on_series_activity=events.put) as server:
        yield server


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for one test module's phantoms and service."""
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def service(work: Path) -> Iterator[ServiceProcess]:
    """The real ``igrt serve`` of one test module, on ports it chose (CONTRACT defaults
    otherwise, settle_s 0.5 s)."""
    svc = ServiceProcess(work).start()
    yield svc
    svc.close()
