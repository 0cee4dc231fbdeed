"""Is a received data set readable as what it claims to be? Checks run on the bytes the Storage
SCP received, before it answers ``0x0000`` (CONTRACT §3: "unreadable ... 0xC000"), so that what
igrt acknowledges can be read back by any DICOM toolkit, DCMTK included:

* :func:`check_encoding`: the first element is encoded with the negotiated transfer syntax's VR
  encoding (explicit VR bytes on an implicit VR context, or the reverse, are refused: pydicom
  would guess and read them, DCMTK would not);
* :func:`check_structure`: the top-level elements follow each other in ascending tag order and
  the last one ends exactly at the end of the data (nothing after the data set, no element cut
  short); values are not read (``defer_size``), so this stays cheap for large instances;
* :func:`check_pixel_data_decodes`: compressed (encapsulated) Pixel Data decodes, frame by frame,
  under the negotiated transfer syntax, to the size the image attributes say.

Every refusal is an :class:`~igrt.core.errors.UnreadableDataSetError` (``0xC000``) with a short
Error Comment.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from pydicom.filereader import data_element_generator
from pydicom.pixels import iter_pixels
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import VR

from igrt.core.errors import UnreadableDataSetError

_VR_NAMES = frozenset(v.value.encode("ascii") for v in VR if len(v.value) == 2)
#: (0002,0000) File Meta Information Group Length, explicit VR little endian, UL
_GROUP_LENGTH_HEADER = b"\x02\x00\x00\x00UL\x04\x00"
PREAMBLE_BYTES = 132  # 128-byte preamble + "DICM"


def data_set_offset(fp: BinaryIO) -> int:
    """Where the data set starts in a Part-10 file written with a File Meta Information Group
    Length (as pynetdicom and igrt write them)."""
    fp.seek(PREAMBLE_BYTES)
    head = fp.read(12)
    if len(head) != 12 or head[:8] != _GROUP_LENGTH_HEADER:
        raise UnreadableDataSetError(
            "the received instance has no File Meta Information Group Length",
            comment="file meta has no group length")
    (length,) = struct.unpack("<L", head[8:])
    return PREAMBLE_BYTES + 12 + length


def check_encoding(first_bytes: bytes, transfer_syntax: UID, what: str) -> None:
    """``first_bytes``: the start of the data set (at least 6 bytes)."""
    if transfer_syntax == DeflatedExplicitVRLittleEndian or len(first_bytes) < 6:
        return  # deflated: the inflated bytes are checked by the reader
    looks_explicit = first_bytes[4:6] in _VR_NAMES
    if looks_explicit and transfer_syntax.is_implicit_VR:
        raise UnreadableDataSetError(
            f"{what} is encoded with explicit VR, but the association negotiated "
            f"{transfer_syntax.name} (implicit VR); resend it in the negotiated syntax",
            comment="explicit VR data on an implicit VR context")
    if not looks_explicit and not transfer_syntax.is_implicit_VR:
        raise UnreadableDataSetError(
            f"{what} is not encoded with explicit VR, but the association negotiated "
            f"{transfer_syntax.name} (explicit VR); resend it in the negotiated syntax",
            comment="data set does not match the transfer syntax")


def check_structure(fp: BinaryIO, offset: int, size: int, transfer_syntax: UID,
                    what: str) -> None:
    """Walk the top-level elements of the data set from ``offset`` to ``size`` (see the module
    docstring)."""
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        return  # compressed bytes: the reader inflates and checks them
    fp.seek(offset)
    last, end = -1, offset
    try:
        for element in data_element_generator(
            fp, transfer_syntax.is_implicit_VR, transfer_syntax.is_little_endian,
            defer_size=256,
        ):
            tag = int(element.tag)
            if tag <= last:
                raise UnreadableDataSetError(
                    f"{what}: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) follows "
                    f"({last >> 16:04X},{last & 0xFFFF:04X}); the elements are out of order "
                    "or the data set is followed by bytes that are not DICOM",
                    comment="elements out of order or data after the data set")
            last = tag
            if tag >> 16 == 0x0002 or tag >> 16 == 0xFFFE:
                raise UnreadableDataSetError(
                    f"{what}: the data set holds element ({tag >> 16:04X},{tag & 0xFFFF:04X}), "
                    "which may not appear there",
                    comment="file meta or item tag inside the data set")
            end = fp.tell()  # the generator has read (or skipped) the whole element
    except UnreadableDataSetError:
        raise
    except Exception as exc:  # pydicom's reader: EOF inside an element, impossible lengths
        raise UnreadableDataSetError(
            f"{what} cannot be read as {transfer_syntax.name} ({type(exc).__name__}: {exc})",
            comment=f"data set cannot be parsed: {type(exc).__name__}") from exc
    if end != size:
        raise UnreadableDataSetError(
            f"{what}: {size - end} byte(s) after the last element cannot be read as DICOM",
            comment=f"{size - end} bytes of garbage after the data set")


def check_pixel_data_decodes(path: Path, transfer_syntax: UID, what: str) -> None:
    """Decode every frame of compressed Pixel Data (a no-op for native pixel data)."""
    if not transfer_syntax.is_encapsulated:
        return
    frames = 0
    try:
        for _frame in iter_pixels(path):
            frames += 1
    except Exception as exc:  # every decoder's own error: corrupt or wrongly encoded frames
        raise UnreadableDataSetError(
            f"{what}: frame {frames + 1} of its {transfer_syntax.name} Pixel Data cannot be "
            f"decoded ({type(exc).__name__}: {exc})",
            comment=f"compressed pixel data cannot be decoded ({transfer_syntax.name})"[:64],
        ) from exc
    if frames == 0:
        raise UnreadableDataSetError(f"{what}: its compressed Pixel Data holds no frame",
                                     comment="compressed pixel data holds no frame")
