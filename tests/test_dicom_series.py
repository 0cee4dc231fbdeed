"""Tests for igrt.dicom.series_loader: DICOM CT / Enhanced CT instances -> Volume with its
geometry."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import COLUMNS, ROWS, ct_series, enhanced_ct, hu_pattern, uid, write
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage as CT_IMAGE_STORAGE
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    MRImageStorage,
    RLELossless,
)
from pydicom.uid import EnhancedCTImageStorage as ENHANCED_CT_IMAGE_STORAGE

from igrt.core.errors import (
    DuplicateSliceError,
    GantryTiltError,
    IrregularSpacingError,
    MissingAttributeError,
    MissingSliceError,
    MixedSeriesError,
    NotCtError,
    SeriesError,
    UnreadableError,
)
from igrt.core.series import TooFewSlicesError
from igrt.dicom.series_loader import (
    InvalidAttributeError,
    load_series,
    load_series_files,
)

Vec3 = tuple[float, float, float]


# --- geometry: where does each stored pixel land? ------------------------------------------------
# Pixel spacing (0.8, 0.5): rows 0.8 mm apart along the column cosine, columns 0.5 mm apart along
# the row cosine. Slice s is written at first + s * step. Stored pixel (s=3, r=2, c=5) is at
# first + 3 step + 5 * 0.5 * row + 2 * 0.8 * col; k counts slices along row x col.
GEOMETRY = [
    pytest.param(
        (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (-10.0, -20.0, 30.0), (0.0, 0.0, 2.0),
        (-10.0, -20.0, 30.0), [[1, 0, 0], [0, 1, 0], [0, 0, 1]], 2.0,
        (-7.5, -18.4, 36.0), (5, 2, 3),
        id="HFS",
    ),
    pytest.param(
        (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (-10.0, -20.0, 30.0), (0.0, 0.0, 2.0),
        (-10.0, -20.0, 48.0), [[-1, 0, 0], [0, 1, 0], [0, 0, -1]], 2.0,
        (-12.5, -18.4, 36.0), (5, 2, 6),
        id="FFS",
    ),
    pytest.param(
        (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (10.0, 20.0, -30.0), (0.0, 0.0, -2.0),
        (10.0, 20.0, -48.0), [[-1, 0, 0], [0, -1, 0], [0, 0, 1]], 2.0,
        (7.5, 18.4, -36.0), (5, 2, 6),
        id="HFP",
    ),
    pytest.param(
        (1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (10.0, 20.0, -30.0), (0.0, 0.0, -2.0),
        (10.0, 20.0, -30.0), [[1, 0, 0], [0, -1, 0], [0, 0, -1]], 2.0,
        (12.5, 18.4, -36.0), (5, 2, 3),
        id="FFP",
    ),
    pytest.param(
        (1.0, 0.0, 0.0), (0.0, 0.8, 0.6), (5.0, 6.0, 7.0), (0.0, -1.2, 1.6),
        (5.0, 6.0, 7.0), [[1, 0, 0], [0, 0.8, -0.6], [0, 0.6, 0.8]], 2.0,
        (7.5, 3.68, 12.76), (5, 2, 3),
        id="oblique-axial",
    ),
    pytest.param(
        (0.6, 0.8, 0.0), (0.0, 0.0, -1.0), (1.0, 2.0, 3.0), (2.0, -1.5, 0.0),
        (19.0, -11.5, 3.0), [[0.6, 0, -0.8], [0.8, 0, 0.6], [0, -1, 0]], 2.5,
        (8.5, -0.5, 1.4), (5, 2, 6),
        id="oblique-coronal",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("row", "col", "first", "step", "origin", "direction", "slice_spacing", "lps", "ijk"),
    GEOMETRY,
)
def test_stored_pixel_lands_at_its_lps_position(
    row: Vec3,
    col: Vec3,
    first: Vec3,
    step: Vec3,
    origin: Vec3,
    direction: list[list[float]],
    slice_spacing: float,
    lps: Vec3,
    ijk: tuple[int, int, int],
) -> None:
    datasets = ct_series(row_cosine=row, column_cosine=col, first_position_mm=first, step_mm=step)
    shuffled = [datasets[n] for n in np.random.default_rng(7).permutation(len(datasets))]
    volume = load_series(shuffled).volume

    np.testing.assert_allclose(volume.origin_mm, origin, atol=1e-6)
    np.testing.assert_allclose(volume.direction, direction, atol=1e-9)
    np.testing.assert_allclose(volume.spacing_mm, (0.5, 0.8, slice_spacing), atol=1e-9)
    assert volume.voxels.shape == (10, ROWS, COLUMNS)
    assert volume.voxels.dtype == np.float32
    i, j, k = ijk
    assert volume.voxels[k, j, i] == 5 + 16 * 2 + 192 * 3 - 1024  # hu_pattern[s=3, r=2, c=5]
    np.testing.assert_allclose(volume.index_to_point_mm(ijk), lps, atol=1e-6)
    np.testing.assert_allclose(volume.point_to_index(lps), ijk, atol=1e-6)
    # written slice s = 3 at k = 6: the slices are stacked against the writing order, k = 9 - s
    hu = hu_pattern()
    expected = hu[::-1] if k == 6 else hu
    np.testing.assert_array_equal(volume.voxels, expected.astype(np.float32))


@pytest.mark.parametrize(
    "thickness_mm",
    [pytest.param(3.0, id="overlapping-3mm-every-2mm"), pytest.param(1.0, id="gapped-1mm")],
)
def test_slice_spacing_comes_from_positions_not_thickness(thickness_mm: float) -> None:
    volume = load_series(ct_series(slice_thickness_mm=thickness_mm)).volume
    assert volume.spacing_mm == (0.5, 0.8, 2.0)


def test_per_slice_rescale() -> None:
    slopes = [1.0, 0.5, 0.25, 1.0, 2.0, 1.0, 0.5, 1.0, 0.25, 1.0]
    intercepts = [-1024.0, -1000.0, -3000.5, 0.0, -1024.0, 100.0, -2048.0, -1.0, 0.0, -1024.0]
    hu = hu_pattern()
    hu[4] = 2 * np.floor(hu[4] / 2)  # slope 2: HU - intercept must be even
    volume = load_series(ct_series(hu=hu, slopes=slopes, intercepts=intercepts, signed=True)).volume
    np.testing.assert_array_equal(volume.voxels, hu.astype(np.float32))


def test_series_info() -> None:
    datasets = ct_series(patient_id="PAT-042", patient_position="FFS", name="info")
    series = load_series(datasets[::-1])
    info = series.info
    assert info.patient_id == "PAT-042"
    assert info.series_uid == uid("info", "series")
    assert info.study_uid == uid("info", "study")
    assert info.frame_of_reference_uid == uid("info", "for")
    assert info.modality == "CT"
    assert info.sop_class_uid == CT_IMAGE_STORAGE
    assert info.patient_position == "FFS"
    assert info.series_description == "synthetic CT"
    assert info.n_instances == 10
    assert info.instance_uids == tuple(ds.SOPInstanceUID for ds in datasets)
    assert series.padding_mask is None


def test_empty_patient_position_is_none() -> None:
    assert load_series(ct_series(patient_position=None)).info.patient_position is None


# --- refusals ------------------------------------------------------------------------------------
def _remove(keyword: str, index: int = 3) -> Callable[[list[Dataset]], list[Dataset]]:
    def edit(datasets: list[Dataset]) -> list[Dataset]:
        delattr(datasets[index], keyword)
        return datasets

    return edit


def _set(keyword: str, value: object, index: int = 3) -> Callable[[list[Dataset]], list[Dataset]]:
    def edit(datasets: list[Dataset]) -> list[Dataset]:
        setattr(datasets[index], keyword, value)
        return datasets

    return edit


def _other_series(datasets: list[Dataset]) -> list[Dataset]:
    return datasets[:5] + ct_series(name="other", first_position_mm=(-10.0, -20.0, 40.0))[:3]


def _drop(index: int) -> Callable[[list[Dataset]], list[Dataset]]:
    return lambda datasets: datasets[:index] + datasets[index + 1 :]


REFUSALS = [
    pytest.param(
        _other_series, MixedSeriesError,
        rf"the instances belong to 2 series: {uid('ct', 'series')} \(5 instances\), "
        rf"{uid('other', 'series')} \(3 instances\)",
        id="two-series",
    ),
    pytest.param(
        _set("FrameOfReferenceUID", "1.2.3.4"), MixedSeriesError,
        rf"series {uid('ct', 'series')} mixes 2 Frame of Reference UIDs: "
        rf"{uid('ct', 'for')} \(9 instances\), 1\.2\.3\.4 \(1 instance\)",
        id="two-frames-of-reference",
    ),
    pytest.param(
        _set("PatientID", "PAT-002"), MixedSeriesError,
        r"mixes 2 Patient IDs: PAT-001 \(9 instances\), PAT-002 \(1 instance\)",
        id="two-patients",
    ),
    pytest.param(
        _set("StudyInstanceUID", "1.2.3.5"), MixedSeriesError,
        r"mixes 2 Study Instance UIDs: .* 1\.2\.3\.5 \(1 instance\)",
        id="two-studies",
    ),
    pytest.param(
        _set("PatientPosition", "FFS"), MixedSeriesError,
        r"mixes 2 Patient Positions: HFS \(9 instances\), FFS \(1 instance\)",
        id="two-patient-positions",
    ),
    pytest.param(
        lambda d: d[:5] + [enhanced_ct(d[5:])],
        MixedSeriesError,
        rf"mixes 2 SOP Classes: {CT_IMAGE_STORAGE} \(5 instances\), "
        rf"{ENHANCED_CT_IMAGE_STORAGE} \(1 instance\)",
        id="ct-and-enhanced-ct",
    ),
    pytest.param(
        lambda d: [*d, d[2]], DuplicateSliceError,
        rf"instance {uid('ct', uid('ct', 'series'), 'instance', 2)} was given 2 times",
        id="same-instance-twice",
    ),
    pytest.param(
        _set("SOPClassUID", MRImageStorage), NotCtError,
        r"is a MR Image Storage \(1\.2\.840\.10008\.5\.1\.4\.1\.1\.4\), not CT Image Storage",
        id="mr-sop-class",
    ),
    pytest.param(
        _set("Modality", "MR"), NotCtError,
        r"\(InstanceNumber 4\) has Modality 'MR'; only CT images are accepted",
        id="modality-mr",
    ),
    *[
        pytest.param(
            _remove(keyword), MissingAttributeError,
            rf"{keyword} is missing or empty in instance .* \(InstanceNumber 4\)",
            id=f"missing-{keyword}",
        )
        for keyword in (
            "SOPClassUID", "Modality", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
            "FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient",
            "PixelSpacing", "RescaleSlope", "RescaleIntercept", "PixelData", "Rows",
        )
    ],
    pytest.param(
        _remove("SOPInstanceUID"), MissingAttributeError,
        r"SOPInstanceUID is missing or empty in instance #4 \(no SOPInstanceUID\) "
        r"\(InstanceNumber 4\)",
        id="missing-SOPInstanceUID",
    ),
    pytest.param(
        _set("PatientID", ""), MissingAttributeError,
        r"PatientID is missing or empty in instance",
        id="empty-PatientID",
    ),
    pytest.param(
        _set("ImagePositionPatient", ["1", "2"]), InvalidAttributeError,
        r"ImagePositionPatient in instance .* must be 3 finite numbers",
        id="two-value-position",
    ),
    pytest.param(
        _set("RescaleSlope", "0"), InvalidAttributeError, r"RescaleSlope in instance .* is 0",
        id="zero-slope",
    ),
    pytest.param(
        _set("SamplesPerPixel", 3), InvalidAttributeError, r"has SamplesPerPixel 3",
        id="colour",
    ),
    pytest.param(
        _drop(4), MissingSliceError,
        r"1 slice is missing from a stack spaced 2\.000 mm .*: 1 slice missing between "
        r"instance .* \(InstanceNumber 4\) at 36\.00 mm and instance .* \(InstanceNumber 6\) "
        r"at 40\.00 mm",
        id="missing-slice",
    ),
    pytest.param(
        _set("ImagePositionPatient", [-10, -20, 34]), DuplicateSliceError,
        r"slices instance .* \(InstanceNumber 3\) and instance .* \(InstanceNumber 4\) are at "
        r"the same position .*\(34\.000 mm vs 34\.000 mm",
        id="duplicate-position",
    ),
    pytest.param(
        _set("ImagePositionPatient", [-10, -20, 36.5]), IrregularSpacingError,
        r"the slice spacing is irregular: the usual gap is 2\.000 mm but 2 gaps differ",
        id="irregular-spacing",
    ),
    pytest.param(
        lambda d: ct_series(step_mm=(0.0, 0.5, 2.0)), GantryTiltError,
        r"is 4\.500 mm off the normal .* tilted by 14\.04°",
        id="gantry-tilt",
    ),
    pytest.param(
        lambda d: d[:1], TooFewSlicesError, r"the series has 1 slice \(instance .*\)",
        id="one-slice",
    ),
    pytest.param(
        _set("PixelData", b"\x00" * 10), UnreadableError,
        r"the pixel data of instance .* \(Explicit VR Little Endian\) cannot be decoded",
        id="short-pixel-data",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "error", "match"), REFUSALS)
def test_refusals_name_the_problem(
    edit: Callable[[list[Dataset]], list[Dataset]], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        load_series(edit(ct_series()))
    assert isinstance(info.value, SeriesError)


def test_no_datasets() -> None:
    with pytest.raises(SeriesError, match="no instances were given"):
        load_series([])


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    paths = write(ct_series()[:3], tmp_path)
    junk = tmp_path / "phantom.json"
    junk.write_text('{"not": "dicom"}')
    with pytest.raises(UnreadableError, match=r"phantom\.json is not a readable DICOM file"):
        load_series_files([*paths, junk])


# --- files and transfer syntaxes -----------------------------------------------------------------
def transfer_syntax(path: Path) -> str:
    """The Transfer Syntax UID of a file as DCMTK sees it."""
    out = subprocess.run(
        ["dcmdump", "-M", "-Un", "+P", "0002,0010", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = re.search(r"\(0002,0010\) UI \[([0-9.]+)\]", out)
    assert found, out
    return found.group(1)


def _dcmtk(*args: str) -> Callable[[Path, Path], None]:
    def convert(src: Path, dst: Path) -> None:
        subprocess.run([*args, str(src), str(dst)], check=True, capture_output=True)

    return convert


def _pydicom(syntax: str) -> Callable[[Path, Path], None]:
    def convert(src: Path, dst: Path) -> None:
        ds = pydicom.dcmread(src)
        ds.compress(syntax, generate_instance_uid=False)
        ds.save_as(dst, enforce_file_format=True)

    return convert


CODECS = [
    pytest.param(_dcmtk("dcmcjpeg"), JPEGLosslessSV1, id="jpeg-lossless-dcmcjpeg"),
    pytest.param(_dcmtk("dcmcrle"), RLELossless, id="rle-dcmcrle"),
    pytest.param(_dcmtk("dcmcjpls"), JPEGLSLossless, id="jpeg-ls-lossless-dcmcjpls"),
    pytest.param(_dcmtk("dcmconv", "+td"), DeflatedExplicitVRLittleEndian, id="deflated-dcmconv"),
    pytest.param(_dcmtk("dcmconv", "+ti"), ImplicitVRLittleEndian, id="implicit-dcmconv"),
    pytest.param(_pydicom(JPEG2000Lossless), JPEG2000Lossless, id="jpeg2000-lossless-pydicom"),
    pytest.param(_pydicom(RLELossless), RLELossless, id="rle-pydicom"),
]


def _signed_series(*, padding_value: int | None = None) -> list[Dataset]:
    """4 slices of 32 x 48, signed stored values -1024..5119 (HU = stored): codecs see negatives.

    (OpenJPEG's default 6 wavelet resolutions need at least 32 pixels a side.)
    """
    return ct_series(
        n_slices=4,
        rows=32,
        columns=48,
        signed=True,
        intercepts=0.0,
        name="codec",
        padding_value=padding_value,
    )


@pytest.mark.parametrize(("convert", "syntax"), CODECS)
def test_compressed_series_decodes_to_the_same_volume(
    tmp_path: Path, convert: Callable[[Path, Path], None], syntax: str
) -> None:
    plain = write(_signed_series(), tmp_path / "plain")
    assert {transfer_syntax(p) for p in plain} == {ExplicitVRLittleEndian}
    (tmp_path / "coded").mkdir()
    coded = [tmp_path / "coded" / p.name for p in plain]
    for src, dst in zip(plain, coded, strict=True):
        convert(src, dst)
    assert {transfer_syntax(p) for p in coded} == {syntax}

    reference = load_series_files(plain)
    decoded = load_series_files(coded[::-1])
    assert reference.volume.voxels.min() == -1024
    np.testing.assert_array_equal(decoded.volume.voxels, reference.volume.voxels)
    assert decoded.volume.origin_mm == reference.volume.origin_mm
    assert decoded.volume.spacing_mm == reference.volume.spacing_mm
    np.testing.assert_array_equal(decoded.volume.direction, reference.volume.direction)
    assert decoded.info == reference.info




# --- one parse per file: the volume around a point, the pixel buffer read directly -------------
def test_around_keeps_the_box_of_the_whole_volume() -> None:
    datasets = ct_series()
    whole = load_series(datasets).volume
    center = whole.index_to_point_mm((COLUMNS / 2, ROWS / 2, 2.0))
    part = load_series(datasets, around_mm=(center, (3.0, 2.0, 4.0))).volume
    (i0, j0, k0) = np.rint(whole.point_to_index(part.origin_mm)).astype(int)
    ni, nj, nk = part.shape_ijk
    assert (nk, nj, ni) != whole.voxels.shape
    np.testing.assert_array_equal(part.voxels, whole.voxels[k0:k0 + nk, j0:j0 + nj, i0:i0 + ni])
    np.testing.assert_allclose(part.index_to_point_mm((0, 0, 0)),
                               whole.index_to_point_mm((i0, j0, k0)))
    with pytest.raises(SeriesError, match="does not reach"):
        load_series(datasets, around_mm=(center + 1000.0, (3.0, 2.0, 4.0)))


@pytest.mark.parametrize("signed", [False, True])
def test_unused_high_bits_are_ignored_as_pydicom_does(signed: bool) -> None:
    datasets = ct_series(signed=signed, intercepts=0.0 if signed else -1024.0)
    for ds in datasets:
        ds.BitsStored, ds.HighBit = 12, 11
        stored = np.frombuffer(ds.PixelData, dtype="<i2" if signed else "<u2").copy()
        stored[::7] |= np.array(0x7000, dtype=stored.dtype)  # garbage above bit 11
        ds.PixelData = stored.tobytes()
    expected = np.stack([ds.pixel_array for ds in datasets]).astype(np.float32)
    volume = load_series(datasets).volume
    intercept = np.float32(datasets[0].RescaleIntercept)
    np.testing.assert_array_equal(np.sort(volume.voxels.ravel()),
                                  np.sort((expected + intercept).ravel()))
