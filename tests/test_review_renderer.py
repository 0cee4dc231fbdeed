"""The review renderer hands back what it stored (the QA desk's fused images, rendered once)."""

from __future__ import annotations

from zmq_clients import correction

from igrt.store import Store
from services.review_renderer import ReviewRenderer


def test_rendered_gives_the_stored_images_asked_for(store: Store) -> None:
    seq = int(store.append_correction(correction("1.2.3.5"))["seq"])
    store.save_review_image(seq, "coronal", b"png-coronal")
    store.save_review_image(seq, "axial", b"png-axial")
    renderer = ReviewRenderer(store)
    assert renderer.rendered(seq, {"coronal"}, timeout_s=0.1) == {"coronal": b"png-coronal"}


def test_rendered_is_empty_when_nothing_was_rendered(store: Store) -> None:
    assert ReviewRenderer(store).rendered(6, {"coronal"}, timeout_s=0.1) == {}
