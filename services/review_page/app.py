"""The review page as a Flask application: the list of today's corrections for the room, one
page per seq (CONTRACT §7: patient, plan, CBCT date and time, the six numbers, the status and
its reasons, the fused images before and after), and Approve / Reject with an operator's PIN.

Rules: the same as the commands (``igrt.core.decisions``, applied by the store in one
transaction); on top, the operator must give the PIN of the operators file: no one who can
merely reach the port can decide. A page of a correction a newer one has superseded says so and
offers no approval (and the store refuses it anyway)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, time
from typing import Any

from flask import Flask, Response, abort, redirect, render_template, request, send_file, url_for

from igrt.core.clock import iso_utc
from igrt.core.decisions import Decision, DecisionRequest
from igrt.core.errors import DecisionRefusedError, UnknownOperatorError
from igrt.review.compose import PRESETS
from igrt.review.render import MODES, STAGES
from igrt.store import Store
from services.decision_desk import DecisionDesk
from services.operators import Operators
from services.review_page.words import plain

log = logging.getLogger(__name__)

SIX = (("lateral_mm", "Lateral", "mm"), ("longitudinal_mm", "Longitudinal", "mm"),
       ("vertical_mm", "Vertical", "mm"), ("pitch_deg", "Pitch", "°"),
       ("roll_deg", "Roll", "°"), ("rotation_deg", "Rotation", "°"))
VIEW_NAMES = ("axial", "coronal", "sagittal")


def create_app(*, store: Store, desk: DecisionDesk, operators: Operators | None, room: str,
               rendering: Callable[[int], bool]) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'")
        return response

    @app.get("/")
    def today() -> str:
        midnight = datetime.combine(datetime.now().date(), time()).astimezone()
        rows = []
        for message in store.corrections_since(iso_utc(midnight)):
            decided = store.decision(int(message["seq"]))
            rows.append({"m": message, "decision": decided,
                         "name": display_name(message.get("patient_name"))})
        return render_template("today.html", room=room, rows=rows)

    @app.get("/review/<int:seq>")
    def review(seq: int) -> str:
        return _page(seq)

    @app.get("/review/<int:seq>/state.json")
    def state(seq: int) -> dict[str, Any]:
        if store.correction_by_seq(seq) is None:
            abort(404)
        decided = store.decision(seq)
        later = store.superseded_by(seq)
        return {"seq": seq, "decision": decided["decision"] if decided else None,
                "superseded_by": later.seq if later else None,
                "images": len(store.review_images(seq)), "rendering": rendering(seq)}

    @app.get("/review/<int:seq>/<name>.png")
    def image(seq: int, name: str) -> Response:
        path = store.review_images(seq).get(name)
        if path is None:
            abort(404)
        return send_file(path, mimetype="image/png")

    @app.post("/review/<int:seq>/decision")
    def decide(seq: int) -> Any:
        form = request.form
        action = form.get("action", "")
        if action not in ("approve", "reject"):
            return _page(seq, error="choose Approve or Reject"), 400
        if operators is None:
            return _page(seq, error="no operators file is configured ([ui] operators_file): "
                                    "decisions can only be made on the command channel"), 403
        try:
            operator = operators.verify(form.get("operator", ""), form.get("pin", ""))
        except UnknownOperatorError as exc:
            log.warning("review page: decision on seq %d refused: %s", seq, exc.message)
            return _page(seq, error=exc.message), 403
        decision = Decision.APPROVED if action == "approve" else Decision.REJECTED
        try:
            desk.decide(DecisionRequest(seq=seq, decision=decision, operator=operator,
                                        acknowledge=form.get("acknowledge") == "yes",
                                        reason=form.get("reason") or None))
        except DecisionRefusedError as exc:
            return _page(seq, error=exc.message), 409
        return redirect(url_for("review", seq=seq), code=303)

    def _page(seq: int, *, error: str | None = None) -> str:
        message = store.correction_by_seq(seq)
        if message is None:
            abort(404)
        preset = request.args.get("preset", PRESETS[0].name)
        mode = request.args.get("mode", MODES[0])
        if preset not in {p.name for p in PRESETS} or mode not in MODES:
            abort(400)
        images = store.review_images(seq)
        grid = [(v, [(s, f"{v}_{s}_{mode}_{preset}") for s in STAGES]) for v in VIEW_NAMES]
        later = store.superseded_by(seq)
        return render_template(
            "review.html", m=message, room=room, seq=seq, error=error,
            name=display_name(message.get("patient_name")), six=SIX,
            reasons=[(plain(r), r) for r in message.get("reasons") or []],
            decision=store.decision(seq), superseded=later, images=images, grid=grid,
            presets=[p.name for p in PRESETS], modes=MODES, preset=preset,
            mode=mode, rendering=rendering(seq), can_decide=operators is not None)

    return app


def display_name(pn: object) -> str:
    """A DICOM PN (``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX``) as ``FAMILY, GIVEN MIDDLE``."""
    if not isinstance(pn, str) or not pn.strip():
        return ""
    parts = (pn.split("=")[0].split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = (p.strip() for p in parts)
    rest = " ".join(p for p in (prefix, given, middle, suffix) if p)
    return f"{family}, {rest}" if family and rest else family or rest
