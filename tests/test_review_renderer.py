"""The review renderer hands back what it stored (the QA desk's fused images, rendered once)."""

from __future__ import annotations

import time
from typing import cast

from zmq_clients import correction

from igrt.core.case import Registered
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


def test_rendered_waits_no_longer_than_its_timeout(store: Store) -> None:
    """A seq still queued (the renderer not started): nothing after the timeout, not a hang."""
    seq = int(store.append_correction(correction("1.2.3.6"))["seq"])
    renderer = ReviewRenderer(store)
    renderer.submit(seq, cast(Registered, None))
    assert renderer.pending(seq)
    t0 = time.monotonic()
    assert renderer.rendered(seq, {"axial"}, timeout_s=0.3) == {}
    assert 0.25 <= time.monotonic() - t0 < 5.0


def test_rendered_waits_for_the_rendering_to_end(store: Store) -> None:
    """The QA desk asks while the seq is being rendered: the answer comes when rendering ended
    (here it fails: what was stored before is all there is), not at the timeout."""
    seq = int(store.append_correction(correction("1.2.3.7"))["seq"])
    store.save_review_image(seq, "axial", b"png-axial")
    renderer = ReviewRenderer(store)
    renderer.submit(seq, cast(Registered, None))  # rendering it raises: logged, never stored
    renderer.start()
    try:
        t0 = time.monotonic()
        assert renderer.rendered(seq, {"axial"}, timeout_s=30.0) == {"axial": b"png-axial"}
        assert time.monotonic() - t0 < 10.0
        assert not renderer.pending(seq)
    finally:
        renderer.stop()
