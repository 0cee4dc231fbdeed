"""``igrt listen --pretty``: the feed for a human at a console. One block per correction
(patient, plan, status, reasons, the six numbers aligned, the review URL), a line per decision
and per error; heartbeats are shown only when the service's state changes."""

from __future__ import annotations

from typing import Any

SIX = (("lateral_mm", "lateral", "mm"), ("longitudinal_mm", "longitudinal", "mm"),
       ("vertical_mm", "vertical", "mm"), ("pitch_deg", "pitch", "°"),
       ("roll_deg", "roll", "°"), ("rotation_deg", "rotation", "°"))
RULE = "─" * 60


class Pretty:
    """Formats messages; remembers the last heartbeat state so only changes are shown."""

    def __init__(self) -> None:
        self._state: str | None = None

    def format(self, topic: str, message: dict[str, Any]) -> str | None:
        if topic == "correction":
            return correction_block(message)
        if topic == "decision":
            return decision_line(message)
        if topic == "error":
            return f"ERROR {message.get('time', '')}  {message.get('reason', '')}"
        if topic == "qa":
            return qa_line(message)
        if topic == "heartbeat":
            state = str(message.get("state"))
            if state == self._state:
                return None
            self._state = state
            return f"service {message.get('room', '')}: {state} (last seq " \
                   f"{message.get('last_seq')})"
        return f"{topic}: {message}"


def correction_block(m: dict[str, Any]) -> str:
    status = str(m.get("status", "?")).upper()
    plan = m.get("plan") or {}
    cbct = m.get("cbct") or {}
    lines = [RULE,
             f"correction {m.get('seq')}  {status}  {m.get('time', '')}  room {m.get('room')}",
             f"  patient   {m.get('patient_id') or '?'}  {m.get('patient_name') or ''}".rstrip(),
             f"  plan      {plan.get('label', '')} {plan.get('sop_instance_uid', 'none')} "
             f"{plan.get('patient_position', '')}".rstrip(),
             f"  CBCT      {cbct.get('series_uid')} acquired "
             f"{cbct.get('acquisition_datetime') or 'unknown'}"]
    for reason in m.get("reasons") or []:
        lines.append(f"  reason    {reason}")
    applied, measured = m.get("correction"), m.get("measured")
    if applied is not None and measured is not None:
        lines.append(f"  {'':14}{'couch':>10}{'measured':>10}")
        for key, name, unit in SIX:
            lines.append(f"  {name + ' (' + unit + ')':14}{applied[key]:>+10.2f}"
                         f"{measured[key]:>+10.2f}")
    if m.get("review_url"):
        lines.append(f"  review    {m['review_url']}")
    return "\n".join(lines)


def decision_line(m: dict[str, Any]) -> str:
    what = str(m.get("decision", "?")).upper()
    why = f": {m['reason']}" if m.get("reason") else ""
    return (f"{what} correction {m.get('seq')} by {m.get('operator')} at {m.get('time')} "
            f"(patient {m.get('patient_id')}){why}")


def qa_line(m: dict[str, Any]) -> str:
    """``QA PASS correction 17 (sphere_cube): lat +0.05 long -0.10 vert +0.02 mm, vector 0.11
    mm, pitch ... °`` and the findings."""
    diff = m.get("difference")
    head = (f"QA {str(m.get('level', '?')).upper()} correction {m.get('seq')} "
            f"({m.get('phantom')})")
    if diff is None:
        numbers = "no measurement"
    else:
        numbers = (f"lat {diff['lateral_mm']:+.2f} long {diff['longitudinal_mm']:+.2f} "
                   f"vert {diff['vertical_mm']:+.2f} mm, vector {m.get('vector_error_mm')} mm, "
                   f"pitch {diff['pitch_deg']:+.2f} roll {diff['roll_deg']:+.2f} "
                   f"rot {diff['rotation_deg']:+.2f}°")
    findings = "".join(f"\n  {f}" for f in m.get("findings") or [])
    return f"{head}: {numbers}{findings}"
