"""The store's file-system edge: atomic durable writes, durable directories, the store lock.

A file is written to ``tmp/`` (same file system), flushed and fsync'ed, renamed into place, and
the directory holding it is fsync'ed, so after :func:`write_atomically` returns the complete file
survives a power cut, and at no moment does a partial file exist under its final name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from igrt.core.errors import OutOfSpaceError, StoreError, StoreInUseError

log = logging.getLogger(__name__)

Fsync = Callable[[int], None]

#: errno values that mean "the disk (or this process's share of it) is full".
OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

TMP_SUFFIX = ".part"
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class InstanceContent:
    """The Part-10 bytes of one instance: ``file_meta`` (preamble, ``DICM``, group 0002) then
    the data set, either ``data_set`` in memory or the bytes of the file ``source`` from
    ``source_offset`` on (a received instance the SCP spooled to disk, so that a large one is
    never held in memory whole). Identity is the data set's bytes: a re-send from another AE
    (whose file meta differs) with the same data set is the same instance."""

    file_meta: bytes
    data_set: bytes = b""
    source: Path | None = None
    source_offset: int = 0

    @classmethod
    def of(cls, data: bytes | InstanceContent) -> InstanceContent:
        return data if isinstance(data, InstanceContent) else cls(b"", data)

    def data_set_chunks(self) -> Iterator[bytes]:
        if self.source is None:
            yield self.data_set
            return
        with self.source.open("rb") as f:
            f.seek(self.source_offset)
            while chunk := f.read(CHUNK_BYTES):
                yield chunk

    def chunks(self) -> Iterator[bytes]:
        yield self.file_meta
        yield from self.data_set_chunks()

    def data_set_sha256(self) -> str:
        digest = hashlib.sha256()
        for chunk in self.data_set_chunks():
            digest.update(chunk)
        return digest.hexdigest()


def patient_key(patient_id: str) -> str:
    """File-system-safe directory name of a patient: a hash of the Patient ID, never the raw ID
    (which may contain ``/``, ``..`` or characters a file system refuses)."""
    return hashlib.sha256(patient_id.encode("utf-8")).hexdigest()[:32]


def os_error(exc: OSError, action: str) -> StoreError:
    """The store error for an ``OSError`` raised while ``action`` (a phrase, e.g. "writing SOP
    instance 1.2.3"): out of space for ENOSPC/EDQUOT/EFBIG, a plain store error otherwise."""
    detail = exc.strerror or str(exc)
    if exc.errno in OUT_OF_SPACE_ERRNOS:
        return OutOfSpaceError(f"out of disk space while {action} ({detail}); nothing was kept")
    return StoreError(f"the file system refused {action}: {detail} (errno {exc.errno})")


def fsync_dir(directory: Path, fsync: Fsync) -> None:
    """Make the entries of ``directory`` (new names, renames) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: Path, *, root: Path, fsync: Fsync) -> None:
    """Create ``directory`` (below ``root``) and any missing parents, each one made durable by
    fsync'ing its parent."""
    missing: list[Path] = []
    current = directory
    while current != root and not current.is_dir():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another thread made it meanwhile
            path.mkdir()
        fsync_dir(path.parent, fsync)


def write_atomically(final: Path, data: bytes | Iterable[bytes], *, tmp_dir: Path,
                     fsync: Fsync) -> int:
    """Write ``data`` (bytes, or chunks of bytes) as ``final``: temp file in ``tmp_dir``, fsync,
    rename, fsync the directory; returns the number of bytes written.

    An existing ``final`` is replaced atomically. On any failure the temp file is removed and
    ``final`` is untouched; the ``OSError`` propagates (map it with :func:`os_error`).
    """
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, suffix=TMP_SUFFIX)
    tmp = Path(tmp_name)
    total = 0
    try:
        try:
            for chunk in ([data] if isinstance(data, bytes) else data):
                view = memoryview(chunk)
                total += len(view)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(final.parent, fsync)
    return total


def clear_tmp(tmp_dir: Path) -> int:
    """Remove leftovers of writes interrupted by a crash; returns how many were removed.
    Only called while holding the store lock, so no write of this store is in flight."""
    removed = 0
    for leftover in tmp_dir.iterdir():
        if leftover.is_file():
            leftover.unlink()
            removed += 1
    if removed:
        log.warning("removed %d unfinished temporary file(s) from %s", removed, tmp_dir)
    return removed


class StoreLock:
    """An exclusive ``flock`` on ``<root>/igrt.lock`` for the lifetime of one open store, so two
    services (or two stores in one process) never share a state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreInUseError(
                f"the store directory {path.parent} is already open in another igrt store "
                f"(lock {path} is held); stop the other service or configure another "
                "[storage] dir"
            ) from None
        except OSError:
            os.close(fd)
            raise
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
