"""The JSON Schemas of ``schemas/`` (draft 2020-12), and the checks the tests run on every
message and command reply they receive: an integrator codes against these files, so what the
service sends must be what they say."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
#: Every schema's $id is this base and the message's ``schema`` value (igrt/correction/v1, ...).
BASE = "https://igrt.invalid/schemas/"
TOPICS = {"correction": "igrt/correction/v1", "heartbeat": "igrt/heartbeat/v1",
          "error": "igrt/error/v1", "decision": "igrt/decision/v1", "qa": "igrt/qa/v1"}


@cache
def registry() -> Registry:
    resources = []
    for path in sorted(SCHEMAS.rglob("*.schema.json")):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


@cache
def validator(schema_id: str) -> Draft202012Validator:
    contents = registry().contents(BASE + schema_id)
    Draft202012Validator.check_schema(contents)
    return Draft202012Validator(contents, registry=registry())


def check(schema_id: str, value: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``value`` is valid."""
    validator(schema_id).validate(value)


def check_message(topic: str | bytes, message: Any) -> None:
    """A message received on the feed (topic, then the parsed JSON or its bytes)."""
    name = topic.decode() if isinstance(topic, bytes) else topic
    if isinstance(message, bytes | str):
        message = json.loads(message)
    check(TOPICS[name], message)


def check_reply(request: dict[str, Any] | None, reply: dict[str, Any]) -> None:
    """A command reply; the schema is that of the request's ``cmd`` when it names a known one,
    else the failure schema."""
    cmd = request.get("cmd") if isinstance(request, dict) else None
    if isinstance(cmd, str) and (SCHEMAS / "commands" / f"{cmd}.reply.schema.json").exists():
        check(f"igrt/command/{cmd}/reply/v1", reply)
    else:
        check("igrt/command/failure/v1", reply)
