"""igrt.review: the three planes as the patient lies (edge letters hand-computed for each
position), trilinear sampling, the HU fit, and rendered images in which the CBCT lines up with
the planning CT after the known correction and not before (phantom with a known answer)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from phantom_cases import planning_set
from PIL import Image

from igrt.core import geometry
from igrt.core.case import Registered, build_case
from igrt.core.geometry import CouchCorrection, PatientPosition
from igrt.core.volume import Volume
from igrt.dicom.files import scan
from igrt.dicom.plan_reader import read_plan
from igrt.dicom.series_loader import load_series_files
from igrt.review.compose import PRESETS, windowed
from igrt.review.png import encode
from igrt.review.render import MODES, STAGES, hu_fit, render
from igrt.review.sample import sample
from igrt.review.views import views
from phantoms.generator import expected_registration, write_cbct

HFS, FFS, HFP, FFP = (PatientPosition.HFS, PatientPosition.FFS, PatientPosition.HFP,
                      PatientPosition.FFP)


# (position, view) -> letters at (left, right, top, bottom), worked out by hand from the IEC
# table-top axes of CONTRACT §1 and the views of igrt.review.views.
@pytest.mark.parametrize(
    ("position", "view", "letters"),
    [
        pytest.param(HFS, "axial", "RLAP", id="hfs-axial-radiological"),
        pytest.param(HFS, "coronal", "RLSI", id="hfs-coronal"),
        pytest.param(HFS, "sagittal", "APSI", id="hfs-sagittal"),
        pytest.param(FFS, "axial", "LRAP", id="ffs-axial"),
        pytest.param(FFS, "coronal", "LRIS", id="ffs-coronal"),
        pytest.param(FFS, "sagittal", "APIS", id="ffs-sagittal"),
        pytest.param(HFP, "axial", "LRPA", id="hfp-axial-spine-up"),
        pytest.param(HFP, "coronal", "LRSI", id="hfp-coronal"),
        pytest.param(HFP, "sagittal", "PASI", id="hfp-sagittal"),
        pytest.param(FFP, "axial", "RLPA", id="ffp-axial"),
        pytest.param(FFP, "coronal", "RLIS", id="ffp-coronal"),
        pytest.param(FFP, "sagittal", "PAIS", id="ffp-sagittal"),
    ],
)
def test_edge_letters(position: PatientPosition, view: str, letters: str) -> None:
    found = {v.name: v.edge_letters for v in views(position)}[view]
    assert "".join(found[e] for e in ("left", "right", "top", "bottom")) == letters


def ramp_volume() -> Volume:
    k, j, i = np.mgrid[0:6, 0:7, 0:8].astype(np.float32)
    return Volume(voxels=(i + 10 * j + 100 * k).astype(np.float32), origin_mm=(5.0, -3.0, 20.0),
                  spacing_mm=(2.0, 1.0, 4.0))


def test_sampling_is_trilinear_and_nan_outside() -> None:
    v = ramp_volume()
    # index (i, j, k) = (2.5, 3.25, 1.5) -> 2.5 + 32.5 + 150
    point = v.index_to_point_mm((2.5, 3.25, 1.5))
    outside = v.index_to_point_mm((-0.5, 0.0, 0.0))
    values = sample(v, np.stack([point, outside]))
    assert values[0] == pytest.approx(185.0, abs=1e-4)
    assert np.isnan(values[1])
    mask = np.zeros(v.voxels.shape, dtype=bool)
    mask[1:3, 3, 2:4] = True  # the nearest voxel is outside the field of view
    assert np.isnan(sample(v, point[None], outside=mask)[0])


def test_hu_fit_recovers_a_linear_bias() -> None:
    rng = np.random.default_rng(3)
    ct = rng.uniform(-800, 1500, size=(60, 60)).astype(np.float32)
    cbct = ((ct - 40.0) / 1.15).astype(np.float32)
    gain, offset = hu_fit([ct], [cbct])
    assert (gain, offset) == (pytest.approx(1.15, abs=1e-3), pytest.approx(40.0, abs=0.5))


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Registered:
    """A phantom CBCT and the exact registration its known correction implies."""
    root = tmp_path_factory.mktemp("review")
    plan_case = planning_set(root)
    known = CouchCorrection(6.0, -8.0, 4.0, 1.5, -1.0, 2.0)
    cbct_case = write_cbct(root / "cbct", plan_case, known)
    planning = scan(plan_case.directory)
    ct = load_series_files(planning.image_series[0].paths)
    plan = read_plan(pydicom.dcmread(planning.rt_plans[0].path))
    cbct = load_series_files(scan(cbct_case.directory).image_series[0].paths)
    case, _, nominal = build_case(cbct=cbct, plan=plan, ct=ct)
    initial = geometry.registration_for_correction(np.eye(4), nominal.matrix, case.isocenter_mm)
    transform = expected_registration(plan_case, known, "origin")
    return Registered(case, ct.volume, initial, transform, (160.0, 160.0, 120.0))


def test_the_cbct_lines_up_after_the_correction_and_not_before(registered: Registered) -> None:
    panels = {p.name: p for p in render(registered)}
    names = {f"{v}_{s}_{m}_{w.name}" for v in ("axial", "coronal", "sagittal") for s in STAGES
             for m in MODES for w in PRESETS}
    assert set(panels) == names
    for view in ("axial", "coronal", "sagittal"):
        before = panels[f"{view}_before_blend_soft"].rgb.astype(float)
        after = panels[f"{view}_after_blend_soft"].rgb.astype(float)
        # blend: planning CT in red and blue, CBCT in green; aligned -> R == G where both exist
        mismatch_before = np.abs(before[..., 0] - before[..., 1]).mean()
        mismatch_after = np.abs(after[..., 0] - after[..., 1]).mean()
        assert mismatch_after < 0.6 * mismatch_before, (view, mismatch_before, mismatch_after)
        assert not np.array_equal(before, after)


def test_panels_encode_as_png_with_their_labels(registered: Registered) -> None:
    panel = next(p for p in render(registered) if p.name == "axial_after_checker_bone")
    png = encode(panel)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert image.shape == panel.rgb.shape
    assert not np.array_equal(image, panel.rgb)  # the letters and the scale label are drawn
    assert {lab.text for lab in panel.labels} >= {"R", "L", "A", "P", "50 mm"}


def test_window_presets_clip_to_the_window() -> None:
    soft = next(w for w in PRESETS if w.name == "soft")
    values = np.array([-1000.0, soft.level_hu, 1000.0, np.nan], dtype=np.float32)
    out = windowed(values, soft)
    assert out[:3].tolist() == [0.0, 0.5, 1.0] and np.isnan(out[3])


def test_a_review_image_file_is_a_png(tmp_path: Path, registered: Registered) -> None:
    panel = render(registered)[0]
    path = tmp_path / "x.png"
    path.write_bytes(encode(panel))
    assert Image.open(path).format == "PNG"


def test_a_label_stamped_gives_the_pixels_drawing_it_gives(registered: Registered) -> None:
    """Labels are drawn once and pasted (``igrt.review.png._stamp``): the same pixels as
    drawing each with its outline in place, on every panel."""
    from PIL import ImageDraw, ImageFont

    from igrt.review.png import FONT_PX, LABEL_RGB, OUTLINE_PX

    font = ImageFont.load_default(size=FONT_PX)
    for panel in render(registered)[:6]:
        drawn = Image.fromarray(panel.rgb, mode="RGB")
        draw = ImageDraw.Draw(drawn)
        for label in panel.labels:
            draw.text((round(label.x), round(label.y)), label.text, fill=LABEL_RGB, font=font,
                      anchor=label.anchor, stroke_width=OUTLINE_PX, stroke_fill=(0, 0, 0))
        stamped = np.asarray(Image.open(io.BytesIO(encode(panel))).convert("RGB"))
        np.testing.assert_array_equal(stamped, np.asarray(drawn))
        assert not np.array_equal(stamped, panel.rgb)
