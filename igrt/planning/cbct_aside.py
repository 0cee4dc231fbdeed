"""The CBCT directory of ``igrt register`` read in a forked child process, while the parent
reads the planning directory and prepares the planning side.

Reading DICOM is Python code under one lock: on one process the CBCT's 90 files and the planning
side took turns (the planning side's preparation waited on the CBCT's parsing, 0.3-0.4 s of a
~3 s run). The child scans the directory, decodes and assembles the series exactly as the parent
would (:meth:`DirectoryCbct.load`), sends the voxel grid the headers give as soon as they are
decoded (the parent prepares the planning side for it while the child assembles the series),
assembles the volume and its padding mask straight into an anonymous memory file and hands its
descriptor over a socket; the parent maps it (no copy, no pipe) and unpickles the rest: the
series' identity and the directory's scan, the image files' data sets left out (the series is
assembled; Spatial Registrations and the other small files keep theirs).

Only a series read whole comes back this way. Anything else (a refusal, an unreadable file, a
child that died, a platform without ``fork``) and :meth:`CbctAside.result` returns None: the
parent reads the directory itself, so every refusal is the one it would have met alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import mmap
import os
import pickle
import socket
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt

from igrt.core.image_series import ImageSeries
from igrt.core.types import Grid
from igrt.dicom.files import DicomFile, ScanResult, SeriesFiles
from igrt.dicom.series_loader import assemble
from igrt.planning.directory import DirectoryCbct, header_grid

log = logging.getLogger(__name__)

#: The child's first message: the CBCT's voxel grid from its headers (known: 1, then the
#: spacing and the direction cosines), before it assembles the series.
_GRID = struct.Struct("<B3d9d")
#: Its last: the sizes of the arrays and of the pickle in the memory file.
_HEADER = struct.Struct("<QQQ")


@dataclasses.dataclass(frozen=True)
class AsideRead:
    """What the child read: the directory's scan and its one CBCT series, assembled."""

    found: ScanResult
    series: ImageSeries


class CbctAside:
    """The child reading ``directory``, started at once (call with no other thread running:
    a forked child holds only the thread that forked; with another thread running, the
    directory is read in this process instead)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.pid: int | None = None
        self._socket: socket.socket | None = None
        self._grid: Grid | None = None
        self._grid_read = False
        if not hasattr(os, "fork") or not hasattr(os, "memfd_create") or \
                threading.active_count() > 1:
            return
        ours, theirs = socket.socketpair()
        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the parent's code
            try:
                ours.close()
                _child(self.directory, theirs)
            finally:
                os._exit(1)
        theirs.close()
        self.pid = pid
        self._socket = ours

    def grid(self) -> Grid | None:
        """The CBCT's voxel grid as soon as the child has decoded the headers; None when they
        make no volume, or the child is gone (the series, or reading the directory here, then
        says why). Before :meth:`result` (which reads past it otherwise)."""
        if self._grid_read:
            return self._grid
        self._grid_read = True
        if self._socket is None:
            return None
        try:
            message = b""
            while len(message) < _GRID.size:
                part = self._socket.recv(_GRID.size - len(message))
                if not part:
                    return None  # the child is gone: result() says so
                message += part
        except OSError:
            return None
        known, *values = _GRID.unpack(message)
        if known:
            self._grid = ((float(values[0]), float(values[1]), float(values[2])),
                          np.asarray(values[3:], dtype=np.float64).reshape(3, 3))
        return self._grid

    def result(self) -> AsideRead | None:
        """The series and the scan, once the child is done; None: read the directory here."""
        self.grid()  # the first message, read if it was not
        if self._socket is None:
            return None
        try:
            with self._socket:
                message, fds, _, _ = socket.recv_fds(self._socket, _HEADER.size, 1)
            if len(message) != _HEADER.size or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                return None  # the child refused the series, or died
            read = _mapped(fds[0], *_HEADER.unpack(message))
            log.debug("CBCT series %s read aside by process %d", read.series.info.series_uid,
                      self.pid)
            return read
        except Exception as exc:  # noqa: BLE001 - anything: the parent reads the directory
            log.warning("the CBCT read aside could not be taken over (%s: %s); reading it here",
                        type(exc).__name__, exc)
            return None
        finally:
            self._reap()

    def cancel(self) -> None:
        """Not needed after all: the child is stopped."""
        if self.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, 9)
        if self._socket is not None:
            self._socket.close()
        self._reap()

    def _reap(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(OSError):
                os.waitpid(self.pid, 0)
            self.pid = None
        self._socket = None


def _child(directory: Path, channel: socket.socket) -> None:
    """Read, hand over, leave (``os._exit``: none of the parent's exit handlers or buffers)."""
    code = 1
    try:
        source = DirectoryCbct(directory)
        instances = source.decoded()
        grid = header_grid(instances)
        channel.sendall(_GRID.pack(0, *[0.0] * 12) if grid is None else
                        _GRID.pack(1, *grid[0], *np.ravel(grid[1])))
        memory = _MemoryFile()
        series = assemble(instances, allocate=memory.allocate)
        header = memory.append(series, _without_image_datasets(source.found))
        socket.send_fds(channel, [header], [memory.fd])
        code = 0
    except BaseException as exc:  # noqa: BLE001 - the parent reads the directory itself
        log.debug("CBCT not read aside: %s: %s", type(exc).__name__, exc)
    finally:
        with contextlib.suppress(OSError):
            channel.close()
        os._exit(code)


class _MemoryFile:
    """An anonymous memory file the child assembles the series straight into (no copy of the
    volume), the pickled rest appended after the arrays."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("igrt-cbct")
        self._voxel_bytes = 0
        self._mask_bytes = 0
        self._memory: mmap.mmap | None = None

    def allocate(self, shape: tuple[int, int, int], padded: bool
                 ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_] | None]:
        """The volume's arrays, mapped from the file (its pages are zeros until written)."""
        count = math.prod(shape)
        self._voxel_bytes = count * np.dtype(np.float32).itemsize
        self._mask_bytes = count if padded else 0
        os.ftruncate(self.fd, self._voxel_bytes + self._mask_bytes)
        self._memory = mmap.mmap(self.fd, self._voxel_bytes + self._mask_bytes)
        voxels = np.frombuffer(self._memory, dtype=np.float32, count=count).reshape(shape)
        mask = (np.frombuffer(self._memory, dtype=np.bool_, count=count,
                              offset=self._voxel_bytes).reshape(shape) if padded else None)
        return voxels, mask

    def append(self, series: ImageSeries, found: ScanResult) -> bytes:
        """The series without its arrays (an empty volume of the voxels' dtype), their shape
        and the scan, pickled after the arrays; the header naming the three sizes."""
        voxels = series.volume.voxels
        mask = series.padding_mask
        if self._memory is None or not np.shares_memory(voxels, self._memory) or (
                (mask is None) != (self._mask_bytes == 0)) or (
                mask is not None and not np.shares_memory(mask, self._memory)):
            raise RuntimeError("the series was not assembled into the memory file")
        rest = pickle.dumps((dataclasses.replace(series, volume=dataclasses.replace(
            series.volume, voxels=np.empty((0, 0, 0), voxels.dtype)), padding_mask=None),
            voxels.shape, found), protocol=pickle.HIGHEST_PROTOCOL)
        written = 0
        while written < len(rest):  # a write may be short
            written += os.pwrite(self.fd, rest[written:],
                                 self._voxel_bytes + self._mask_bytes + written)
        return _HEADER.pack(self._voxel_bytes, self._mask_bytes, len(rest))


def _mapped(fd: int, voxel_bytes: int, mask_bytes: int, rest_bytes: int) -> AsideRead:
    """The child's memory file as arrays (mapped, not copied) and the unpickled rest."""
    try:
        memory = mmap.mmap(fd, voxel_bytes + mask_bytes + rest_bytes, flags=mmap.MAP_SHARED,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    start = voxel_bytes + mask_bytes
    series, shape, found = pickle.loads(memory[start:start + rest_bytes])
    voxels = np.frombuffer(memory, dtype=series.volume.voxels.dtype, count=int(np.prod(shape))
                           ).reshape(shape)
    mask = (np.frombuffer(memory, dtype=np.bool_, count=mask_bytes, offset=voxel_bytes
                          ).reshape(shape) if mask_bytes else None)
    series = dataclasses.replace(series, volume=dataclasses.replace(series.volume, voxels=voxels),
                                 padding_mask=mask)
    return AsideRead(found=found, series=series)


def _without_image_datasets(found: ScanResult) -> ScanResult:
    """The scan with the image files' data sets dropped (their pixels are in the series)."""
    def bare(files: tuple[DicomFile, ...]) -> tuple[DicomFile, ...]:
        return tuple(dataclasses.replace(f, dataset=None) for f in files)

    return dataclasses.replace(found, image_series=tuple(
        SeriesFiles(s.series_uid, bare(s.files)) for s in found.image_series))
