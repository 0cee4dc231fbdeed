"""One error hierarchy for igrt.

Every error carries a short machine-readable ``code`` and a sentence a therapist, integrator or
physicist can act on. ``reason`` renders both as ``"code: sentence"``, the form used in the
``reasons`` list of a ``correction`` message and in DICOM Error Comments.
"""

from __future__ import annotations


class IgrtError(Exception):
    """Base of every error igrt raises on purpose."""

    code = "error"
    default_message = "igrt could not complete the request"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.message}"


# --- configuration -------------------------------------------------------------------------------
class ConfigError(IgrtError):
    code = "config"
    default_message = "the configuration is invalid"


# --- series assembly -----------------------------------------------------------------------------
class SeriesError(IgrtError):
    code = "series"
    default_message = "the image series cannot be assembled into a volume"


class NotCtError(SeriesError):
    code = "not_ct"
    default_message = "the instances are not CT images"


class MissingAttributeError(SeriesError):
    code = "missing_attribute"
    default_message = "a required DICOM attribute is missing"


class MixedSeriesError(SeriesError):
    code = "mixed_series"
    default_message = "the instances belong to more than one series"


class DuplicateSliceError(SeriesError):
    code = "duplicate_slice"
    default_message = "two slices share one position"


class MissingSliceError(SeriesError):
    code = "missing_slice"
    default_message = "the series has a gap: at least one slice is missing"


class IrregularSpacingError(SeriesError):
    code = "irregular_spacing"
    default_message = "the slice positions are not regularly spaced"


class GantryTiltError(SeriesError):
    code = "gantry_tilt"
    default_message = "the slices are not perpendicular to the slice direction (gantry tilt)"


class UnreadableError(SeriesError):
    code = "unreadable"
    default_message = "a file is not a readable DICOM instance"


# --- planning reference --------------------------------------------------------------------------
class PlanError(IgrtError):
    code = "plan"
    default_message = "the planning reference is unusable"


class NoPlanError(PlanError):
    code = "no_plan"
    default_message = "no RT Plan is available for this patient"


class AmbiguousPlanError(PlanError):
    code = "ambiguous_plan"
    default_message = "several RT Plans are available and none is selected"


class MultipleIsocentresError(PlanError):
    code = "multiple_isocentres"
    default_message = "the plan has several distinct isocentres and none is selected"


class NoPlanningCtError(PlanError):
    code = "no_planning_ct"
    default_message = "no planning CT shares the plan's Frame of Reference"


class StructureError(PlanError):
    code = "structure"
    default_message = "the registration structure is unusable"


# --- matching ------------------------------------------------------------------------------------
class MatchError(IgrtError):
    code = "match"
    default_message = "the CBCT does not match the planning reference"


class PatientMismatchError(MatchError):
    code = "patient_mismatch"
    default_message = "the CBCT belongs to another patient than the plan"


# --- registration --------------------------------------------------------------------------------
class RegistrationError(IgrtError):
    code = "registration"
    default_message = "the registration failed"


class NoOverlapError(RegistrationError):
    code = "no_overlap"
    default_message = "the CBCT field of view does not cover the region around the isocentre"


# --- store ---------------------------------------------------------------------------------------
class StoreError(IgrtError):
    code = "store"
    default_message = "the store could not complete the operation"


class OutOfSpaceError(StoreError):
    code = "out_of_space"
    default_message = "the store is out of disk space"
