"""The command socket of CONTRACT §4: a REP socket, one JSON object in, one JSON object out.

Requests (every reply has ``"ok"``; ``"error"``, a sentence, when ``ok`` is false; ``"cmd"``
echoes the command when there was one):

- ``{"cmd": "ping"}`` → ``room``, ``time``;
- ``{"cmd": "status"}`` → ``state``, ``last_seq``, ``room``, ``version``, ``time`` (and
  ``queue_length`` and ``record_pending`` when the service gives them);
- ``{"cmd": "latest"}`` → ``message``: the last correction message exactly as published (the
  stored text, parsed), or ``null``;
- ``{"cmd": "result", "series_uid": "..."}`` → ``message`` for that CBCT series, or ``ok: false``
  when there is none;
- ``{"cmd": "select_plan", "patient_id": "...", "plan_uid": "..."}`` → ``patient_id``,
  ``plan_uid`` once the selection is durable, or ``ok: false`` with the store's reason;
- ``{"cmd": "approve", "seq": N, "operator": "...", "acknowledge": true}`` and
  ``{"cmd": "reject", "seq": N, "operator": "...", "reason": "..."}`` → ``message``: the
  decision message, stored durably, then published on the ``decision`` topic (CONTRACT §7);
- ``{"cmd": "decision", "seq": N}`` → ``message``: the decision on that seq, or ``null``;
- ``{"cmd": "register_again", "series_uid": "...", "plan_uid": "..."}`` → ``series_uid``,
  ``plan_uid``, ``queued: true``; the new correction follows on the feed;
- ``{"cmd": "qa_expect", "patient_id": "...", "lateral_mm": L, "longitudinal_mm": G,
  "vertical_mm": V, "pitch_deg": P, "roll_deg": R, "rotation_deg": Y, "phantom": "..."}``
  (rotations and ``phantom`` optional) → ``declaration``, once durable: the next CBCT of that
  patient is also scored as physics QA (``services.qa_desk``);
- ``{"cmd": "qa_result", "seq": N}`` → ``message``: the QA run of correction N, or ``null``.

Authorisation (CONTRACT §10): with CURVE on, the ZAP handler admits only listed clients and
gives each request the client's identity; :class:`~services.command_policy.CommandPolicy`
refuses the control commands to readers, with a sentence.

Limits: a request larger than :data:`MAX_REQUEST_BYTES` gets ``ok: false`` with a sentence (the
socket accepts up to :data:`MAX_FRAME_BYTES`, beyond which libzmq drops the connection, so a
client cannot make the service buffer without bound); a request nested too deeply for the JSON
parser is a request error.

Requests are checked strictly (``services.command_requests``). Every request gets exactly one
reply, whatever happens while handling it, so the REP state machine never wedges.

Threading model: the REP socket is created, bound, polled and closed by one thread only, the one
:meth:`CommandServer.start` launches. It polls with a short timeout so :meth:`CommandServer.stop`
ends it promptly. The store and the ``state`` / ``queue_length`` callables are called on that
thread: they must be thread-safe (``igrt.store.Store`` is).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any, Protocol

import zmq

from igrt.config import Config
from igrt.core.clock import now_text
from igrt.core.decisions import Decision, DecisionRequest
from igrt.core.errors import CommandError, IgrtError
from igrt.core.json_text import to_json_bytes
from igrt.core.uids import uid_problem
from services.command_policy import CommandPolicy
from services.command_requests import check_fields, read_command
from services.curve import CurveKeys
from services.zmq_thread import SocketThread

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 16 * 1024 * 1024  # larger messages are dropped by libzmq (and the peer too)
DEFAULT_POLL_S = 0.1


class CommandStore(Protocol):
    """What the command server needs of the store (``igrt.store.Store`` provides it)."""

    def latest_correction_json(self) -> str | None: ...

    def correction_for_series(self, series_uid: str) -> dict[str, Any] | None: ...

    def last_seq(self) -> int: ...

    def select_plan(self, patient_id: str, plan_uid: str) -> None: ...

    def decision(self, seq: int) -> dict[str, Any] | None: ...


class QaCommands(Protocol):
    """Physics QA on the command socket (``services.qa_desk.QaDesk``)."""

    def declare(self, patient_id: str, offset: dict[str, float],
                phantom: str | None) -> dict[str, Any]: ...

    def result(self, seq: int) -> dict[str, Any] | None: ...


class Desk(Protocol):
    """Where decisions and new registrations are carried out (``services.decision_desk``)."""

    def decide(self, request: DecisionRequest) -> dict[str, Any]: ...

    def register_again(self, series_uid: str, plan_uid: str | None) -> None: ...


def _package_version() -> str:
    try:
        return metadata.version("igrt")
    except metadata.PackageNotFoundError:
        return "unknown"


class CommandServer(SocketThread):
    """Owns the REP socket at ``[zmq] command`` (or ``endpoint``) and its thread.

    ``store``: the durable store (:class:`CommandStore`). ``state()``: the service state shown by
    ``status``. ``queue_length()``: optional, CBCT series waiting for registration. ``version``:
    defaults to the installed igrt version.
    """

    socket_type = zmq.REP
    config_key = "zmq.command"
    thread_name = "igrt-commands"
    error_type = CommandError

    def __init__(
        self,
        config: Config,
        store: CommandStore,
        *,
        state: Callable[[], str],
        queue_length: Callable[[], int] | None = None,
        desk: Desk | None = None,
        record_pending: Callable[[], int] | None = None,
        qa: QaCommands | None = None,
        version: str | None = None,
        endpoint: str | None = None,
        context: zmq.Context[Any] | None = None,
        poll_s: float = DEFAULT_POLL_S,
        curve: CurveKeys | None = None,
    ) -> None:
        super().__init__(endpoint if endpoint is not None else config.zmq.command,
                         context=context, curve=curve)
        self._policy = CommandPolicy(None if curve is None else curve.controllers)
        self._room = config.room
        self._store = store
        self._state = state
        self._queue_length, self._record_pending = queue_length, record_pending  # for status
        self._desk, self._qa = desk, qa  # review and QA commands; None: not offered
        self._version = version if version is not None else _package_version()
        self._poll_ms = max(1, round(poll_s * 1000))
        self._stop = threading.Event()

    # --- lifecycle -------------------------------------------------------------------------------
    def configure(self, sock: zmq.Socket[Any]) -> None:
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)

    def on_started(self) -> None:
        log.info("command socket on %s", self.endpoint)

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return self.thread_alive and not self._stop.is_set()

    # --- request handling (pure of sockets) ------------------------------------------------------
    def reply_to(self, frames: list[bytes], *, client_id: str | None = None) -> bytes:
        """The reply (UTF-8 JSON) to one request's frames from the client ``client_id`` (its
        CURVE identity, None without CURVE). Never raises."""
        cmd: str | None = None
        try:
            cmd, raw = read_command(frames)
            request = check_fields(cmd, raw)
            refusal = self._policy.refusal(cmd, client_id)
            if refusal is not None:
                log.warning("command %s refused to client %s: not a control client", cmd,
                            (client_id or "?")[:8])
                raise CommandError(refusal)
            reply: dict[str, Any] = {"ok": True, "cmd": cmd, **self._execute(cmd, request)}
        except CommandError as exc:
            reply = _failure(cmd, exc.message)
        except IgrtError as exc:  # the store's own sentence (unknown plan, invalid UID, I/O)
            reply = _failure(cmd, exc.message)
        except Exception as exc:
            log.exception("command %r failed unexpectedly", cmd)
            reply = _failure(
                cmd, f"internal error while handling {cmd!r}: {type(exc).__name__}; see the log"
            )
        try:
            return _encode(reply)
        except (TypeError, ValueError) as exc:
            log.error("reply to %r cannot be encoded as JSON: %s", cmd, exc)
            return _encode(_failure(cmd, f"internal error: the reply to {cmd!r} is not JSON"))

    def _execute(self, cmd: str, request: dict[str, Any]) -> dict[str, Any]:
        if cmd == "ping":
            return {"room": self._room, "time": now_text()}
        if cmd == "status":
            status: dict[str, Any] = {
                "state": str(self._state()),
                "last_seq": self._store.last_seq(),
                "room": self._room,
                "version": self._version,
                "time": now_text(),
            }
            if self._queue_length is not None:
                status["queue_length"] = int(self._queue_length())
            if self._record_pending is not None:
                status["record_pending"] = int(self._record_pending())
            return status
        if cmd == "latest":
            text = self._store.latest_correction_json()
            return {"message": None if text is None else json.loads(text)}
        if cmd == "result":
            series_uid = request["series_uid"]
            problem = uid_problem(series_uid)
            if problem is not None:
                raise CommandError(
                    f"series_uid {series_uid!r} is not a valid DICOM UID ({problem})"
                )
            message = self._store.correction_for_series(series_uid)
            if message is None:
                raise CommandError(
                    f"no result for series {series_uid}: it was not registered (yet)"
                )
            return {"message": message}
        if cmd == "select_plan":
            patient_id, plan_uid = request["patient_id"], request["plan_uid"]
            self._store.select_plan(patient_id, plan_uid)
            log.info("plan %s selected on the command socket", plan_uid)
            return {"patient_id": patient_id, "plan_uid": plan_uid}
        if cmd in ("approve", "reject"):
            decision = Decision.APPROVED if cmd == "approve" else Decision.REJECTED
            message = self._need_desk(cmd).decide(DecisionRequest(
                seq=request["seq"], decision=decision, operator=request["operator"],
                acknowledge=request.get("acknowledge", False), reason=request.get("reason")))
            return {"message": message}
        if cmd == "decision":
            return {"message": self._store.decision(request["seq"])}
        if cmd == "register_again":
            series_uid, plan_uid = request["series_uid"], request.get("plan_uid")
            self._need_desk(cmd).register_again(series_uid, plan_uid)
            return {"series_uid": series_uid, "plan_uid": plan_uid, "queued": True}
        if cmd == "qa_expect":
            offset = {k: float(v) for k, v in request.items() if k.endswith(("_mm", "_deg"))}
            return {"declaration": self._need_qa(cmd).declare(
                request["patient_id"], offset, request.get("phantom"))}
        if cmd == "qa_result":
            return {"message": self._need_qa(cmd).result(request["seq"])}
        raise AssertionError(cmd)  # read_command admits only the commands above

    def _need_desk(self, cmd: str) -> Desk:
        if self._desk is None:
            raise CommandError(f"{cmd} is not available: this command server has no desk")
        return self._desk

    def _need_qa(self, cmd: str) -> QaCommands:
        if self._qa is None:
            raise CommandError(f"{cmd} is not available: this command server has no QA desk")
        return self._qa

    # --- the command thread ----------------------------------------------------------------------
    def serve(self, sock: zmq.Socket[Any]) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(self._poll_ms):
                continue
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                continue
            client_id = str(parts[0].get("User-Id")) if self._policy.authenticates else None
            reply = self.reply_to([part.bytes for part in parts], client_id=client_id)
            try:
                sock.send(reply, zmq.NOBLOCK)
            except zmq.ZMQError as exc:  # the requester went away: REP drops the reply
                log.warning("cannot send a command reply: %s", exc)


def _failure(cmd: str | None, error: str) -> dict[str, Any]:
    reply: dict[str, Any] = {"ok": False}
    if cmd is not None:
        reply["cmd"] = cmd
    reply["error"] = error
    return reply


def _encode(reply: dict[str, Any]) -> bytes:
    return to_json_bytes(reply)
