"""The reasons of a correction in plain words for the therapist at the couch; the exact
``code: sentence`` stays on the page below them."""

from __future__ import annotations

from igrt.core.reasons import ReasonCode, code_of

PLAIN: dict[ReasonCode, str] = {
    ReasonCode.NOT_CONVERGED: "The registration did not settle on an answer.",
    ReasonCode.AT_BOUND: "The shift is larger than the registration is built to find: it may "
                         "have matched the wrong anatomy.",
    ReasonCode.UNSTABLE: "A second registration from a slightly different start ended "
                         "elsewhere: the match may not be unique.",
    ReasonCode.ENGINES_DISAGREE: "The two registration methods disagree.",
    ReasonCode.TRANSLATION_LIMIT: "The shift is larger than this room's review limit.",
    ReasonCode.ROTATION_LIMIT: "A rotation is larger than this room's review limit.",
    ReasonCode.UNAPPROVED_PLAN: "The plan is not approved for treatment.",
    ReasonCode.NO_PLAN: "No plan has been received or selected for this patient.",
    ReasonCode.AMBIGUOUS_PLAN: "The patient has several plans and none is selected.",
    ReasonCode.REJECTED_PLAN: "The plan was rejected and is never used.",
    ReasonCode.PATIENT_MISMATCH: "The CBCT and the plan are for different patients.",
    ReasonCode.MULTIPLE_ISOCENTRES: "The plan has several isocentres and none is selected.",
    ReasonCode.NO_OVERLAP: "The CBCT does not cover the region around the isocentre.",
    ReasonCode.NO_PLANNING_CT: "The planning CT of the plan has not been received.",
    ReasonCode.INTERRUPTED: "The service stopped while registering this CBCT.",
}


def plain(reason: str) -> str:
    """The plain-words explanation of a reason (the sentence itself when there is none)."""
    code = code_of(reason)
    if code is not None and code in PLAIN:
        return PLAIN[code]
    _, _, sentence = reason.partition(": ")
    return (sentence or reason)[:1].upper() + (sentence or reason)[1:]
