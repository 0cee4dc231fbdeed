"""Spatial Registration objects and the nominal CBCT -> planning alignment (CONTRACT §2 case 2).

Convention pinned by hand (PS3.3 C.20.2.1.1): an item's matrix maps a point of the item's frame
into the SRO's own frame; its fourth column is the item frame's origin in the SRO frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import SpatialRegistrationStorage as SPATIAL_REGISTRATION_SOP_CLASS

from igrt.core.errors import PlanError
from igrt.core.geometry import apply
from igrt.core.spatial_registration import (
    SpatialRegistrationError,
    nominal_matrix,
)
from igrt.dicom.registration_reader import read_spatial_registration

PLAN = "1.2.826.0.1.3680043.8.498.10"
CBCT = "1.2.826.0.1.3680043.8.498.20"
ROOM = "1.2.826.0.1.3680043.8.498.30"

# 90° about +z (x -> y), exact so the DS values stay short.
RZ90 = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
RZ0 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def matrix(rotation: npt.ArrayLike = RZ0, t: Sequence[float] = (0, 0, 0)) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = t
    return m


def item(frame: str, *matrices: np.ndarray, kind: str = "RIGID") -> Dataset:
    it = Dataset()
    it.FrameOfReferenceUID = frame
    matrix_items = []
    for m in matrices or (np.eye(4),):
        mi = Dataset()
        mi.FrameOfReferenceTransformationMatrixType = kind
        mi.FrameOfReferenceTransformationMatrix = [float(v) for v in np.asarray(m).ravel()]
        matrix_items.append(mi)
    mr = Dataset()
    mr.MatrixSequence = DicomSequence(matrix_items)
    it.MatrixRegistrationSequence = DicomSequence([mr])
    return it


def sro_ds(frame: str, items: Sequence[Dataset]) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = SPATIAL_REGISTRATION_SOP_CLASS
    ds.SOPInstanceUID = "1.2.3.300"
    ds.PatientID = "PAT-001"
    ds.FrameOfReferenceUID = frame
    ds.RegistrationSequence = DicomSequence(list(items))
    return ds


def nominal(ds: Dataset, cbct: str = CBCT, planning: str = PLAN) -> np.ndarray:
    sro = read_spatial_registration(ds)
    return nominal_matrix(sro, cbct_frame_uid=cbct, planning_frame_uid=planning)


def inverse(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(m)


CBCT_TO_PLAN = matrix(RZ90, (10, -20, 30))


@pytest.mark.parametrize(
    "ds",
    [
        pytest.param(sro_ds(PLAN, [item(PLAN), item(CBCT, CBCT_TO_PLAN)]), id="sro-in-plan-frame"),
        pytest.param(sro_ds(PLAN, [item(CBCT, CBCT_TO_PLAN)]), id="without-identity-item"),
        pytest.param(sro_ds(CBCT, [item(CBCT), item(PLAN, inverse(CBCT_TO_PLAN))]),
                     id="sro-in-cbct-frame"),
        pytest.param(
            sro_ds(ROOM, [item(CBCT, matrix(RZ90, (5, 0, 0))),
                          item(PLAN, matrix(t=(-5, 20, -30)))]),
            id="both-relative-to-a-third-frame",
        ),
    ],
)
def test_nominal_alignment_in_every_direction(ds: Dataset) -> None:
    n = nominal(ds)
    # CBCT origin -> planning (10, -20, 30): the CBCT frame's origin in planning coordinates.
    np.testing.assert_allclose(apply(n, [0, 0, 0]), [10, -20, 30], atol=1e-12)
    # CBCT +x axis points along planning +y: (1, 0, 0) -> (10, -19, 30).
    np.testing.assert_allclose(apply(n, [1, 0, 0]), [10, -19, 30], atol=1e-12)
    np.testing.assert_allclose(apply(n, [0, 1, 0]), [9, -20, 30], atol=1e-12)


def test_third_frame_composition_by_hand() -> None:
    # CBCT -> ROOM adds (5, 0, 0); PLAN -> ROOM adds (0, 0, -7): CBCT -> PLAN adds (5, 0, 7).
    ds = sro_ds(ROOM, [item(CBCT, matrix(t=(5, 0, 0))), item(PLAN, matrix(t=(0, 0, -7)))])
    np.testing.assert_allclose(apply(nominal(ds), [1, 2, 3]), [6, 2, 10])


def test_same_frame_is_identity() -> None:
    ds = sro_ds(ROOM, [item(ROOM)])
    np.testing.assert_array_equal(nominal(ds, cbct=PLAN, planning=PLAN), np.eye(4))


def test_read_spatial_registration() -> None:
    sro = read_spatial_registration(sro_ds(PLAN, [item(PLAN), item(CBCT, CBCT_TO_PLAN)]))
    assert (sro.sop_instance_uid, sro.frame_of_reference_uid, sro.patient_id) == (
        "1.2.3.300", PLAN, "PAT-001",
    )
    assert sro.frames == (PLAN, CBCT)
    assert [r.frame_of_reference_uid for r in sro.registrations] == [PLAN, CBCT]
    np.testing.assert_array_equal(sro.registrations[1].matrix, CBCT_TO_PLAN)
    assert sro.registrations[1].matrix_types == ("RIGID",)


def test_row_major_matrix_values() -> None:
    # Values 1..16 row-major: element (row 0, column 3) is the 4th value = x translation.
    ds = sro_ds(PLAN, [item(CBCT, matrix(t=(4, 8, 12)))])
    raw = ds.RegistrationSequence[0].MatrixRegistrationSequence[0].MatrixSequence[0]
    assert [float(v) for v in raw.FrameOfReferenceTransformationMatrix][3::4] == [4, 8, 12, 1]
    np.testing.assert_allclose(apply(nominal(ds), [0, 0, 0]), [4, 8, 12])


def test_rigid_scale_type_with_unit_scale_is_accepted() -> None:
    ds = sro_ds(PLAN, [item(CBCT, CBCT_TO_PLAN, kind="RIGID_SCALE")])
    np.testing.assert_allclose(nominal(ds), CBCT_TO_PLAN)


def test_commuting_matrices_are_composed() -> None:
    ds = sro_ds(PLAN, [item(CBCT, matrix(t=(1, 0, 0)), matrix(t=(0, 2, 0)))])
    np.testing.assert_allclose(apply(nominal(ds), [0, 0, 0]), [1, 2, 0])


def _scaled() -> np.ndarray:
    m = np.eye(4)
    m[0, 0] = 2.0
    return m


def _sheared() -> np.ndarray:
    m = np.eye(4)
    m[0, 1] = 0.5
    return m


def _reflected() -> np.ndarray:
    m = np.eye(4)
    m[0, 0] = -1.0
    return m


def _raw_matrix(values: list[float]) -> Dataset:
    ds = sro_ds(PLAN, [item(CBCT)])
    mi = ds.RegistrationSequence[0].MatrixRegistrationSequence[0].MatrixSequence[0]
    mi.FrameOfReferenceTransformationMatrix = values
    return ds


def _two_matrix_registrations() -> Dataset:
    ds = sro_ds(PLAN, [item(CBCT)])
    it = ds.RegistrationSequence[0]
    it.MatrixRegistrationSequence = DicomSequence([it.MatrixRegistrationSequence[0]] * 2)
    return ds


def _with(**attributes: object) -> Dataset:
    ds = sro_ds(PLAN, [item(CBCT)])
    for keyword, value in attributes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(
    ("ds", "match"),
    [
        pytest.param(_with(SOPClassUID="1.2.840.10008.5.1.4.1.1.66.3"),
                     "not Spatial Registration .* deformable", id="deformable"),
        pytest.param(_with(SOPInstanceUID=None), "no SOP Instance UID", id="no-uid"),
        pytest.param(_with(FrameOfReferenceUID=None), r"no Frame of Reference UID \(0020,0052\)",
                     id="no-frame"),
        pytest.param(_with(RegistrationSequence=DicomSequence([])), "no Registration Sequence",
                     id="no-items"),
        pytest.param(sro_ds(PLAN, [item(CBCT, _scaled(), kind="RIGID_SCALE")]),
                     "the RIGID_SCALE matrix for frame .* is not rigid", id="scaled"),
        pytest.param(sro_ds(PLAN, [item(CBCT, _sheared(), kind="AFFINE")]),
                     "the AFFINE matrix .* is not rigid", id="sheared"),
        pytest.param(sro_ds(PLAN, [item(CBCT, _reflected())]), "is not rigid", id="reflection"),
        pytest.param(_raw_matrix([1.0] * 15), "must hold 16 finite values, it holds 15",
                     id="15-values"),
        pytest.param(_two_matrix_registrations(), "2 Matrix Registration Sequence", id="two-mrs"),
        pytest.param(
            sro_ds(PLAN, [item(CBCT, matrix(RZ90), matrix(t=(10, 0, 0)))]),
            "2 matrices whose result depends on the order", id="non-commuting-matrices",
        ),
    ],
)
def test_read_refusals(ds: Dataset, match: str) -> None:
    with pytest.raises(SpatialRegistrationError, match=match):
        read_spatial_registration(ds)


def test_missing_item_frame_is_refused() -> None:
    ds = sro_ds(PLAN, [item(CBCT)])
    del ds.RegistrationSequence[0].FrameOfReferenceUID
    with pytest.raises(SpatialRegistrationError, match="item 1 has no Frame of Reference UID"):
        read_spatial_registration(ds)


@pytest.mark.parametrize(
    ("ds", "match"),
    [
        pytest.param(
            sro_ds(PLAN, [item("1.9.9", CBCT_TO_PLAN)]),
            f"relates frames {PLAN}, 1.9.9 but not the CBCT frame \\(CBCT {CBCT}, planning {PLAN}",
            id="cbct-frame-missing",
        ),
        pytest.param(
            sro_ds(ROOM, [item(CBCT)]),
            "but not the planning frame", id="planning-frame-missing",
        ),
        pytest.param(
            sro_ds(ROOM, [item("1.9.9")]),
            "but not the CBCT and planning frame", id="both-missing",
        ),
        pytest.param(
            sro_ds(PLAN, [item(CBCT, CBCT_TO_PLAN), item(CBCT, matrix(t=(10, -20, 31)))]),
            f"conflicting matrices for frame {CBCT}", id="conflicting-items",
        ),
        pytest.param(
            sro_ds(PLAN, [item(PLAN, matrix(t=(1, 0, 0))), item(CBCT, CBCT_TO_PLAN)]),
            f"conflicting matrices for frame {PLAN}", id="own-frame-not-identity",
        ),
    ],
)
def test_nominal_refusals(ds: Dataset, match: str) -> None:
    with pytest.raises(SpatialRegistrationError, match=match):
        nominal(ds)


def test_error_is_a_plan_error() -> None:
    assert issubclass(SpatialRegistrationError, PlanError)
    assert SpatialRegistrationError().reason.startswith("spatial_registration: ")
