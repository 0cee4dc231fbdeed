"""The record sender (CONTRACT §8): delivers the queued DICOM records to every
``[[record.destinations]]`` by C-STORE, a thin adapter over the store's record queue.

One thread. Each turn it sends every delivery that is due (oldest first), one association per
delivery, and records the outcome durably: acknowledged (the destination answered with a
success or warning status: it holds the object), or failed with the reason and the time of the
next attempt (back-off from ``retry_initial_s``, doubled per failure, at most ``retry_max_s``).
Nothing is ever dropped: a record is retried until acknowledged, also across restarts (the queue
is in the store), unreachable destinations, rejected associations and error statuses. A
delivery still unacknowledged ``alarm_after_s`` after it was queued publishes one ``error``
message (reason ``record_undelivered``) and is logged as an error; it keeps being retried.

Delivery is at least once: the object is built once at approval, so when the service stops
between the destination's answer and our note of it, the destination receives the very same SOP
instance again (a re-send), never a second, different record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from io import BytesIO
from typing import Any, Protocol

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, SpatialRegistrationStorage
from pynetdicom.status import code_to_category

from igrt.config import Config, Destination
from igrt.core.clock import iso_utc, utc_now
from igrt.core.errors import RecordDeliveryError
from igrt.core.reasons import ReasonCode, reason
from igrt.store import Store
from igrt.store.records_queue import Delivery
from services.ae import make_ae

log = logging.getLogger(__name__)

#: What the sender proposes for the Spatial Registration Storage SCU role (conformance statement).
SCU_SOP_CLASSES = (SpatialRegistrationStorage,)
SCU_TRANSFER_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
POLL_S = 1.0


class Deliver(Protocol):
    def __call__(self, data: bytes, destination: Destination, *, calling_ae: str,
                 timeout_s: float) -> int: ...


def deliver(data: bytes, destination: Destination, *, calling_ae: str, timeout_s: float) -> int:
    """C-STORE one encoded object to ``destination``; returns the status it answered. Raises
    :class:`RecordDeliveryError` (a sentence) when there is no association or no answer."""
    where = f"{destination.ae_title}@{destination.host}:{destination.port}"
    ds = pydicom.dcmread(BytesIO(data))
    ae = make_ae(calling_ae, timeout_s=timeout_s)
    for sop_class in SCU_SOP_CLASSES:
        ae.add_requested_context(sop_class, list(SCU_TRANSFER_SYNTAXES))
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
    if not assoc.is_established:
        how = "rejected the association" if assoc.is_rejected else (
            "did not answer (no association: the destination is down or unreachable)")
        raise RecordDeliveryError(f"{where} {how}")
    try:
        try:
            status = assoc.send_c_store(ds)
        except ValueError as exc:  # no accepted presentation context for the SOP class
            raise RecordDeliveryError(
                f"{where} does not accept Spatial Registration Storage: {exc}") from None
    finally:
        if assoc.is_established:
            assoc.release()
    if not status or "Status" not in status:
        raise RecordDeliveryError(f"{where} gave no C-STORE response (timeout or connection lost)")
    code = int(status.Status)
    if code_to_category(code) not in ("Success", "Warning"):
        comment = str(status.get("ErrorComment", "") or "").strip()
        raise RecordDeliveryError(
            f"{where} answered the C-STORE with status 0x{code:04X}"
            + (f" ({comment})" if comment else ""))
    return code


class RecordSender:
    """Owns the sender thread. ``publish_error(reason, context)`` publishes an ``error``
    message; ``clock`` is the wall clock (aware UTC); ``send`` does one delivery."""

    def __init__(self, config: Config, store: Store, *,
                 publish_error: Callable[[str, dict[str, Any]], None],
                 clock: Callable[[], datetime] = utc_now, send: Deliver = deliver,
                 poll_s: float = POLL_S) -> None:
        self._cfg = config.record
        self._store = store
        self._publish_error = publish_error
        self._clock = clock
        self._send = send
        self._poll_s = poll_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- any thread ------------------------------------------------------------------------------
    def start(self) -> None:
        pending = self._store.record_pending()
        if pending:
            log.info("%d record deliveries pending from before the start", pending)
        self._thread = threading.Thread(target=self._run, name="igrt-record", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the delivery in progress (bounded by ``[record] timeout_s``)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self._cfg.timeout_s + 5.0)
            if self._thread.is_alive():
                log.error("the record sender did not stop within %g s",
                          self._cfg.timeout_s + 5.0)

    def notify(self) -> None:
        """A record was queued: try it now instead of at the next poll."""
        self._wake.set()

    def pending(self) -> int:
        """Deliveries not acknowledged yet (``record_pending`` of ``status``)."""
        return self._store.record_pending()

    # --- the sender thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the sender must outlive any one fault
                log.exception("record sender: unexpected error; trying again")
            self._wake.wait(self._poll_s)
            self._wake.clear()

    def step(self) -> None:
        """Attempt every due delivery, then raise the alarms that are due. After a failure, the
        other deliveries to that destination wait for the next turn: an unreachable OIS costs
        one timeout per turn, not one per queued record, and never holds up the others."""
        failed: set[str] = set()
        for delivery in self._store.due_deliveries(iso_utc(self._clock())):
            if self._stopping.is_set():
                return
            if delivery.ae_title in failed:
                continue
            if not self._attempt(delivery):
                failed.add(delivery.ae_title)
        self._alarms()

    def _attempt(self, delivery: Delivery) -> bool:
        what = f"record of seq {delivery.seq} ({delivery.sop_instance_uid})"
        destination = next((d for d in self._cfg.destinations
                            if d.ae_title == delivery.ae_title), None)
        try:
            if destination is None:
                raise RecordDeliveryError(
                    f"destination {delivery.ae_title!r} is no longer in [[record.destinations]]; "
                    "add it again to deliver this record")
            record = self._store.record_object(delivery.seq)
            if record is None:
                raise RecordDeliveryError(f"the {what} is missing from the store")
            status = self._send(record.data, destination, calling_ae=self._cfg.calling_ae_title,
                                timeout_s=self._cfg.timeout_s)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and retried
            error = exc.message if isinstance(exc, RecordDeliveryError) else \
                f"{type(exc).__name__}: {exc}"
            delay = min(self._cfg.retry_initial_s * 2 ** min(delivery.attempts, 30),
                        self._cfg.retry_max_s)
            next_at = self._clock() + timedelta(seconds=delay)
            self._store.delivery_failed(delivery.seq, delivery.ae_title, error, iso_utc(next_at))
            log.warning("%s to %s not delivered (attempt %d): %s; next attempt in %g s", what,
                        delivery.ae_title, delivery.attempts + 1, error, delay)
            return False
        self._store.delivery_acknowledged(delivery.seq, delivery.ae_title, status)
        if code_to_category(status) == "Warning":
            log.warning("%s stored by %s with warning status 0x%04X", what, delivery.ae_title,
                        status)
        if delivery.alarmed_at is not None:
            log.info("%s finally delivered to %s", what, delivery.ae_title)
        return True

    def _alarms(self) -> None:
        now = self._clock()
        for d in self._store.deliveries(pending_only=True):
            if d.alarmed_at is not None:
                continue
            queued = datetime.fromisoformat(d.queued_at.replace("Z", "+00:00"))
            if (now - queued).total_seconds() < self._cfg.alarm_after_s:
                continue
            text = reason(ReasonCode.RECORD_UNDELIVERED,
                          f"the record of seq {d.seq} has not reached {d.ae_title} "
                          f"{self._cfg.alarm_after_s:g} s after approval ({d.attempts} attempts; "
                          f"last error: {d.last_error or 'none yet'}); igrt keeps retrying")
            log.error("%s", text)
            try:
                self._publish_error(text, {"seq": d.seq, "destination": d.ae_title,
                                           "sop_instance_uid": d.sop_instance_uid})
            except Exception:  # noqa: BLE001 - the feed is down: raise the alarm next turn
                log.exception("could not publish the record alarm of seq %d", d.seq)
                continue
            self._store.delivery_alarmed(d.seq, d.ae_title)
