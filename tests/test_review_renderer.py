"""The review renderer hands back what it stored (the QA desk's fused images, rendered once)."""

from __future__ import annotations

import threading
import time
from typing import cast

import numpy as np
import pytest
from zmq_clients import correction

from igrt.core.case import Registered
from igrt.review.render import Panel
from igrt.store import Store
from services import review_renderer
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


def test_rendered_waits_for_the_rendering_to_end(store: Store,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The QA desk asks while the seq is being rendered: the answer comes when rendering ended,
    not before and not at the timeout, with every panel encoded and stored under its name."""
    seq = int(store.append_correction(correction("1.2.3.7"))["seq"])
    release = threading.Event()

    def slow_render(registered: Registered) -> list[Panel]:
        release.wait(30)
        return [Panel(name, np.full((8, 12, 3), shade, np.uint8), ())
                for name, shade in (("axial", 10), ("coronal", 20), ("sagittal", 30))]

    monkeypatch.setattr(review_renderer, "render", slow_render)
    renderer = ReviewRenderer(store)
    renderer.submit(seq, cast(Registered, object()))
    renderer.start()
    try:
        threading.Timer(0.5, release.set).start()
        t0 = time.monotonic()
        images = renderer.rendered(seq, {"axial", "sagittal"}, timeout_s=30.0)
        assert 0.4 <= time.monotonic() - t0 < 10.0
        assert sorted(images) == ["axial", "sagittal"]
        assert all(png.startswith(b"\x89PNG") for png in images.values())
        assert images["axial"] != images["sagittal"]
        assert sorted(store.review_images(seq)) == ["axial", "coronal", "sagittal"]
        assert not renderer.pending(seq)
    finally:
        release.set()
        renderer.stop()
