"""Requests on the command socket (CONTRACT §4, §7): which commands exist, their fields and
types, and the strict parsing of one request. Not UTF-8 JSON, not an object, more than one
frame, an unknown ``cmd``, a missing, wrongly typed or unknown field all raise a
:class:`~igrt.core.errors.CommandError` naming the problem (an unknown field is refused so
that a typo such as ``series_id`` is reported, not ignored)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from igrt.core.errors import CommandError


@dataclass(frozen=True)
class Field:
    name: str
    kind: type = str  # str (non-empty), int (positive), bool, float (a finite number)
    required: bool = True


COMMANDS: dict[str, tuple[Field, ...]] = {
    "ping": (),
    "status": (),
    "latest": (),
    "result": (Field("series_uid"),),
    "select_plan": (Field("patient_id"), Field("plan_uid")),
    "approve": (Field("seq", int), Field("operator"), Field("acknowledge", bool, False)),
    "reject": (Field("seq", int), Field("operator"), Field("reason")),
    "decision": (Field("seq", int),),
    "register_again": (Field("series_uid"), Field("plan_uid", str, False)),
    "qa_expect": (Field("patient_id"), Field("lateral_mm", float), Field("longitudinal_mm", float),
                  Field("vertical_mm", float), Field("pitch_deg", float, False),
                  Field("roll_deg", float, False), Field("rotation_deg", float, False),
                  Field("phantom", str, False)),
    "qa_result": (Field("seq", int),),
}
MAX_REQUEST_BYTES = 64 * 1024  # larger requests get ok: false with a sentence
_WANTED = {str: "a non-empty string", int: "a positive integer", bool: "true or false",
           float: "a number"}


def read_command(frames: list[bytes]) -> tuple[str, dict[str, Any]]:
    """``(cmd, request)`` of one request's frames: one JSON object naming a known command."""
    request = _parse_object(frames)
    return _parse_cmd(request), request


def check_fields(cmd: str, request: dict[str, Any]) -> dict[str, Any]:
    """The request's fields, checked against the command's and typed."""
    return _check_fields(cmd, request)


def _parse_object(frames: list[bytes]) -> dict[str, Any]:
    if len(frames) != 1:
        raise CommandError(
            f"the request has {len(frames)} frames; send one frame holding one JSON object"
        )
    if len(frames[0]) > MAX_REQUEST_BYTES:
        raise CommandError(f"the request has {len(frames[0])} bytes, more than the "
                           f"{MAX_REQUEST_BYTES} a command may have; nothing was done")
    try:
        text = frames[0].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandError(f"the request is not UTF-8 text (byte {exc.start})") from None
    try:
        request = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"the request is not valid JSON: {exc}") from None
    except RecursionError:
        raise CommandError('the request is nested too deeply to be a command; send one flat '
                           'JSON object such as {"cmd": "ping"}') from None
    if not isinstance(request, dict):
        raise CommandError(
            f'the request is a JSON {_json_type(request)}, not an object such as {{"cmd": "ping"}}'
        )
    return request


def _parse_cmd(request: dict[str, Any]) -> str:
    known = ", ".join(COMMANDS)
    if "cmd" not in request:
        raise CommandError(f'the request has no "cmd"; use one of {known}')
    cmd = request["cmd"]
    if not isinstance(cmd, str):
        raise CommandError(
            f'"cmd" is a JSON {_json_type(cmd)}; it must be a string, one of {known}'
        )
    if cmd not in COMMANDS:
        raise CommandError(f"unknown cmd {cmd[:64]!r}; use one of {known}")
    return cmd


def _check_fields(cmd: str, request: dict[str, Any]) -> dict[str, Any]:
    fields = COMMANDS[cmd]
    names = [f.name for f in fields]
    extra = [k for k in request if k != "cmd" and k not in names]
    if extra:
        allowed = ", ".join(names) if names else "none"
        raise CommandError(
            f"{cmd}: unknown field {extra[0][:64]!r}; the fields of {cmd} are: {allowed}"
        )
    out: dict[str, Any] = {}
    for f in fields:
        wanted = _WANTED[f.kind]
        if f.name not in request:
            if f.required:
                raise CommandError(f"{cmd}: {f.name!r} is missing; it must be {wanted}")
            continue
        value = request[f.name]
        if not _valid(value, f.kind):
            shown = ("an empty string" if isinstance(value, str) and f.kind is str
                     else f"a JSON {_json_type(value)}")
            raise CommandError(f"{cmd}: {f.name!r} is {shown}; it must be {wanted}")
        out[f.name] = value
    return out


def _valid(value: object, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        try:
            return math.isfinite(value)
        except OverflowError:  # an integer too large for a float
            return False
    return isinstance(value, str) and bool(value.strip())


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
