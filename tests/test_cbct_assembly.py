"""igrt.planning.cbct_assembly: CBCT instances decoded as their events arrive give the volume a
whole read gives; the store stays the record of truth (a re-sent instance is read again, an
instance never announced is read at assembly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from phantom_cases import planning_set
from stored_files import replace_file, store_directory, store_file

from igrt.core.errors import MissingSliceError
from igrt.core.geometry import CouchCorrection
from igrt.core.kinds import Role
from igrt.dicom.series_loader import load_series_files
from igrt.planning.cbct_assembly import CbctAssembler
from igrt.store import Store
from phantoms.generator import CbctCase, write_cbct

KNOWN = CouchCorrection(2.0, -1.0, 3.0, 0.5, 0.0, -1.0)


@pytest.fixture(scope="module")
def cbct_case(tmp_path_factory: pytest.TempPathFactory) -> CbctCase:
    root = tmp_path_factory.mktemp("assembly")
    return write_cbct(root / "cbct", planning_set(root), KNOWN)


def test_decoded_on_arrival_is_the_whole_read(store: Store, cbct_case: CbctCase) -> None:
    metas = store_directory(store, cbct_case.directory, role=Role.IMAGING, association_id="a1")
    assembler = CbctAssembler(store)
    for meta in metas:
        assembler.add(meta.series_uid, meta.sop_instance_uid)
    assert assembler.held_series() == [cbct_case.series_uid]
    assembled = assembler.assemble(cbct_case.series_uid)
    assert assembler.last_decoded_on_arrival == len(metas)
    whole = load_series_files(store.series_instances(cbct_case.series_uid))
    np.testing.assert_array_equal(assembled.volume.voxels, whole.volume.voxels)
    assert assembled.padding_mask is not None and whole.padding_mask is not None
    np.testing.assert_array_equal(assembled.padding_mask, whole.padding_mask)
    assert assembled.info == whole.info
    assert assembler.held_series() == []  # released once assembled


def test_instances_not_announced_are_read_at_assembly(store: Store, cbct_case: CbctCase) -> None:
    metas = store_directory(store, cbct_case.directory, role=Role.IMAGING, association_id="a1")
    assembler = CbctAssembler(store)
    for meta in metas[: len(metas) // 2]:
        assembler.add(meta.series_uid, meta.sop_instance_uid)
    assembled = assembler.assemble(cbct_case.series_uid)
    assert assembler.last_decoded_on_arrival == len(metas) // 2
    assert assembled.info.n_instances == len(metas)


def test_a_resent_instance_is_read_again(store: Store, cbct_case: CbctCase,
                                         tmp_path: Path) -> None:
    metas = store_directory(store, cbct_case.directory, role=Role.IMAGING, association_id="a1")
    assembler = CbctAssembler(store)
    for meta in metas:
        assembler.add(meta.series_uid, meta.sop_instance_uid)
    # A stored file changes after it was decoded (other pixels, a new file): the store refuses
    # other content under a held SOP Instance UID, but a purged series may be received again.
    held = store.series_instances(cbct_case.series_uid)[0]
    ds = pydicom.dcmread(held)
    pixels = ds.pixel_array.copy()
    pixels[:] = pixels.min()
    ds.PixelData = pixels.tobytes()
    changed = tmp_path / held.name
    ds.save_as(changed)
    replace_file(held, changed.read_bytes())
    assembled = assembler.assemble(cbct_case.series_uid)
    assert assembler.last_decoded_on_arrival == len(metas) - 1
    np.testing.assert_array_equal(
        assembled.volume.voxels,
        load_series_files(store.series_instances(cbct_case.series_uid)).volume.voxels)


def test_a_missing_slice_is_refused_as_a_whole_read_refuses_it(store: Store,
                                                               cbct_case: CbctCase) -> None:
    paths = sorted(cbct_case.directory.glob("*.dcm"))
    by_position = sorted(paths, key=lambda p: float(
        pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
    gap = by_position[len(by_position) // 2]
    assembler = CbctAssembler(store)
    for path in paths:
        if path != gap:
            meta = store_file(store, path, role=Role.IMAGING, association_id="a1")
            assembler.add(meta.series_uid, meta.sop_instance_uid)
    with pytest.raises(MissingSliceError):
        assembler.assemble(cbct_case.series_uid)


def test_partial_series_are_bounded_and_discarded(store: Store, cbct_case: CbctCase,
                                                  tmp_path: Path) -> None:
    other = write_cbct(tmp_path / "other", planning_set(tmp_path), KNOWN, seed=7)
    first = store_directory(store, cbct_case.directory, role=Role.IMAGING, association_id="a1")
    second = store_directory(store, other.directory, role=Role.IMAGING, association_id="a2")
    assembler = CbctAssembler(store, max_series=1)
    assembler.add(first[0].series_uid, first[0].sop_instance_uid)
    assembler.add(first[0].series_uid, second[0].sop_instance_uid)  # not that series': ignored
    assert assembler.held_series() == [cbct_case.series_uid]
    assembler.add(second[0].series_uid, second[0].sop_instance_uid)
    assert assembler.held_series() == [other.series_uid]  # the least recently fed was dropped
    assembler.discard(other.series_uid)
    assert assembler.held_series() == []
    assembled = assembler.assemble(cbct_case.series_uid)  # what was dropped is read now
    assert assembler.last_decoded_on_arrival == 0
    assert assembled.info.n_instances == len(first)
