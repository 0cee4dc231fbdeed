"""``igrt serve``: the daemon of CONTRACT §3–6. Wires the durable store, the registration
worker, the ZeroMQ publisher and command channel, and the DICOM Storage SCP; tells systemd
READY once every socket is bound and feeds its watchdog from the worker's loop."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

from igrt.config import Config
from igrt.core.case import Registered
from igrt.core.errors import IgrtError
from igrt.physics_qa import KEPT_PANELS, fused_images
from igrt.store import Store
from igrt.store.qa_history import QaHistory
from services.commands import CommandServer
from services.curve import CurveKeys
from services.decision_desk import DecisionDesk, RecordDesk
from services.housekeeping import DiskWatch, Retention
from services.operators import Operators, load_operators
from services.publisher import Publisher
from services.qa_desk import QaDesk
from services.record_sender import RecordSender
from services.review_page.app import create_app
from services.review_page.server import ReviewServer
from services.review_renderer import ReviewRenderer
from services.scp import StorageScp
from services.sdnotify import Notifier, watchdog_interval_s
from services.worker import Worker

log = logging.getLogger(__name__)

#: How long a QA run waits for the review images of its correction (rendered once, for the page
#: and the QA history) before it renders its own.
QA_IMAGES_WAIT_S = 120.0


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
    renderer: ReviewRenderer | None = None
    ui: ReviewServer | None = None
    qa_history: QaHistory | None = None
    qa: QaDesk | None = None
    ui_address: str = ""
    records: RecordSender | None = None
    retention: Retention | None = None
    watchdog_s: float | None = field(default_factory=watchdog_interval_s)
    _last_watchdog: float = 0.0

    def start(self) -> None:
        cfg = self.config
        cfg.storage.dir.mkdir(parents=True, exist_ok=True)
        curve = CurveKeys.load(cfg.zmq.curve) if cfg.zmq.curve is not None else None
        self.store = store = Store.open(cfg.storage.dir)
        operators = (Operators(load_operators(cfg.ui.operators_file))
                     if cfg.ui.operators_file is not None else None)
        disk = DiskWatch(cfg.storage.dir, cfg.storage.free_space_warning_mb)
        self.publisher = publisher = Publisher(cfg, state=self.state, last_seq=store.last_seq,
                                               warnings=disk.warnings, curve=curve)
        publisher.start()
        self.renderer = renderer = ReviewRenderer(store)
        renderer.start()
        self.qa_history = QaHistory.open(cfg.storage.dir)
        def qa_images(seq: int, registered: Registered | None) -> dict[str, bytes]:
            """The review images of ``seq`` (rendered once, for the page); rendered here only
            when the renderer has none."""
            if registered is None:  # a failed registration has no images
                return {}
            images = renderer.rendered(seq, KEPT_PANELS, QA_IMAGES_WAIT_S)
            if set(images) == set(KEPT_PANELS):
                log.info("QA run of seq %d: %d fused images, the review page's", seq, len(images))
            else:
                log.warning("QA run of seq %d: its review images are not all available; the "
                            "QA desk renders its own", seq)
                images = fused_images(registered)
            return images

        self.qa = qa = QaDesk(cfg, store, self.qa_history, publish_qa=publisher.publish_qa_json,
                              publish_error=publisher.publish_error, images=qa_images)
        qa.start()

        def publish(text: str) -> None:  # the QA desk sees every stored correction
            try:
                publisher.publish_correction_json(text)
            finally:
                qa.on_published(text)

        def on_registered(seq: int, registered: Registered) -> None:
            try:
                renderer.submit(seq, registered)
            finally:
                qa.on_registered(seq, registered)

        self.worker = worker = Worker(cfg, store, publish=publish,
                                      publish_error=publisher.publish_error, tick=self._tick,
                                      review_url=self.review_url, on_registered=on_registered)
        self.records = records = RecordSender(cfg, store, publish_error=publisher.publish_error)
        desk = DecisionDesk(store, publish_decision=publisher.publish_decision_json,
                            publish_error=publisher.publish_error,
                            request_again=worker.request_again, record=RecordDesk(
                                destinations=[d.ae_title for d in cfg.record.destinations],
                                room=cfg.room, sent=records.notify))
        self.ui = ui = ReviewServer(create_app(store=store, desk=desk, operators=operators,
                                               room=cfg.room, rendering=renderer.pending),
                                    cfg.ui.listen)
        self.ui_address = ui.start()
        self.commands = commands = CommandServer(cfg, store, state=self.state,
                                                 queue_length=worker.queue_length, desk=desk,
                                                 record_pending=records.pending, curve=curve,
                                                 qa=qa)
        commands.start()
        records.start()
        worker.warm()  # engines run once, recent planning sets prepared: before READY
        worker.start()
        self.retention = retention = Retention(cfg, store)
        retention.start()
        self.scp = scp = StorageScp(cfg, store, on_series_activity=worker.notify)
        scp.start()

    def review_url(self, seq: int) -> str:
        """The review page of a correction, as the consoles reach it."""
        base = self.config.ui.base_url or f"http://{_url_host(self.ui_address)}"
        return f"{base}/review/{seq}"

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
                f"review http://{_url_host(self.ui_address)}, store {cfg.storage.dir}")

    def stop(self) -> None:
        self.notifier.stopping()
        if self.scp is not None:
            self.scp.stop()
        if self.worker is not None:
            self.worker.stop()
        if self.ui is not None:
            self.ui.stop()
        if self.renderer is not None:
            self.renderer.stop()
        if self.records is not None:
            self.records.stop()
        if self.retention is not None:
            self.retention.stop()
        if self.qa is not None:
            self.qa.stop()
        if self.publisher is not None:
            self.publisher.stop()
        if self.commands is not None:
            self.commands.stop()
        if self.qa_history is not None:
            self.qa_history.close()
        if self.store is not None:
            self.store.close()


def _url_host(address: str) -> str:
    """``host:port`` for a URL: IPv6 in brackets, the wildcard as this host's name."""
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


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
