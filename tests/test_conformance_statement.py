"""docs/conformance-statement.md against the code: every SOP class, transfer syntax, limit and
status it lists is the one the SCP (services/scp/policy.py, status.py) and the record SCU
(services/record_sender.py) use, read from there, not copied."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydicom.uid import UID
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from igrt.config.model import DicomLimits
from igrt.dicom.identity import IMPLEMENTATION_CLASS_UID
from services.record_sender import SCU_SOP_CLASSES, SCU_TRANSFER_SYNTAXES
from services.scp.policy import (
    STORAGE_SOP_CLASSES,
    TRANSFER_SYNTAXES,
    VERIFICATION_TRANSFER_SYNTAXES,
)
from services.scp.status import StoreStatus

DOC = Path(__file__).resolve().parent.parent / "docs" / "conformance-statement.md"
UID_RE = re.compile(r"\|\s*(1\.2\.840\.10008(?:\.\d+)+)\s*\|")


def _section(anchor: str) -> list[str]:
    """The table rows after ``<a id="anchor">`` up to the next heading."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(f'<a id="{anchor}"></a>')
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("#") or line.startswith("<a id="):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append(line)
    assert rows, f"no table after {anchor}"
    return rows[1:]  # without the header row


def _uids(anchor: str) -> list[str]:
    return [m.group(1) for row in _section(anchor) for m in [UID_RE.search(row)] if m]


def _names_match(anchor: str) -> None:
    """The name in each row is pydicom's name of its UID (no copy-paste slip)."""
    for row in _section(anchor):
        name, uid = (cell.strip() for cell in row.strip("|").split("|")[:2])
        words = set(re.findall(r"[a-z0-9]+", UID(uid).name.lower()))
        assert words & set(re.findall(r"[a-z0-9]+", name.lower())), (name, UID(uid).name)


def test_scp_sop_classes_are_the_accepted_ones() -> None:
    assert _uids("scp-sop-classes") == [Verification, *STORAGE_SOP_CLASSES]
    _names_match("scp-sop-classes")


def test_scp_transfer_syntaxes_are_the_accepted_ones_in_order() -> None:
    assert _uids("scp-transfer-syntaxes") == list(TRANSFER_SYNTAXES)
    assert _uids("scp-verification-transfer-syntaxes") == list(VERIFICATION_TRANSFER_SYNTAXES)
    _names_match("scp-transfer-syntaxes")


def test_scu_sop_classes_and_transfer_syntaxes_are_the_proposed_ones() -> None:
    assert _uids("scu-sop-classes") == list(SCU_SOP_CLASSES)
    assert _uids("scu-transfer-syntaxes") == list(SCU_TRANSFER_SYNTAXES)


@pytest.mark.parametrize(("policy", "value"), [
    ("Maximum associations", DicomLimits().max_associations),
    ("Maximum associations per calling AE title", DicomLimits().max_associations_per_peer),
    ("Connections waiting to request an association", DicomLimits().max_pending_connections),
    ("Maximum PDU size received (bytes)", DicomLimits().max_pdu_bytes),
    ("ACSE timeout (s)", DicomLimits().request_timeout_s),
    ("DIMSE timeout (s)", DicomLimits().dimse_timeout_s),
    ("Network (idle) timeout (s)", DicomLimits().network_timeout_s),
    ("Implementation Class UID", IMPLEMENTATION_CLASS_UID),
])
def test_association_policies_are_the_code_s(policy: str, value: object) -> None:
    rows = {cells[0]: cells[1] for row in _section("scp-limits")
            for cells in [[c.strip() for c in row.strip("|").split("|")]]}
    shown = rows[policy].split(" (")[0].split(";")[0]
    assert (float(shown) == float(value)) if isinstance(value, int | float) else shown == value


def test_every_status_the_scp_answers_is_listed() -> None:
    listed = {int(row.strip("|").split("|")[0].strip(), 16) for row in _section("scp-statuses")}
    assert listed == {int(s) for s in StoreStatus}
