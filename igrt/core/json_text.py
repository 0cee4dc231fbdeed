"""The one JSON encoder of what igrt stores, publishes and replies: compact UTF-8 text, key order
kept, NaN and Infinity refused (they are not JSON and must never reach a console)."""

from __future__ import annotations

import json
from typing import Any


def to_json(value: Any) -> str:
    """Compact JSON text; raises ``ValueError``/``TypeError`` for NaN, Infinity or non-JSON."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def to_json_bytes(value: Any) -> bytes:
    """:func:`to_json` as UTF-8 bytes (one ZeroMQ frame)."""
    return to_json(value).encode("utf-8")
