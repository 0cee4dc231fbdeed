"""The planning index: plans, planning CTs, structure sets and spatial registrations received,
and the plan selected per patient."""
from __future__ import annotations

import logging

from igrt.core.errors import UnknownPlanError
from igrt.core.kinds import IMAGE_KINDS, PLAN_KINDS, InstanceKind, Role
from igrt.store.base import StoreBase
from igrt.store.index import IN_FRAME, marks
from igrt.store.records import ObjectRecord, PlanRecord, require_uid

log = logging.getLogger(__name__)

class PlanningIndex(StoreBase):
    # --- planning index --------------------------------------------------------------------------
    def plans_for_patient(self, patient_id: str) -> list[PlanRecord]:
        """RT (Ion) Plans received from planning peers for this patient, oldest first."""
        return self._objects(
            f"i.patient_id = ? AND i.role = ? AND i.kind IN ({marks(PLAN_KINDS)})",
            (patient_id, Role.PLANNING.value, *PLAN_KINDS),
        )

    def ct_series_for_frame(self, patient_id: str, frame_of_reference_uid: str) -> list[str]:
        """Planning CT series (planning peers only, never a CBCT) of this patient in this Frame
        of Reference, most recently completed last."""
        with self._reading(f"finding planning CTs in frame {frame_of_reference_uid}") as conn:
            rows = conn.execute(
                "SELECT i.series_uid FROM instances i JOIN series s USING (series_uid) "
                f"WHERE i.patient_id = ? AND i.role = ? AND i.kind IN ({marks(IMAGE_KINDS)}) "
                "AND i.frame_of_reference_uid = ? GROUP BY i.series_uid "
                "ORDER BY MAX(s.last_arrival_at), i.series_uid",
                (patient_id, Role.PLANNING.value, *IMAGE_KINDS, frame_of_reference_uid),
            ).fetchall()
        return [row[0] for row in rows]

    def recent_planning_patients(self, limit: int = 50) -> list[str]:
        """Patient IDs with objects from planning peers, the most recently received first."""
        with self._reading("listing the patients of recent planning sets") as conn:
            rows = conn.execute(
                "SELECT patient_id FROM series WHERE role = ? GROUP BY patient_id "
                "ORDER BY MAX(last_arrival_at) DESC, patient_id LIMIT ?",
                (Role.PLANNING.value, limit),
            ).fetchall()
        return [row[0] for row in rows]

    def patient_fingerprint(self, patient_id: str, *, excluding_series: str = "") -> str:
        """Changes whenever anything a registration of this patient reads may have: an
        instance of the patient received or re-sent (other than those of
        ``excluding_series``), or another plan selected."""
        with self._reading("reading the state of a patient") as conn:
            count, last = conn.execute(
                "SELECT COUNT(*), MAX(received_at) FROM instances WHERE patient_id = ? "
                "AND series_uid != ?", (patient_id, excluding_series)).fetchone()
            row = conn.execute("SELECT plan_uid FROM plan_selection WHERE patient_id = ?",
                               (patient_id,)).fetchone()
        return f"{count}:{last}:{row[0] if row else ''}"

    def structure_sets_for_frame(
        self, patient_id: str, frame_of_reference_uid: str
    ) -> list[ObjectRecord]:
        """RT Structure Sets (planning peers) of this patient whose own or referenced Frame of
        Reference is ``frame_of_reference_uid``, oldest first."""
        return self._objects(
            "i.patient_id = ? AND i.role = ? AND i.kind = ? AND " + IN_FRAME,
            (patient_id, Role.PLANNING.value, InstanceKind.RT_STRUCT.value)
            + (frame_of_reference_uid,) * 2,
        )

    def spatial_registrations_for_series(self, series_uid: str) -> list[ObjectRecord]:
        """Spatial Registration objects that reference the image series ``series_uid``."""
        return self._objects(
            "i.kind = ? AND EXISTS (SELECT 1 FROM instance_refs r WHERE r.sop_instance_uid = "
            "i.sop_instance_uid AND r.ref_type = 'series' AND r.ref_uid = ?)",
            (InstanceKind.SPATIAL_REGISTRATION.value, series_uid),
        )

    def spatial_registrations_for_frame(
        self, patient_id: str, frame_of_reference_uid: str
    ) -> list[ObjectRecord]:
        """Spatial Registration objects of this patient whose own or registered Frame of
        Reference is ``frame_of_reference_uid``."""
        return self._objects(
            "i.patient_id = ? AND i.kind = ? AND " + IN_FRAME,
            (patient_id, InstanceKind.SPATIAL_REGISTRATION.value) + (frame_of_reference_uid,) * 2,
        )

    # --- plan selection --------------------------------------------------------------------------
    def select_plan(self, patient_id: str, plan_uid: str) -> None:
        """Durably select the RT Plan used for this patient's CBCTs. The plan must have been
        received for this very patient, else :class:`UnknownPlanError` says what is known."""
        require_uid(plan_uid, "the plan UID")
        with self._transaction(f"selecting plan {plan_uid}") as conn:
            row = conn.execute(
                f"SELECT patient_id FROM instances WHERE sop_instance_uid = ? AND role = ? "
                f"AND kind IN ({marks(PLAN_KINDS)})",
                (plan_uid, Role.PLANNING.value, *PLAN_KINDS),
            ).fetchone()
            if row is None or row[0] != patient_id:
                known = [
                    r[0]
                    for r in conn.execute(
                        f"SELECT sop_instance_uid FROM instances WHERE patient_id = ? AND role = ? "
                        f"AND kind IN ({marks(PLAN_KINDS)}) ORDER BY received_at",
                        (patient_id, Role.PLANNING.value, *PLAN_KINDS),
                    )
                ]
                why = (
                    "no such plan was received from a planning peer"
                    if row is None
                    else "that plan was received for another patient"
                )
                raise UnknownPlanError(
                    f"RT Plan {plan_uid} cannot be selected for patient {patient_id!r}: {why}; "
                    f"plans received for this patient: {', '.join(known) or 'none'}"
                )
            conn.execute(
                "INSERT INTO plan_selection (patient_id, plan_uid, selected_at) VALUES (?, ?, ?) "
                "ON CONFLICT(patient_id) DO UPDATE SET plan_uid = excluded.plan_uid, "
                "selected_at = excluded.selected_at",
                (patient_id, plan_uid, self._now()),
            )
        log.info("plan %s selected", plan_uid)

    def selected_plan(self, patient_id: str) -> str | None:
        """The SOP Instance UID of the plan selected for this patient, or ``None``."""
        with self._reading("reading the plan selection") as conn:
            row = conn.execute(
                "SELECT plan_uid FROM plan_selection WHERE patient_id = ?", (patient_id,)
            ).fetchone()
        return None if row is None else str(row[0])
