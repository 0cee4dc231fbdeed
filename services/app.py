"""``igrt serve``: the daemon of CONTRACT §3–6. Wires the durable store, the registration
worker, the ZeroMQ publisher and command channel, and the DICOM Storage SCP; tells systemd
READY once every socket is bound and feeds its watchdog from the worker's loop."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

from igrt.config import Config
from igrt.core.errors import IgrtError
from igrt.store import Store
from services.commands import CommandServer
from services.publisher import Publisher
from services.scp import StorageScp
from services.sdnotify import Notifier, watchdog_interval_s
from services.worker import Worker

log = logging.getLogger(__name__)


@dataclass
class Service:
    """All parts of one room's service. ``start()`` binds everything or raises; ``stop()``
    shuts down in the order that loses nothing (no new instances, finish the registration in
    progress, flush the feed, close the store)."""

    config: Config
    notifier: Notifier = field(default_factory=Notifier)
    store: Store | None = None
    worker: Worker | None = None
    publisher: Publisher | None = None
    commands: CommandServer | None = None
    scp: StorageScp | None = None
    watchdog_s: float | None = field(default_factory=watchdog_interval_s)
    _last_watchdog: float = 0.0

    def start(self) -> None:
        cfg = self.config
        cfg.storage.dir.mkdir(parents=True, exist_ok=True)
        self.store = store = Store.open(cfg.storage.dir)
        self.publisher = publisher = Publisher(cfg, state=self.state, last_seq=store.last_seq)
        publisher.start()
        self.worker = worker = Worker(cfg, store, publish=publisher.publish_correction_json,
                                      publish_error=publisher.publish_error, tick=self._tick)
        self.commands = commands = CommandServer(cfg, store, state=self.state,
                                                 queue_length=worker.queue_length)
        commands.start()
        worker.warm()  # engines run once, recent planning sets prepared: before READY
        worker.start()
        self.scp = scp = StorageScp(cfg, store, on_series_activity=worker.notify)
        scp.start()

    def state(self) -> str:
        return self.worker.state() if self.worker is not None else "starting"

    def _tick(self) -> None:
        """Called from the worker's loop (at least every 0.2 s, except during a registration):
        the watchdog is fed, at half its interval, only while the feed and the command channel
        are alive too."""
        if self.watchdog_s is None:
            return
        now = time.monotonic()
        if now - self._last_watchdog < self.watchdog_s / 2:
            return
        if (self.publisher is not None and self.publisher.running
                and self.commands is not None and self.commands.running):
            self._last_watchdog = now
            self.notifier.watchdog()

    def describe(self) -> str:
        cfg = self.config
        dicom = f"{cfg.dicom.ae_title}@{cfg.dicom.host}:{self.scp.port if self.scp else '?'}"
        publish = self.publisher.endpoint if self.publisher else "?"
        command = self.commands.endpoint if self.commands else "?"
        return (f"room {cfg.room}: DICOM {dicom}, publish {publish}, command {command}, "
                f"store {cfg.storage.dir}")

    def stop(self) -> None:
        self.notifier.stopping()
        if self.scp is not None:
            self.scp.stop()
        if self.worker is not None:
            self.worker.stop()
        if self.publisher is not None:
            self.publisher.stop()
        if self.commands is not None:
            self.commands.stop()
        if self.store is not None:
            self.store.close()


def serve(config: Config) -> int:
    """Run until SIGTERM/SIGINT. Exit 0 on a clean stop, 2 when start-up fails (a message
    naming the configuration key or the resource is printed)."""
    done = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service = Service(config)
    try:
        service.start()
    except (IgrtError, OSError) as exc:
        message = exc.message if isinstance(exc, IgrtError) else str(exc)
        print(f"igrt: cannot start: {message}", file=sys.stderr)
        service.stop()
        return 2
    description = service.describe()
    log.info("ready: %s", description)
    print(f"igrt: ready: {description}", file=sys.stderr, flush=True)
    service.notifier.ready(status=description)
    while not done.wait(1.0):
        pass
    service.stop()
    return 0
