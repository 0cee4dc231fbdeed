"""The review images of each correction (PNG files under ``review/<seq>/``), written atomically
and indexed, so that they survive restarts with the correction they show."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from igrt.store.base import StoreBase
from igrt.store.files import ensure_dir, os_error, write_atomically

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"[a-z0-9_]{1,64}")


class ReviewImages(StoreBase):
    def save_review_image(self, seq: int, name: str, png: bytes) -> Path:
        """Store one PNG of correction ``seq`` durably (``name``: ``[a-z0-9_]``)."""
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"review image name {name!r} is not [a-z0-9_]{{1,64}}")
        rel = Path("review", str(int(seq)), f"{name}.png")
        final = self.root / rel
        try:
            ensure_dir(final.parent, root=self.root, fsync=self._fsync)
            write_atomically(final, png, tmp_dir=self.root / "tmp", fsync=self._fsync)
        except OSError as exc:
            raise os_error(exc, f"writing review image {name} of seq {seq}") from exc
        with self._transaction(f"recording review image {name} of seq {seq}") as conn:
            conn.execute(
                "INSERT INTO review_images (seq, name, rel_path, stored_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(seq, name) DO UPDATE SET rel_path = excluded.rel_path, "
                "stored_at = excluded.stored_at", (seq, name, str(rel), self._now()))
        return final

    def review_images(self, seq: int) -> dict[str, Path]:
        """The stored review images of ``seq`` by name ({} while none are rendered)."""
        with self._reading(f"listing the review images of seq {seq}") as conn:
            rows = conn.execute("SELECT name, rel_path FROM review_images WHERE seq = ? "
                                "ORDER BY name", (seq,)).fetchall()
        return {str(name): self.root / str(rel) for name, rel in rows}
