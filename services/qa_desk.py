"""Physics QA in the service (README "Physics QA"): a physicist declares, on the command socket,
the offset a QA phantom is set up at (``qa_expect``, durable in the QA history); the next CBCT of
that Patient ID is registered and published as usual, then scored against the offset on this
desk's own thread, recorded in the same history as ``igrt qa run``'s runs, and published on the
``qa`` topic exactly as stored. The declaration is used once: the CBCT takes it (durably) when
its correction is published, so a second CBCT of the phantom is not scored against it.

Hooks: :meth:`QaDesk.on_registered` is the worker's ``on_registered`` (a computed correction and
what the registration made of it, for the fused images); :meth:`QaDesk.on_published` sees every
correction the worker publishes and scores the failed ones (a failed registration of a declared
phantom is a failed QA run, not a silence)."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from igrt.config import Config
from igrt.core.case import Registered
from igrt.core.errors import IgrtError
from igrt.core.json_text import to_json
from igrt.core.qa import AXES, correction_from, expected_offset
from igrt.core.reasons import ReasonCode, reason
from igrt.physics_qa import fused_images, score_correction
from igrt.store import Store
from igrt.store.qa_history import QaHistory

log = logging.getLogger(__name__)

QUEUE_MAX = 16


@dataclass(frozen=True)
class _Job:
    seq: int
    correction: dict[str, Any]
    declaration: dict[str, Any]
    registered: Registered | None


class QaDesk:
    def __init__(self, config: Config, store: Store, history: QaHistory, *,
                 publish_qa: Callable[[str], None],
                 publish_error: Callable[[str, dict[str, Any]], None],
                 images: Callable[[int, Registered | None], dict[str, bytes]] | None = None,
                 ) -> None:
        """``images(seq, registered)``: the fused images of a run (default: rendered here)."""
        self._config = config
        self._images = images or (lambda seq, registered: fused_images(registered))
        self._store = store
        self._history = history
        self._publish_qa = publish_qa
        self._publish_error = publish_error
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=QUEUE_MAX)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="igrt-qa", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the runs queued, then end."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)
            self._thread = None

    # --- commands --------------------------------------------------------------------------------
    def declare(self, patient_id: str, offset: Mapping[str, float],
                phantom: str | None) -> dict[str, Any]:
        """Record the offset the next CBCT of ``patient_id`` is acquired at (replacing one
        declared before); returns the declaration as stored."""
        expected = expected_offset([float(offset.get(a, 0.0)) for a in AXES])
        declaration = {"expected": expected.as_dict(), "phantom": phantom or patient_id}
        stored = self._history.declare(patient_id.strip(), declaration,
                                       valid_s=self._config.qa.declaration_valid_h * 3600.0)
        log.info("QA offset declared for a phantom: %s", expected)
        return stored

    def result(self, seq: int) -> dict[str, Any] | None:
        return self._history.run_for_seq(seq)

    # --- worker hooks (worker thread; never block, never raise) ----------------------------------
    def on_registered(self, seq: int, registered: Registered) -> None:
        try:
            correction = self._store.correction_by_seq(seq)
        except IgrtError as exc:
            self._fault(f"correction {seq} could not be read for QA: {exc.message}", seq)
            return
        if correction is not None:
            self._maybe_queue(seq, correction, registered)

    def on_published(self, json_text: str) -> None:
        try:
            correction = json.loads(json_text)
            if correction.get("status") == "failed":
                self._maybe_queue(int(correction["seq"]), correction, None)
        except Exception:  # noqa: BLE001 - the correction stands; the log has it
            log.exception("QA: a published correction could not be examined")

    def _maybe_queue(self, seq: int, correction: dict[str, Any],
                     registered: Registered | None) -> None:
        patient = correction.get("patient_id")
        if not isinstance(patient, str):
            return
        try:  # a read first: most corrections are of patients, who have no declaration
            if self._history.expectation(patient.strip()) is None:
                return
            declaration = self._history.take_expectation(patient.strip())
        except IgrtError as exc:
            self._fault(f"the declared QA offset for correction {seq} could not be read: "
                        f"{exc.message}", seq)
            return
        if declaration is None:
            return
        try:
            self._queue.put_nowait(_Job(seq, correction, declaration, registered))
        except queue.Full:
            self._fault(f"the QA run of correction {seq} was not scored: {QUEUE_MAX} QA runs "
                        "are waiting; score it with igrt qa run", seq)

    # --- the QA thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._score(job)
            except Exception as exc:  # noqa: BLE001 - reported, the desk goes on
                log.exception("QA run of correction %d failed", job.seq)
                self._fault(f"the QA run of correction {job.seq} could not be recorded: "
                            f"{getattr(exc, 'message', exc)}", job.seq)

    def _score(self, job: _Job) -> None:
        declared = job.declaration
        expected = correction_from(declared["expected"])
        message = score_correction(
            job.correction, expected, self._config, source="service",
            phantom=declared.get("phantom"),
            extra={"seq": job.seq, "declared_at": declared.get("declared_at"),
                   "registration_s": (job.correction.get("registration") or {}).get(
                       "elapsed_s")})
        images = self._images(job.seq, job.registered)
        stored = self._history.append_run(message, images)
        self._publish_qa(to_json(stored))
        log.info("QA run %d of correction seq %d: %s", stored["run_id"], job.seq,
                 stored["level"])

    def _fault(self, why: str, seq: int) -> None:
        text = reason(ReasonCode.QA_HISTORY, why)
        log.error("%s", text)
        try:
            self._publish_error(text, {"seq": seq})
        except Exception:  # noqa: BLE001 - the feed itself is down; the log has it
            log.exception("could not publish the QA fault")

