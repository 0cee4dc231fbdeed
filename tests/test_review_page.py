"""The review page of a real ``igrt serve`` in a real headless Chromium: a phantom correction's
page shows the patient, the numbers and the fused images (which decode and differ before vs
after the correction); Approve with a valid PIN publishes a ``decision`` on the SUB socket, a
wrong PIN is refused and publishes nothing; a superseded correction says so and offers no
approval."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from browser import chromium, element_after_submit
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from service_process import ServiceProcess, messages_within, wait_for_correction

from igrt.core.geometry import CouchCorrection
from phantoms.generator import PlanningCase, write_cbct, write_planning_set
from services.operators import operator_line
from services.scu import send_directory

PIN = "4711-safe"
WAIT_S = 60.0


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("review-page")


@pytest.fixture(scope="module")
def service(work: Path) -> Iterator[ServiceProcess]:
    operators = work / "operators.toml"
    operators.write_text(operator_line("J. Smith", PIN))
    svc = ServiceProcess(work, extra={"ui": {"operators_file": str(operators)}}).start()
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def planned(service: ServiceProcess, work: Path) -> PlanningCase:
    plan = write_planning_set(work / "planning", patient_id="REVIEW-1", size="small")
    assert set(send_directory(plan.directory, calling_ae="TPS", **service.dicom())) == {0}
    return plan


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def correction_for(service: ServiceProcess, planned: PlanningCase, directory: Path,
                   known: CouchCorrection, sub: zmq.Socket[Any]) -> dict[str, Any]:
    cbct = write_cbct(directory, planned, known)
    assert set(send_directory(cbct.directory, calling_ae="LINAC", **service.dicom())) == {0}
    message, _ = wait_for_correction(sub, cbct.series_uid)
    return message


def wait_for_images(url: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        state: dict[str, Any] = json.loads(urllib.request.urlopen(f"{url}/state.json").read())
        if state["images"] > 0 and not state["rendering"]:
            return state
        time.sleep(0.2)  # polling the page's own state endpoint, bounded by WAIT_S
    raise TimeoutError(f"no review images at {url}")


def png(url: str) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(io.BytesIO(urllib.request.urlopen(url).read())).convert("RGB"))


def test_page_shows_the_correction_and_approval_needs_the_pin(
        service: ServiceProcess, planned: PlanningCase, work: Path, browser: WebDriver) -> None:
    sub = service.subscriber()
    known = CouchCorrection(3.0, -4.0, 2.0, 1.0, -0.5, 1.0)
    message = correction_for(service, planned, work / "cbct-1", known, sub)
    assert message["status"] == "ok", message["reasons"]
    url = message["review_url"]
    assert url == f"{service.review}/review/{message['seq']}"
    wait_for_images(url)

    browser.get(url)
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "REVIEW-1" in text and "PHANTOM, BODY" in text
    assert browser.find_element(By.ID, "acquired").text == message["cbct"]["acquisition_datetime"]
    six = browser.find_element(By.ID, "six").text
    assert f"{message['correction']['lateral_mm']:+.2f}" in six
    images = browser.find_elements(By.CSS_SELECTOR, "#images img")
    assert len(images) == 6  # three planes, before and after
    assert all(browser.execute_script("return arguments[0].naturalWidth", i) > 100
               for i in images)
    shot = Image.open(io.BytesIO(browser.get_screenshot_as_png()))
    assert np.asarray(shot).std() > 10  # not a blank page
    shot.save(work / "review-page.png")
    before = png(f"{url}/axial_before_blend_soft.png")
    after = png(f"{url}/axial_after_blend_soft.png")
    assert before.shape == after.shape and not np.array_equal(before, after)

    # a wrong PIN: refused, nothing published
    browser.find_element(By.ID, "approve-operator").send_keys("J. Smith")
    browser.find_element(By.ID, "approve-pin").send_keys("0000")
    browser.find_element(By.ID, "approve").click()
    assert "not recognised" in element_after_submit(browser, "error").text
    assert messages_within(sub, 2.0, "decision") == []
    assert service.request({"cmd": "decision", "seq": message["seq"]})["message"] is None

    # the right PIN: the decision is published
    browser.find_element(By.ID, "approve-operator").send_keys("J. Smith")
    browser.find_element(By.ID, "approve-pin").send_keys(PIN)
    browser.find_element(By.ID, "approve").click()
    published = next(iter(messages_within(sub, 5.0, "decision")), None)
    assert published is not None, "no decision on the SUB socket"
    assert (published["seq"], published["decision"], published["operator"]) == (
        message["seq"], "approved", "J. Smith")
    assert published["correction"] == message["correction"]
    assert "Approved by J. Smith" in element_after_submit(browser, "decided").text
    assert browser.find_elements(By.ID, "approve-form") == []
    sub.close()


def test_a_superseded_page_says_so_and_refuses_approval(
        service: ServiceProcess, planned: PlanningCase, work: Path, browser: WebDriver) -> None:
    sub = service.subscriber()
    first = correction_for(service, planned, work / "cbct-2", CouchCorrection(1, 1, 1, 0, 0, 0),
                           sub)
    browser.get(first["review_url"])
    assert browser.find_elements(By.ID, "approve-form")  # decidable, for now
    second = correction_for(service, planned, work / "cbct-3",
                            CouchCorrection(-2, 1, 0, 0, 0, 0), sub)
    assert second["seq"] > first["seq"]
    deadline = time.monotonic() + 10
    while not browser.find_elements(By.ID, "superseded"):  # the page reloads itself
        assert time.monotonic() < deadline, "the page did not notice it was superseded"
        time.sleep(0.2)
    banner = browser.find_element(By.ID, "superseded").text
    assert f"correction {second['seq']}" in banner and "same patient" in banner
    assert browser.find_elements(By.ID, "approve-form") == []
    reply = service.request({"cmd": "approve", "seq": first["seq"], "operator": "J. Smith"})
    assert reply["ok"] is False and "superseded" in reply["error"]
    sub.close()
