"""The shift set of the registration-core acceptance: known couch corrections over all four
patient positions, translations up to 15 mm and rotations up to 3°, plus one at 30 mm / 5°."""

from __future__ import annotations

from igrt.core.geometry import CouchCorrection, PatientPosition

HFS, FFS, HFP, FFP = (PatientPosition.HFS, PatientPosition.FFS, PatientPosition.HFP,
                      PatientPosition.FFP)

#: (patient position, CBCT frame convention, known correction)
SHIFT_SET: tuple[tuple[PatientPosition, str, CouchCorrection], ...] = (
    (HFS, "origin", CouchCorrection(0.0, -5.0, 0.0, 0.0, 0.0, 0.0)),  # contract example
    (HFS, "planning", CouchCorrection(0.0, 0.0, 3.0, 0.0, 0.0, 0.0)),  # contract example
    (HFS, "origin", CouchCorrection(0.0, 0.0, 0.0, 0.0, 0.0, -1.5)),  # contract example
    (FFS, "origin", CouchCorrection(0.0, -5.0, 0.0, 0.0, 0.0, 0.0)),  # contract example
    (HFS, "center", CouchCorrection(12.0, -8.5, 6.0, 1.5, -2.0, 2.5)),
    (HFS, "sro", CouchCorrection(-15.0, 10.0, -4.0, -3.0, 1.0, -1.0)),
    (FFS, "planning", CouchCorrection(7.5, 14.0, -11.0, 2.0, 2.5, -3.0)),
    (FFS, "origin", CouchCorrection(-3.2, -15.0, 9.0, -1.0, -3.0, 0.5)),
    (HFP, "origin", CouchCorrection(4.0, 6.0, 15.0, 3.0, -1.5, 2.0)),
    (HFP, "planning", CouchCorrection(-11.0, -12.0, -7.0, -2.5, 3.0, -2.5)),
    (FFP, "origin", CouchCorrection(14.0, -3.0, 5.5, 1.0, 2.0, 3.0)),
    (FFP, "sro", CouchCorrection(-6.0, 9.5, -14.0, -1.5, -2.5, -2.0)),
    (HFS, "origin", CouchCorrection(18.0, -17.0, 16.0, 5.0, -5.0, 5.0)),  # 29.8 mm, 5°
)
