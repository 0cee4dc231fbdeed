"""``igrt listen``: print the service's feed as a treatment console would see it.

Output: one line per message on stdout, ``topic<TAB>json`` (the JSON exactly as published),
flushed at once; with ``pretty``, blocks for a human instead (``services.listen_pretty``).
Warnings (no answer on the command socket, missed corrections, silence, a message from another
room) go to stderr, prefixed ``igrt listen: warning:``.

Order of operations, so a console that connects late sees the current state and nothing is lost
to ZeroMQ's slow-joiner window:

1. SUB to ``[zmq] publish``, all topics, first;
2. then ask the command socket for ``latest`` and print it (as a ``correction`` line);
3. then print the feed. A correction whose ``seq`` is not above the highest one printed is a
   duplicate (or older than what is shown) and is skipped; a jump in ``seq`` is reported.
   A heartbeat whose ``last_seq`` is above the highest ``seq`` printed means a correction was
   missed (e.g. published before the subscription was live): ``latest`` is asked again.

If the command socket does not answer within ``command_timeout_s`` the REQ socket is discarded
(a REQ socket that sent without a reply cannot be reused), a warning is printed and the feed is
shown anyway; asking is retried at most every :data:`COMMAND_RETRY_S`.

``count``: stop after this many corrections *newer than the one current when listen connected*
(the ``latest`` printed at start does not count, so ``--count 1`` waits for the next result and
never mistakes a stale one for it). ``timeout_s``: stop after this long. Exit status: 0 (count
reached, Ctrl-C, timeout without a count, output closed), 1 (timeout before ``count``
corrections), 2 (the configured endpoints cannot be connected to).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO, TypeGuard

import zmq

from igrt.config import Config
from igrt.core.errors import ConfigError
from igrt.core.json_text import to_json
from igrt.core.messages import Topic
from services.curve import ClientKeys
from services.listen_pretty import Pretty

log = logging.getLogger(__name__)

DEFAULT_COMMAND_TIMEOUT_S = 3.0
COMMAND_RETRY_S = 30.0
POLL_SLICE_S = 0.25  # longest single wait, so Ctrl-C and the deadline are noticed promptly

_TCP = re.compile(r"tcp://(?P<host>\[[^\]]*\]|[^:/\[\]]+):(?P<port>\*|[0-9]+)")
_ANY_V4 = {"*", "0.0.0.0"}


def connect_endpoint(bind_endpoint: str, key: str) -> str:
    """Where a client connects to reach a socket bound at ``bind_endpoint``: a wildcard host
    (``*``, ``0.0.0.0``, ``[::]``) becomes the loopback address; ``ipc://`` is unchanged.
    A free-port endpoint (``:*`` or ``:0``) has no fixed address: :class:`ConfigError`."""
    match = _TCP.fullmatch(bind_endpoint)
    if match is None:
        return bind_endpoint
    host, port = match["host"], match["port"]
    if port in ("*", "0") or int(port) == 0:
        raise ConfigError(
            f"{key}: {bind_endpoint!r} lets the service pick a free port at start-up, so a "
            "client cannot know where to connect; configure a fixed port"
        )
    if host in _ANY_V4:
        host = "127.0.0.1"
    elif host == "[::]":
        host = "[::1]"
    return f"tcp://{host}:{port}"


def listen(
    config: Config,
    *,
    count: int = 0,
    timeout_s: float = 0.0,
    out: TextIO | None = None,
    err: TextIO | None = None,
    command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    pretty: bool = False,
    keys: ClientKeys | None = None,
) -> int:
    """Print the feed (see the module docstring); returns the exit status. ``keys``: this
    client's CURVE keys when the service runs with ``[zmq.curve]``."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        publish = connect_endpoint(config.zmq.publish, "zmq.publish")
        command = connect_endpoint(config.zmq.command, "zmq.command")
    except ConfigError as exc:
        print(f"igrt listen: {exc.message}", file=err, flush=True)
        return 2
    context: zmq.Context[Any] = zmq.Context()
    feed = _Feed(config, context, publish, command, out, err, command_timeout_s,
                 Pretty() if pretty else None, keys)
    try:
        return feed.run(count=count, timeout_s=timeout_s)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    finally:
        feed.close()
        # every socket closed without lingering, also one a Ctrl-C caught between its creation
        # and its own clean-up (term() would wait for it forever)
        context.destroy(linger=0)


class _Feed:
    def __init__(
        self,
        config: Config,
        context: zmq.Context[Any],
        publish: str,
        command: str,
        out: TextIO,
        err: TextIO,
        command_timeout_s: float,
        pretty: Pretty | None = None,
        keys: ClientKeys | None = None,
    ) -> None:
        self._pretty = pretty
        self._room = config.room
        self._keys = keys
        self._context = context
        self._publish, self._command = publish, command  # the two endpoints
        self._out, self._err = out, err
        self._command_timeout_s = command_timeout_s
        self._silence_s = 3.0 * config.zmq.heartbeat_s + 1.0
        self._sub: zmq.Socket[Any] | None = None
        self._max_seq: int | None = None  # highest correction seq printed; None: unknown
        self._baseline = 0  # seq current at connect; corrections above it count
        self._new = 0
        self._next_command_try = 0.0
        self._other_room_warned = False

    def run(self, *, count: int, timeout_s: float) -> int:
        start = time.monotonic()
        deadline = start + timeout_s if timeout_s > 0 else None
        sub = self._context.socket(zmq.SUB)
        self._sub = sub
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        if self._keys is not None:
            self._keys.apply(sub)
        sub.connect(self._publish)  # subscribe first, then ask for latest
        latest = self._ask_latest()
        if latest is not None:  # the service answered: from here on, seq gaps are known
            self._max_seq = 0
            if latest:
                self._print(Topic.CORRECTION.value, _compact(latest), latest)
                seq = latest.get("seq")
                self._max_seq = seq if _is_int(seq) else 0
            self._baseline = self._max_seq
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        last_message = time.monotonic()
        silence_warned = False
        while not (count > 0 and self._new >= count):
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                if count > 0:
                    self._warn(
                        f"timed out after {timeout_s:g} s with {self._new} of {count} "
                        "new correction(s)"
                    )
                    return 1
                return 0
            wait_s = POLL_SLICE_S if deadline is None else min(POLL_SLICE_S, deadline - now)
            if not poller.poll(max(1, round(wait_s * 1000))):
                if not silence_warned and time.monotonic() - last_message > self._silence_s:
                    self._warn(
                        f"nothing received from {self._publish} for {self._silence_s:g} s "
                        "(not even a heartbeat); is the service running?"
                    )
                    silence_warned = True
                continue
            frames = sub.recv_multipart()
            last_message = time.monotonic()
            silence_warned = False
            self._on_message(frames)
        return 0

    def close(self) -> None:
        if self._sub is not None:
            self._sub.close(linger=0)
            self._sub = None

    # --- messages --------------------------------------------------------------------------------
    def _on_message(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            self._warn(f"skipped a message of {len(frames)} frames (expected topic and JSON)")
            return
        try:
            topic, text = frames[0].decode("utf-8"), frames[1].decode("utf-8")
            message = json.loads(text)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            self._warn(f"skipped a message that is not UTF-8 JSON: {exc}")
            return
        if not isinstance(message, dict):
            self._warn(f"skipped a {topic!r} message whose JSON is not an object")
            return
        self._check_room(message)
        line = text if "\n" not in text and "\r" not in text else _compact(message)
        if topic == Topic.CORRECTION.value:
            self._on_correction(message, line)
            return
        self._print(topic, line, message)
        if topic == Topic.HEARTBEAT.value:
            last_seq = message.get("last_seq")
            if _is_int(last_seq) and (self._max_seq is None or last_seq > self._max_seq):
                self._catch_up(last_seq)

    def _on_correction(self, message: dict[str, Any], line: str) -> None:
        seq = message.get("seq")
        if not _is_int(seq):
            self._warn(f"a correction message has no integer seq ({seq!r}); printed anyway")
            self._print(Topic.CORRECTION.value, line, message)
            return
        if self._max_seq is not None:
            if seq <= self._max_seq:
                return  # already printed (from latest), or older than what is shown
            if seq > self._max_seq + 1:
                first, last = self._max_seq + 1, seq - 1
                missed = f"seq {first}" if first == last else f"seq {first} to {last}"
                self._warn(f"correction(s) {missed} were not received; ask result for them")
        self._print(Topic.CORRECTION.value, line, message)
        self._max_seq = seq
        if seq > self._baseline:
            self._new += 1

    def _catch_up(self, last_seq: int) -> None:
        """A heartbeat announced a correction we have not printed: ask ``latest`` again."""
        if time.monotonic() < self._next_command_try:
            return
        latest = self._ask_latest()
        if latest:
            self._on_correction(latest, _compact(latest))
        if self._max_seq is None or self._max_seq < last_seq:  # not resolved: do not insist
            self._next_command_try = time.monotonic() + COMMAND_RETRY_S

    def _check_room(self, message: dict[str, Any]) -> None:
        room = message.get("room")
        if room is not None and room != self._room and not self._other_room_warned:
            self._warn(
                f"messages come from room {room!r} but this configuration is for room "
                f"{self._room!r}; check [zmq] publish"
            )
            self._other_room_warned = True

    # --- command socket --------------------------------------------------------------------------
    def _ask_latest(self) -> dict[str, Any] | None:
        """The latest correction (``{}`` when the service has none), or None without an answer.
        A fresh REQ socket each time: one that got no reply is closed, never reused."""
        req = self._context.socket(zmq.REQ)
        try:
            req.setsockopt(zmq.LINGER, 0)
            if self._keys is not None:
                self._keys.apply(req)
            req.connect(self._command)
            try:
                req.send(b'{"cmd":"latest"}', zmq.NOBLOCK)
            except zmq.Again:
                self._no_answer("the request could not be queued")
                return None
            poller = zmq.Poller()
            poller.register(req, zmq.POLLIN)
            deadline = time.monotonic() + self._command_timeout_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._no_answer(f"no answer within {self._command_timeout_s:g} s")
                    return None
                if poller.poll(max(1, round(min(remaining, POLL_SLICE_S) * 1000))):
                    break
            raw = req.recv()
        finally:
            req.close(linger=0)
        try:
            reply = json.loads(raw.decode("utf-8"))
        except ValueError:
            self._no_answer("the reply is not UTF-8 JSON")
            return None
        if not isinstance(reply, dict) or reply.get("ok") is not True:
            error = reply.get("error") if isinstance(reply, dict) else None
            self._no_answer(f"it refused: {error or 'no reason given'}")
            return None
        message = reply.get("message")
        if message is None:
            return {}
        if not isinstance(message, dict) or not message:
            self._no_answer("the reply's message is not a JSON object")
            return None
        return message

    def _no_answer(self, why: str) -> None:
        self._next_command_try = time.monotonic() + COMMAND_RETRY_S
        self._warn(
            f"the command socket at {self._command} did not give the latest correction ({why}); "
            "showing the live feed only"
        )

    # --- output ----------------------------------------------------------------------------------
    def _print(self, topic: str, line: str, message: dict[str, Any]) -> None:
        if self._pretty is None:
            self._out.write(f"{topic}\t{line}\n")
        else:
            text = self._pretty.format(topic, message)
            if text is None:
                return
            self._out.write(text + "\n")
        self._out.flush()

    def _warn(self, text: str) -> None:
        print(f"igrt listen: warning: {text}", file=self._err, flush=True)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _compact(message: dict[str, Any]) -> str:
    return to_json(message)
