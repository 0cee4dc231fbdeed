"""igrt.dicom.series_loader: Enhanced CT (multi-frame) instances and Pixel Padding Value, on
hand-built data sets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import COLUMNS, ROWS, ct_series, enhanced_ct, hu_pattern, write
from pydicom.dataset import Dataset
from pydicom.uid import EnhancedCTImageStorage as ENHANCED_CT_IMAGE_STORAGE
from pydicom.uid import (
    ImplicitVRLittleEndian,
    JPEGLSLossless,
)
from test_dicom_series import _dcmtk, _signed_series, transfer_syntax

from igrt.core.errors import (
    MissingAttributeError,
    MissingSliceError,
)
from igrt.dicom.series_loader import (
    ImageSeries,
    InvalidAttributeError,
    load_series,
    load_series_files,
)

# --- Enhanced CT ---------------------------------------------------------------------------------
ENHANCED = [
    pytest.param({}, {}, id="shared-orientation-and-measures"),
    pytest.param({}, {"shared_orientation": False, "shared_measures": False}, id="all-per-frame"),
    pytest.param({}, {"shared_rescale": True}, id="shared-rescale"),
    pytest.param(
        {"slopes": [1.0, 0.5] * 5, "intercepts": [-1024.0, -2000.0] * 5},
        {},
        id="per-frame-rescale",
    ),
    pytest.param(
        {"row_cosine": (-1.0, 0.0, 0.0), "step_mm": (0.0, 0.0, 2.0), "patient_position": "FFS"},
        {},
        id="FFS-frames-against-normal",
    ),
    pytest.param(
        {"row_cosine": (1.0, 0.0, 0.0), "column_cosine": (0.0, 0.8, 0.6)}, {}, id="oblique"
    ),
    pytest.param({"signed": True, "intercepts": 0.0, "padding_value": -1024}, {}, id="padding"),
]


@pytest.mark.parametrize(("series_kwargs", "enhanced_kwargs"), ENHANCED)
def test_enhanced_ct_loads_like_the_single_frame_series(
    series_kwargs: dict[str, object], enhanced_kwargs: dict[str, object]
) -> None:
    singles = ct_series(**series_kwargs)  # type: ignore[arg-type]
    frames_shuffled = [singles[n] for n in (3, 0, 9, 5, 1, 8, 2, 7, 4, 6)]
    multi = enhanced_ct(frames_shuffled, **enhanced_kwargs)  # type: ignore[arg-type]
    _assert_same_volume(load_series([multi]), load_series(singles))


def test_enhanced_ct_file_round_trip_and_compression(tmp_path: Path) -> None:
    singles = _signed_series(padding_value=-1024)
    multi = enhanced_ct(singles[::-1])
    [plain] = write([multi], tmp_path / "plain", prefix="enhanced")
    coded = tmp_path / "enhanced_jls.dcm"
    _dcmtk("dcmcjpls")(plain, coded)
    assert transfer_syntax(coded) == JPEGLSLossless
    loaded = load_series_files([coded])
    assert loaded.info.sop_class_uid == ENHANCED_CT_IMAGE_STORAGE
    assert loaded.info.n_instances == 1
    _assert_same_volume(loaded, load_series(singles))


def test_enhanced_ct_split_over_two_instances() -> None:
    singles = ct_series()
    first = enhanced_ct(singles[5:], name="part-1")
    second = enhanced_ct(singles[:5], name="part-2")
    loaded = load_series([first, second])
    _assert_same_volume(loaded, load_series(singles))
    assert loaded.info.instance_uids == (second.SOPInstanceUID, first.SOPInstanceUID)


def _without_plane_position(ds: Dataset) -> Dataset:
    del ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence
    return ds


def _without_rescale(ds: Dataset) -> Dataset:
    del ds.PerFrameFunctionalGroupsSequence[0].PixelValueTransformationSequence
    return ds


def _frame_count(ds: Dataset) -> Dataset:
    ds.NumberOfFrames = 9
    return ds


def _no_frame_count(ds: Dataset) -> Dataset:
    del ds.NumberOfFrames
    return ds


ENHANCED_REFUSALS = [
    pytest.param(
        _without_plane_position, MissingAttributeError,
        r"PlanePositionSequence is missing from both the per-frame and the shared functional "
        r"groups of frame 3 of instance .* \(InstanceNumber 1\)",
        id="missing-plane-position",
    ),
    pytest.param(
        _without_rescale, MissingAttributeError,
        r"PixelValueTransformationSequence is missing .* of frame 1 of instance",
        id="missing-rescale",
    ),
    pytest.param(
        _frame_count, InvalidAttributeError,
        r"has NumberOfFrames 9 but 10 items in PerFrameFunctionalGroupsSequence",
        id="frame-count",
    ),
    pytest.param(
        _no_frame_count, MissingAttributeError,
        r"NumberOfFrames is missing or empty in instance",
        id="missing-number-of-frames",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "error", "match"), ENHANCED_REFUSALS)
def test_enhanced_ct_refusals(
    edit: Callable[[Dataset], Dataset], error: type[Exception], match: str
) -> None:
    multi = enhanced_ct(ct_series())
    with pytest.raises(error, match=match):
        load_series([edit(multi)])


def test_enhanced_ct_refuses_missing_slice() -> None:
    singles = ct_series()
    with pytest.raises(MissingSliceError, match=r"1 slice missing between frame 4 of instance"):
        load_series([enhanced_ct(singles[:4] + singles[5:])])


def _assert_same_volume(a: ImageSeries, b: ImageSeries) -> None:
    np.testing.assert_array_equal(a.volume.voxels, b.volume.voxels)
    assert a.volume.origin_mm == b.volume.origin_mm
    np.testing.assert_allclose(a.volume.spacing_mm, b.volume.spacing_mm, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(a.volume.direction, b.volume.direction)
    assert (a.padding_mask is None) == (b.padding_mask is None)
    if a.padding_mask is not None and b.padding_mask is not None:
        np.testing.assert_array_equal(a.padding_mask, b.padding_mask)
    assert a.info.patient_id == b.info.patient_id
    assert a.info.frame_of_reference_uid == b.info.frame_of_reference_uid
    assert a.info.patient_position == b.info.patient_position


# --- padding -------------------------------------------------------------------------------------
def _padded_hu() -> np.ndarray:
    hu = hu_pattern()
    hu[:, :2, :] = -3024  # rows 0-1 outside the field of view
    hu[:, 11, 15] = -2000  # the range limit itself: padding (inclusive)
    hu[:, 11, 14] = -1999  # one above the range: not padding
    return hu


def _expected_mask() -> np.ndarray:
    mask = np.zeros((10, ROWS, COLUMNS), dtype=bool)
    mask[:, :2, :] = True
    mask[:, 11, 15] = True
    return mask


PADDING = [
    pytest.param(-3024, -2000, True, _expected_mask(), id="value-below-limit"),
    pytest.param(-2000, -3024, True, _expected_mask(), id="value-above-limit"),
    pytest.param(
        -3024, None, True, np.broadcast_to(np.arange(ROWS)[None, :, None] < 2, (10, ROWS, COLUMNS)),
        id="single-value",
    ),
    pytest.param(0xF430, 0xF830, False, _expected_mask(), id="negative-written-as-US"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "limit", "as_ss", "expected"), PADDING)
def test_padding_mask(value: int, limit: int | None, as_ss: bool, expected: np.ndarray) -> None:
    datasets = ct_series(hu=_padded_hu(), signed=True, intercepts=0.0)
    for ds in datasets:
        ds.add_new(0x00280120, "SS" if as_ss else "US", value)
        if limit is not None:
            ds.add_new(0x00280121, "SS" if as_ss else "US", limit)
    series = load_series(datasets)
    assert series.padding_mask is not None
    assert series.padding_mask.shape == series.volume.voxels.shape
    np.testing.assert_array_equal(series.padding_mask, expected)


def test_padding_is_evaluated_on_stored_values_before_rescale(tmp_path: Path) -> None:
    # unsigned, intercept -1024: stored 0 is HU -1024 (voxel s=0, r=0, c=0 of the pattern only)
    datasets = ct_series(padding_value=0)
    for ds in datasets:  # through a file in implicit VR: "US or SS" resolved on reading
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    series = load_series_files(write(datasets, tmp_path))
    assert series.padding_mask is not None
    assert np.argwhere(series.padding_mask).tolist() == [[0, 0, 0]]
    assert series.volume.voxels[0, 0, 0] == -1024


def test_padding_only_in_some_instances() -> None:
    datasets = ct_series(hu=_padded_hu(), signed=True, intercepts=0.0)
    datasets[0].add_new(0x00280120, "SS", -3024)
    series = load_series(datasets)
    assert series.padding_mask is not None
    assert series.padding_mask[0, :2].all() and series.padding_mask.sum() == 2 * COLUMNS


def test_enhanced_ct_per_frame_group_wins_over_shared() -> None:
    # not conformant (a group belongs in one place), but if both are there the frame's own applies
    singles = ct_series(slopes=[1.0, 0.5] * 5, intercepts=[-1024.0, -2000.0] * 5)
    multi = enhanced_ct(singles)
    shared = multi.SharedFunctionalGroupsSequence[0]
    shared.PixelValueTransformationSequence = (
        enhanced_ct(singles, shared_rescale=True)
        .SharedFunctionalGroupsSequence[0]
        .PixelValueTransformationSequence
    )
    shared.PixelValueTransformationSequence[0].RescaleIntercept = "5000"
    _assert_same_volume(load_series([multi]), load_series(singles))
