"""Renders the review images of each computed correction on its own thread, after the
correction was published (the images never delay the message), and stores them with the
correction (``igrt.store.review_images``). A bounded queue: when full the oldest jobs wait,
the newest never block the worker. What it rendered is read back by :meth:`rendered` (the QA
desk's fused images of a QA phantom: rendered once)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor

from igrt.core.case import Registered
from igrt.core.errors import IgrtError
from igrt.registration.threads import usable_cores
from igrt.review.png import encode
from igrt.review.render import render
from igrt.store import Store

log = logging.getLogger(__name__)

QUEUE_MAX = 8
#: Panels encoded at once: one per core this process may use, at most four.
ENCODERS = max(1, min(4, usable_cores()))


class ReviewRenderer:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: queue.Queue[tuple[int, Registered] | None] = queue.Queue(maxsize=QUEUE_MAX)
        self._thread: threading.Thread | None = None
        self._pending: set[int] = set()
        self._lock = threading.Condition()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="igrt-review", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish what is queued, then end."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout_s)

    def submit(self, seq: int, registered: Registered) -> None:
        """Queue the images of correction ``seq``; never blocks (a full queue drops the job and
        logs it: the page then says the images are not available)."""
        with self._lock:
            self._pending.add(seq)
        try:
            self._queue.put_nowait((seq, registered))
        except queue.Full:
            with self._lock:
                self._pending.discard(seq)
            log.error("review images of seq %d not rendered: %d renderings are waiting", seq,
                      QUEUE_MAX)

    def pending(self, seq: int) -> bool:
        """The images of ``seq`` are queued or being rendered."""
        with self._lock:
            return seq in self._pending

    def rendered(self, seq: int, names: Collection[str], timeout_s: float) -> dict[str, bytes]:
        """The stored PNGs of ``seq`` among ``names``, once rendering them ended (waiting at most
        ``timeout_s``); {} when they are not there (never queued, dropped, failed, too slow)."""
        with self._lock:
            if not self._lock.wait_for(lambda: seq not in self._pending, timeout_s):
                return {}
        try:
            return {name: path.read_bytes()
                    for name, path in self._store.review_images(seq).items() if name in names}
        except (OSError, IgrtError):
            log.exception("review images of seq %d could not be read back", seq)
            return {}

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            seq, registered = job
            try:
                t0 = time.perf_counter()
                panels = render(registered)
                # Pillow's PNG encoder runs outside Python's lock: the panels are encoded side by
                # side, one per core
                with ThreadPoolExecutor(ENCODERS, thread_name_prefix="igrt-review-png") as pool:
                    pngs = list(pool.map(encode, panels))
                for panel, png in zip(panels, pngs, strict=True):
                    self._store.save_review_image(seq, panel.name, png)
                log.info("review images of seq %d: %d in %.2f s", seq, len(panels),
                         time.perf_counter() - t0)
            except Exception:  # noqa: BLE001 - the correction stands; the page says so
                log.exception("review images of seq %d could not be rendered", seq)
            finally:
                with self._lock:
                    self._pending.discard(seq)
                    self._lock.notify_all()
