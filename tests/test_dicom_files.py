"""Tests for igrt.dicom.files: classify the files of a directory by SOP class."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import ct_series, enhanced_ct, instance, uid, write
from pydicom.uid import (
    MRImageStorage,
    RTIonPlanStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    SpatialRegistrationStorage,
)

from igrt.core.errors import UnreadableError
from igrt.dicom.file_pixels import FilePixels
from igrt.dicom.files import DEFER_BYTES, ScanResult, scan
from igrt.dicom.instance_decoder import decode_instance
from igrt.dicom.series_loader import assemble, load_series_files

# the "no-data-set.dcm" fixture file makes pydicom warn while it reads it
pytestmark = pytest.mark.filterwarnings("ignore:End of file reached before delimiter")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A directory like a planning export: two CT series, plans, structures, and junk."""
    write(ct_series(name="planning-ct", n_slices=4), tmp_path / "ct")
    write(ct_series(name="cbct", n_slices=3), tmp_path / "cbct", prefix="img")
    write([enhanced_ct(ct_series(name="enhanced", n_slices=3))], tmp_path, prefix="enh")
    write([instance(RTPlanStorage, name="plan")], tmp_path, prefix="rtplan")
    write([instance(RTIonPlanStorage, name="ionplan")], tmp_path, prefix="rtionplan")
    write([instance(RTStructureSetStorage, name="rs", modality="RTSTRUCT")], tmp_path, prefix="rs")
    write(
        [instance(SpatialRegistrationStorage, name="reg", modality="REG")], tmp_path, prefix="reg"
    )
    write([instance(MRImageStorage, name="mr", modality="MR")], tmp_path, prefix="mr")
    (tmp_path / "phantom.json").write_text('{"phantom": "water"}')
    (tmp_path / "empty.dcm").write_bytes(b"")
    good = (tmp_path / "ct" / "ct_000.dcm").read_bytes()
    (tmp_path / "truncated.dcm").write_bytes(good[:300])  # file meta only, no data set
    (tmp_path / "no-data-set.dcm").write_bytes(good[:132] + b"\xff" * 64)
    meta_end = 144 + int.from_bytes(good[140:144], "little")  # after (0002,0000) group length
    # SOP Class UID with an unknown VR "ZZ"
    (tmp_path / "garbled.dcm").write_bytes(
        good[:meta_end] + b"\x08\x00\x16\x00ZZ\x10\x00" + b"1" * 16
    )
    nameless = ct_series(name="nameless", n_slices=2)[0]
    del nameless.SeriesInstanceUID
    write([nameless], tmp_path, prefix="nameless")
    return tmp_path


def test_scan_classifies_every_file(store: Path) -> None:
    result = scan(store)

    series = {s.series_uid: s for s in result.image_series}
    assert set(series) == {uid(n, "series") for n in ("planning-ct", "cbct", "enhanced")}
    planning = series[uid("planning-ct", "series")]
    assert planning.paths == tuple(store / "ct" / f"ct_{n:03d}.dcm" for n in range(4))
    assert planning.patient_id == "PAT-001"
    assert planning.modality == "CT"
    assert planning.frame_of_reference_uid == uid("planning-ct", "for")
    assert len(series[uid("cbct", "series")].files) == 3
    enhanced = series[uid("enhanced", "series")].files
    assert [f.sop_class_uid for f in enhanced] == ["1.2.840.10008.5.1.4.1.1.2.1"]

    assert [(f.path.name, f.sop_class_uid) for f in result.rt_plans] == [
        ("rtionplan_000.dcm", RTIonPlanStorage),
        ("rtplan_000.dcm", RTPlanStorage),
    ]
    assert result.rt_plans[1].sop_instance_uid == uid("plan", "instance")
    assert result.rt_plans[1].patient_id == "PAT-001"
    assert [f.path.name for f in result.structure_sets] == ["rs_000.dcm"]
    assert [f.path.name for f in result.registrations] == ["reg_000.dcm"]


def test_scan_keeps_the_reason_for_every_unused_file(store: Path) -> None:
    result = scan(store)
    other = {r.path.name: r.reason for r in result.other}
    assert other.keys() == {
        "mr_000.dcm",
        "truncated.dcm",
        "no-data-set.dcm",
        "garbled.dcm",
        "nameless_000.dcm",
    }
    assert other["mr_000.dcm"] == (
        "MR Image Storage (1.2.840.10008.5.1.4.1.1.4) is not used by igrt"
    )
    assert other["truncated.dcm"] == (
        "no SOPClassUID in the data set (truncated or incomplete file?)"
    )
    assert other["no-data-set.dcm"] == other["truncated.dcm"]
    assert other["garbled.dcm"] == (
        "unreadable DICOM file: NotImplementedError: Unknown Value Representation 'ZZ' in tag "
        "(0008,0016)"
    )
    assert other["nameless_000.dcm"] == "CT Image Storage without SeriesInstanceUID"
    skipped = {r.path.name: r.reason for r in result.skipped}
    assert skipped == {
        "phantom.json": "not a DICOM Part 10 file (no 'DICM' prefix)",
        "empty.dcm": "not a DICOM Part 10 file (no 'DICM' prefix)",
    }


def test_scan_accepts_a_list_of_files_and_directories(store: Path) -> None:
    result = scan([store / "cbct", store / "rtplan_000.dcm", str(store / "missing.dcm")])
    assert [s.series_uid for s in result.image_series] == [uid("cbct", "series")]
    assert [f.path.name for f in result.rt_plans] == ["rtplan_000.dcm"]
    assert [(r.path.name, r.reason) for r in result.other] == [
        ("missing.dcm", "no such file or directory")
    ]
    assert result.series(uid("cbct", "series")) is result.image_series[0]
    assert result.series("1.2.3") is None


def test_scan_of_a_single_file(store: Path) -> None:
    result = scan(store / "rs_000.dcm")
    assert len(result.structure_sets) == 1
    assert result.image_series == () and result.rt_plans == () and result.skipped == ()


def test_scanned_series_loads(store: Path) -> None:
    result = scan(store)
    planning = result.series(uid("planning-ct", "series"))
    assert planning is not None
    loaded = load_series_files(planning.paths)
    assert loaded.volume.voxels.shape == (4, 12, 16)
    assert loaded.info.instance_uids == tuple(f.sop_instance_uid for f in planning.files)


def test_scan_reads_compressed_files(tmp_path: Path) -> None:
    [plain] = write(ct_series(name="jls", n_slices=2)[:1], tmp_path / "plain")
    coded = tmp_path / "coded.dcm"
    subprocess.run(["dcmcjpls", str(plain), str(coded)], check=True, capture_output=True)
    result = scan(tmp_path)
    [series] = result.image_series
    assert [f.path.name for f in series.files] == ["coded.dcm", "ct_000.dcm"]
    assert pydicom.dcmread(coded).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"


def test_empty_directory(tmp_path: Path) -> None:
    assert scan(tmp_path) == ScanResult((), (), (), (), (), ())


def test_scan_does_not_read_pixels(store: Path) -> None:
    # a CT whose pixel data cannot be decoded is still classified (headers only)
    ds = ct_series(name="broken-pixels", n_slices=2)[0]
    ds.PixelData = np.zeros(3, dtype=np.uint8).tobytes()
    write([ds], store, prefix="broken")
    result = scan(store)
    assert result.series(uid("broken-pixels", "series")) is not None


def big_series(directory: Path, *, bits_stored: int = 16, signed: bool = False) -> list[Path]:
    """Three 400 x 400 slices: pixel data (320 KB) larger than ``files.DEFER_BYTES``."""
    rng = np.random.default_rng(5)
    hu = rng.integers(-1000, 1000, size=(3, 400, 400)).astype(np.float64)
    datasets = ct_series(name=f"big-{bits_stored}-{signed}", n_slices=3, rows=400, columns=400,
                         hu=hu, signed=signed)
    for ds in datasets:
        ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    return write(datasets, directory)


@pytest.mark.parametrize(("bits_stored", "signed"), [(16, False), (12, False), (12, True)])
def test_a_kept_data_set_leaves_its_pixels_in_the_file_and_decodes_the_same(
        tmp_path: Path, bits_stored: int, signed: bool) -> None:
    paths = big_series(tmp_path, bits_stored=bits_stored, signed=signed)
    assert DEFER_BYTES < 400 * 400 * 2
    [series] = scan(tmp_path, keep_datasets=True).image_series
    kept = [f.dataset for f in series.files]
    decoded = [decode_instance(ds, n) for n, ds in enumerate(kept) if ds is not None]
    # left in the file by the scan (one parse), read from it when assembled
    assert len(decoded) == 3 and all(isinstance(d.stored, FilePixels) for d in decoded)
    read = [decode_instance(pydicom.dcmread(p), n) for n, p in enumerate(series.paths)]
    for mapped, whole in zip(decoded, read, strict=True):
        assert isinstance(whole.stored, np.ndarray)
        values = mapped.stored_values()
        assert values.dtype == whole.stored.dtype and values.shape == whole.stored.shape
        assert np.array_equal(values, whole.stored)
    assert np.array_equal(assemble(decoded).volume.voxels,
                          load_series_files(paths).volume.voxels)


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_pixels_left_in_their_files_hold_no_file_open(tmp_path: Path) -> None:
    big_series(tmp_path)
    [series] = scan(tmp_path, keep_datasets=True).image_series
    before = open_files()
    decoded = [decode_instance(f.dataset, n) for n, f in enumerate(series.files)
               if f.dataset is not None]
    assert open_files() == before  # a planning CT of 1 000 slices keeps no 1 000 files open
    volume = assemble(decoded).volume
    assert open_files() == before and volume.voxels.shape == (3, 400, 400)


def test_a_file_cut_short_after_the_scan_is_refused_by_name(tmp_path: Path) -> None:
    paths = big_series(tmp_path)
    [series] = scan(tmp_path, keep_datasets=True).image_series
    size = paths[1].stat().st_size
    with paths[1].open("r+b") as fh:
        fh.truncate(size - 1000)
    decoded = [decode_instance(f.dataset, n) for n, f in enumerate(series.files)
               if f.dataset is not None]
    assert decoded[0].pixel_error is None and decoded[1].stored is None
    with pytest.raises(UnreadableError, match=f"{paths[1].name} changed after its header was "
                                              "read"):
        assemble(decoded)


@pytest.mark.parametrize("when", ["before decoding", "before assembling"])
def test_a_file_rewritten_after_the_scan_is_refused_not_paired_with_the_old_header(
        tmp_path: Path, when: str) -> None:
    paths = big_series(tmp_path)
    [series] = scan(tmp_path, keep_datasets=True).image_series

    def rewrite() -> None:  # other pixels, the pixel data moved; the old time stamp put back
        status = paths[1].stat()
        ds = pydicom.dcmread(paths[1])
        ds.ImageComments = "rewritten " * 20
        ds.PixelData = (np.frombuffer(ds.PixelData, np.uint16) // 2).tobytes()
        ds.save_as(paths[1])
        os.utime(paths[1], ns=(status.st_atime_ns, status.st_mtime_ns))
        assert paths[1].stat().st_mtime == status.st_mtime

    if when == "before decoding":
        rewrite()
    decoded = [decode_instance(f.dataset, n) for n, f in enumerate(series.files)
               if f.dataset is not None]
    if when == "before assembling":
        rewrite()
    with pytest.raises(UnreadableError, match=f"{paths[1].name} changed after its header was "
                                              "read"):
        assemble(decoded)
