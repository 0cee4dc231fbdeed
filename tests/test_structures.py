"""RT Structure Set reading and ROI rasterisation onto a volume grid.

The main grid is an FFS-like planning CT: columns run to patient right (-x), slices to inferior
(-z), with different spacings per axis, so any swapped axis or sign lands on other voxels:

    (x, y, z) = (50 - i, -20 + 2 j, 100 - 3 k)     i.e.  i = 50 - x, j = (y + 20) / 2,
                                                          k = (100 - z) / 3
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import RTStructureSetStorage as RT_STRUCTURE_SET_SOP_CLASS

from igrt.core.errors import StructureError
from igrt.core.structures import StructureSet, find_roi, roi_mask
from igrt.core.volume import Volume
from igrt.dicom.structure_reader import read_structure_set
from igrt.dicom.values import dataset

FRAME = "1.2.826.0.1.3680043.8.498.7"
FFS_DIRECTION = np.array([[-1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0]])


def ffs_volume(nk: int = 5, slice_mm: float = 3.0) -> Volume:
    return Volume(
        voxels=np.zeros((nk, 10, 12), dtype=np.float32),
        origin_mm=(50.0, -20.0, 100.0),
        spacing_mm=(1.0, 2.0, slice_mm),
        direction=FFS_DIRECTION,
    )


def rect(x0: float, y0: float, x1: float, y1: float, z: float) -> list[float]:
    """Closed rectangle in LPS mm at height z, as flat Contour Data."""
    return [x0, y0, z, x1, y0, z, x1, y1, z, x0, y1, z]


def circle(cx: float, cy: float, z: float, r: float, n: int = 360) -> list[float]:
    out: list[float] = []
    for m in range(n):
        a = 2 * math.pi * m / n
        out += [round(cx + r * math.cos(a), 6), round(cy + r * math.sin(a), 6), z]
    return out


def contour_item(data: Sequence[float], kind: str = "CLOSED_PLANAR") -> Dataset:
    c = Dataset()
    c.ContourGeometricType = kind
    c.NumberOfContourPoints = len(data) // 3
    c.ContourData = [float(v) for v in data]
    return c


def structure_set_ds(
    rois: dict[str, list[Dataset]], *, frame: str = FRAME, roi_frames: dict[str, str] | None = None
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = RT_STRUCTURE_SET_SOP_CLASS
    ds.SOPInstanceUID = "1.2.3.200"
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([dataset(
        FrameOfReferenceUID=frame, RTReferencedStudySequence=DicomSequence([dataset(
            RTReferencedSeriesSequence=DicomSequence([dataset(
                SeriesInstanceUID="1.2.3.50")]))]))])
    roi_items, contour_items = [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        r = Dataset()
        r.ROINumber = number
        r.ROIName = name
        r.ReferencedFrameOfReferenceUID = (roi_frames or {}).get(name, frame)
        roi_items.append(r)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ContourSequence = DicomSequence(contours)
        contour_items.append(rc)
    ds.StructureSetROISequence = DicomSequence(roi_items)
    ds.ROIContourSequence = DicomSequence(contour_items)
    return ds


def mask_of(rois: dict[str, list[Dataset]], name: str, volume: Volume | None = None) -> np.ndarray:
    ss = read_structure_set(structure_set_ds(rois))
    return roi_mask(ss, name, volume or ffs_volume(), frame_of_reference_uid=FRAME)


# --- reading -------------------------------------------------------------------------------------
def test_read_structure_set() -> None:
    ss = read_structure_set(
        structure_set_ds({"BODY": [contour_item(rect(0, 0, 1, 1, 94))], "PTV": []})
    )
    assert isinstance(ss, StructureSet)
    assert (ss.sop_instance_uid, ss.frame_of_reference_uid, ss.referenced_series_uid) == (
        "1.2.3.200", FRAME, "1.2.3.50",
    )
    assert ss.names == ("BODY", "PTV")
    body = ss.by_name()["BODY"]
    assert body.number == 1 and body.frame_of_reference_uid == FRAME
    assert len(body.contours) == 1
    assert body.contours[0].geometric_type == "CLOSED_PLANAR"
    np.testing.assert_array_equal(
        body.contours[0].points_mm, [[0, 0, 94], [1, 0, 94], [1, 1, 94], [0, 1, 94]]
    )
    assert ss.by_name()["PTV"].contours == ()


def _without(keyword: str) -> Dataset:
    ds = structure_set_ds({"BODY": [contour_item(rect(0, 0, 1, 1, 94))]})
    delattr(ds, keyword)
    return ds


def _bad_contour(data: list[float], points: int) -> Dataset:
    c = contour_item(data)
    c.NumberOfContourPoints = points
    return structure_set_ds({"BODY": [c]})


@pytest.mark.parametrize(
    ("ds", "match"),
    [
        pytest.param(_without("ReferencedFrameOfReferenceSequence"), "no Frame of Reference UID",
                     id="no-frame"),
        pytest.param(_without("SOPInstanceUID"), "no SOP Instance UID", id="no-uid"),
        pytest.param(_bad_contour([0, 0, 94, 1, 0], 2), "has 5 values, not a multiple of 3",
                     id="contour-data-length"),
        pytest.param(_bad_contour([94.0], 1), "has 1 values, not a multiple of 3",
                     id="single-value"),
        pytest.param(_bad_contour(rect(0, 0, 1, 1, 94), 5),
                     "Number of Contour Points .* is 5 but Contour Data holds 4",
                     id="contour-point-count"),
    ],
)
def test_read_refusals(ds: Dataset, match: str) -> None:
    with pytest.raises(StructureError, match=match):
        read_structure_set(ds)


def test_wrong_sop_class_is_refused() -> None:
    ds = structure_set_ds({})
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.5"
    with pytest.raises(StructureError, match="is not RT Structure Set"):
        read_structure_set(ds)


# --- name lookup ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("names", "wanted", "found_number"),
    [
        pytest.param(["BODY", "PTV"], "PTV", 2, id="exact"),
        pytest.param(["BODY", "PTV"], "ptv ", 2, id="case-insensitive"),
        pytest.param(["PTV", "ptv"], "ptv", 2, id="exact-beats-case-insensitive"),
    ],
)
def test_find_roi(names: list[str], wanted: str, found_number: int) -> None:
    ss = read_structure_set(structure_set_ds({n: [] for n in names}))
    assert find_roi(ss, wanted).number == found_number


@pytest.mark.parametrize(
    ("names", "wanted", "match"),
    [
        pytest.param(["BODY", "CTV"], "PTV", r"no ROI named 'PTV' \(available: 'BODY', 'CTV'\)",
                     id="missing"),
        pytest.param([], "PTV", r"\(available: none\)", id="empty-structure-set"),
        pytest.param(["Ptv", "PTV"], "ptv",
                     r"several ROIs matching 'ptv': 'Ptv' \(number 1\), 'PTV' \(number 2\)",
                     id="ambiguous"),
    ],
)
def test_find_roi_refusals(names: list[str], wanted: str, match: str) -> None:
    ss = read_structure_set(structure_set_ds({n: [] for n in names}))
    with pytest.raises(StructureError, match=match):
        find_roi(ss, wanted)


# --- rasterisation -------------------------------------------------------------------------------
def test_square_on_ffs_grid() -> None:
    # x 47.5..43.5 -> i 2.5..6.5 -> columns 3..6; y -17..-11 -> j 1.5..4.5 -> rows 2..4;
    # z 94 -> slice 2. 4 x 3 = 12 voxels.
    mask = mask_of({"SQ": [contour_item(rect(47.5, -17, 43.5, -11, 94))]}, "SQ")
    expected = np.zeros((5, 10, 12), dtype=bool)
    expected[2, 2:5, 3:7] = True
    np.testing.assert_array_equal(mask, expected)


def test_square_on_hfs_grid() -> None:
    # Identity direction, origin (40, -20, 88): i = x - 40 -> 3.5..7.5 -> columns 4..7;
    # rows 2..4 as above; k = (94 - 88) / 3 = 2.
    volume = Volume(np.zeros((5, 10, 12), dtype=np.float32), (40.0, -20.0, 88.0), (1.0, 2.0, 3.0))
    mask = mask_of({"SQ": [contour_item(rect(47.5, -17, 43.5, -11, 94))]}, "SQ", volume)
    expected = np.zeros((5, 10, 12), dtype=bool)
    expected[2, 2:5, 4:8] = True
    np.testing.assert_array_equal(mask, expected)


def test_circle_voxel_count() -> None:
    # Centre voxel (i, j, k) = (6, 5, 1) is (44, -10, 97); radius 5.5 mm. Voxel (di, dj) is at
    # (dx, dy) = (-di, 2 dj) mm: dx² + dy² <= 30.25 gives per row dj = -2..2:
    # dj = 0, ±1: |di| <= 5 (11 each); dj = ±2: di² <= 14.25, |di| <= 3 (7 each) -> 47.
    mask = mask_of({"C": [contour_item(circle(44.0, -10.0, 97.0, 5.5))]}, "C")
    assert mask.sum() == 47
    np.testing.assert_array_equal(mask[1].sum(axis=1), [0, 0, 0, 7, 11, 11, 11, 7, 0, 0])
    np.testing.assert_array_equal(np.flatnonzero(mask[1, 3]), [3, 4, 5, 6, 7, 8, 9])
    assert mask[[0, 2, 3, 4]].sum() == 0


def test_hole_and_island_on_one_slice() -> None:
    # Outer: x 48.5..42.5 -> columns 2..7, y -17..-5 -> rows 2..7: 36 voxels.
    # Hole: x 46.5..44.5 -> columns 4..5, y -13..-9 -> rows 4..5: 4 voxels.
    # Island: x 41.5..39.5 -> columns 9..10, y -5..-3 -> row 8: 2 voxels. Total 34.
    contours = [
        contour_item(rect(48.5, -17, 42.5, -5, 94)),
        contour_item(rect(46.5, -13, 44.5, -9, 94)),
        contour_item(rect(41.5, -5, 39.5, -3, 94)),
    ]
    mask = mask_of({"R": contours}, "R")
    expected = np.zeros((5, 10, 12), dtype=bool)
    expected[2, 2:8, 2:8] = True
    expected[2, 4:6, 4:6] = False
    expected[2, 8, 9:11] = True
    np.testing.assert_array_equal(mask, expected)


def test_contours_on_several_slices() -> None:
    contours = [contour_item(rect(47.5, -17, 43.5, -11, z)) for z in (97.0, 94.0, 91.0)]
    mask = mask_of({"R": contours}, "R")
    np.testing.assert_array_equal(mask.sum(axis=(1, 2)), [0, 12, 12, 12, 0])


def test_finer_grid_takes_the_nearest_contour() -> None:
    # Contours every 3 mm at z = 97, 94, 91 (widths 1, 2, 3 columns, rows 2..4); the volume has
    # 1.5 mm slices at z = 100 - 1.5 k, so the planes sit on k = 2, 4, 6 and each covers
    # ±1.5 mm: k 1..3 -> z 97, k 4..5 -> z 94, k 6..7 -> z 91 (ties go to the lower k).
    contours = [
        contour_item(rect(47.5, -17, 46.5, -11, 97.0)),
        contour_item(rect(47.5, -17, 45.5, -11, 94.0)),
        contour_item(rect(47.5, -17, 44.5, -11, 91.0)),
    ]
    mask = mask_of({"R": contours}, "R", ffs_volume(nk=9, slice_mm=1.5))
    np.testing.assert_array_equal(mask.sum(axis=(1, 2)), [0, 3, 3, 3, 6, 6, 9, 9, 0])


def test_coarser_grid_takes_the_contour_on_its_slice() -> None:
    # Contours every 1 mm at z = 97..91, the volume has 3 mm slices: slices k = 1, 2, 3 (z = 97,
    # 94, 91) take exactly the contour at their position; z = 96 (2 columns) is never used.
    widths = {97.0: 1, 96.0: 2, 95.0: 2, 94.0: 3, 93.0: 2, 92.0: 2, 91.0: 4}
    contours = [contour_item(rect(47.5, -17, 47.5 - w, -11, z)) for z, w in widths.items()]
    mask = mask_of({"R": contours}, "R")
    np.testing.assert_array_equal(mask.sum(axis=(1, 2)), [0, 3, 9, 12, 0])


def test_gap_between_parts_stays_empty() -> None:
    # PARTS has contours on slices 1 and 3 only; BODY shows the structure set was drawn on
    # every 3 mm slice, so slice 2 is a real gap in PARTS.
    rois = {
        "BODY": [contour_item(rect(49.5, -19, 39.5, -3, z)) for z in (100, 97, 94, 91, 88)],
        "PARTS": [contour_item(rect(47.5, -17, 43.5, -11, z)) for z in (97.0, 91.0)],
    }
    np.testing.assert_array_equal(mask_of(rois, "PARTS").sum(axis=(1, 2)), [0, 12, 0, 12, 0])


def test_points_and_open_contours_are_ignored() -> None:
    contours = [
        contour_item(rect(47.5, -17, 43.5, -11, 94)),
        contour_item([45.0, -14.0, 97.0], "POINT"),
        contour_item(rect(49.5, -19, 39.5, -3, 91), "OPEN_PLANAR"),
    ]
    np.testing.assert_array_equal(mask_of({"R": contours}, "R").sum(axis=(1, 2)), [0, 0, 12, 0, 0])


@pytest.mark.parametrize(
    ("contours", "match"),
    [
        pytest.param([contour_item([45.0, -14.0, 94.0], "POINT")], "no CLOSED_PLANAR contour",
                     id="only-points"),
        pytest.param([], "no CLOSED_PLANAR contour", id="no-contours"),
        pytest.param(
            [contour_item([47.5, -17, 94, 43.5, -17, 95, 43.5, -11, 95, 47.5, -11, 94])],
            r"contour 1 is not parallel to the volume's slices \(it spans 1.00 mm",
            id="tilted",
        ),
        pytest.param([contour_item(rect(47.5, -17, 43.5, -11, 70))], "covers no voxel",
                     id="beyond-last-slice"),
        pytest.param([contour_item(rect(90, -17, 80, -11, 94))], "covers no voxel",
                     id="outside-in-plane"),
        pytest.param([contour_item(rect(45.2, -14.5, 44.8, -14.2, 94))], "covers no voxel",
                     id="smaller-than-a-voxel"),
    ],
)
def test_mask_refusals(contours: list[Dataset], match: str) -> None:
    with pytest.raises(StructureError, match=match):
        mask_of({"R": contours}, "R")


def test_roi_in_another_frame_is_refused() -> None:
    ss = read_structure_set(structure_set_ds({"R": [contour_item(rect(47.5, -17, 43.5, -11, 94))]}))
    with pytest.raises(StructureError, match=f"Frame of Reference {FRAME}, the volume is in 1.9"):
        roi_mask(ss, "R", ffs_volume(), frame_of_reference_uid="1.9")
    ds = structure_set_ds(
        {"R": [contour_item(rect(47.5, -17, 43.5, -11, 94))]}, roi_frames={"R": "1.8"}
    )
    with pytest.raises(StructureError, match="ROI 'R' is in Frame of Reference 1.8"):
        roi_mask(read_structure_set(ds), "R", ffs_volume(), frame_of_reference_uid=FRAME)
