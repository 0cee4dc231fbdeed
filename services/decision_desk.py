"""The one place decisions and new registrations are carried out, for the command socket and
the review page alike: the rules are checked and the decision stored durably by the store (one
transaction), then it is published on the ``decision`` topic. A decision that cannot be
published is still durable: ``decision`` returns it and consoles see it there."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from igrt.core.decisions import DecisionRequest
from igrt.core.errors import CommandError
from igrt.core.kinds import IMAGE_KINDS, Role
from igrt.core.reasons import ReasonCode, reason
from igrt.core.uids import uid_problem
from igrt.store import Store

log = logging.getLogger(__name__)


class DecisionDesk:
    def __init__(self, store: Store, *, publish_decision: Callable[[str], None],
                 publish_error: Callable[[str, dict[str, Any]], None],
                 request_again: Callable[[str, str | None], None]) -> None:
        self._store = store
        self._publish_decision = publish_decision
        self._publish_error = publish_error
        self._request_again = request_again

    def decide(self, request: DecisionRequest) -> dict[str, Any]:
        """Store the decision (refusals raise ``DecisionRefusedError``), then publish it."""
        message = self._store.decide(request)
        text = self._store.decision_json(request.seq)
        try:
            if text is None:
                raise RuntimeError("the stored decision could not be read back")
            self._publish_decision(text)
        except Exception as exc:  # noqa: BLE001 - durable; `decision` still serves it
            log.error("decision on seq %d stored but not published: %s", request.seq, exc)
            try:
                self._publish_error(reason(ReasonCode.PUBLISH, f"the decision on correction "
                                           f"{request.seq} could not be published: {exc}"),
                                    {"seq": request.seq})
            except Exception:  # noqa: BLE001 - the feed itself is down; the log has it
                log.exception("could not publish the error for decision %d", request.seq)
        return message

    def register_again(self, series_uid: str, plan_uid: str | None) -> None:
        """Check that ``series_uid`` is a CBCT held by the store (and ``plan_uid``, when given,
        a plan received for its patient), then queue it for registration."""
        problem = uid_problem(series_uid)
        if problem is not None:
            raise CommandError(f"register_again: series_uid {series_uid!r} is not a valid DICOM "
                               f"UID ({problem})")
        arrivals = self._store.series_arrivals(series_uid)
        if arrivals is None or arrivals.role is not Role.IMAGING \
                or arrivals.kind not in IMAGE_KINDS:
            raise CommandError(f"register_again: no CBCT series {series_uid} is stored "
                               "(only CT image series from an imaging peer can be registered)")
        if plan_uid is not None:
            plans = {r.sop_instance_uid for r in
                     self._store.plans_for_patient(arrivals.patient_id)}
            if plan_uid not in plans:
                raise CommandError(
                    f"register_again: plan {plan_uid} has not been received for this CBCT's "
                    f"patient; plans received: {', '.join(sorted(plans)) or 'none'}")
        self._request_again(series_uid, plan_uid)
        log.info("series %s queued for registration again (plan %s)", series_uid,
                 plan_uid or "as selected")
