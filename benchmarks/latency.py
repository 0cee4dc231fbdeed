"""Service latency benchmark: the real ``igrt serve`` (default ``settle_s`` = 1 s), a phantom
planning set sent first (and prepared by the service before any CBCT), then CBCTs at known
corrections sent with a pynetdicom SCU. Per CBCT: the time from the association's release to
the correction message on the SUB socket, that time beyond ``settle_s``, and when the review
images were ready after the message (they are rendered after it is published, so they must not
delay it). Then:

* the first CBCT after a restart of the service (planning sets rebuilt and engines warmed before
  READY), against the warm median;
* with ``--cross-check``: the same with ``cross_check = "elastix"``, and what it adds.

    .venv/bin/python benchmarks/latency.py [--size full|small] [--cases 5] [--cross-check]

Targets (full size, this 2-core machine): beyond settle_s median <= 1.0 s; first CBCT after a
start <= 1.2x a warm one; the cross-check adds <= 3 s; the images cost the correction message
<= 0.2 s (issue 11; they are rendered after it is published, so the message's own latency
beyond settle_s bounds their cost); and igrt's own goal, the images on the review page <= 0.2 s
after the message. Printed, not enforced (shared machine).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from load_run import SHIFTS  # noqa: E402
from service_process import ServiceProcess, wait_for_correction  # noqa: E402
from workdir import work_directory  # noqa: E402

from igrt.core.geometry import CouchCorrection  # noqa: E402
from phantoms.generator import PlanningCase, write_cbct, write_planning_set  # noqa: E402
from services.scu import send_directory  # noqa: E402

SETTLE_S = 1.0
#: The load test's couch corrections, and a large one.
CORRECTIONS = (*SHIFTS, CouchCorrection(12.0, 9.0, 5.0, 2.5, -2.0, 2.0))
TARGET_BEYOND_S = 1.0
TARGET_FIRST = 1.2
TARGET_CROSS_CHECK_S = 3.0
TARGET_IMAGES_AFTER_S = 0.2


def wait_idle(service: ServiceProcess, timeout_s: float = 600.0) -> float:
    """Wait until the service has nothing waiting (a planning set sent is prepared)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if service.request({"cmd": "status"})["state"] == "idle":
            return time.monotonic() - t0
        time.sleep(0.05)
    raise TimeoutError("the service did not become idle")


def one_cbct(service: ServiceProcess, plan: PlanningCase, work: Path, n: int) -> dict[str, Any]:
    known = CORRECTIONS[n % len(CORRECTIONS)]
    cbct = write_cbct(work / f"cbct-{n}", plan, known, seed=40 + n)
    sub = service.subscriber()
    dicom = {"host": "127.0.0.1", "port": service.dicom_port, "called_ae": "IGRT"}
    try:
        t0 = time.monotonic()
        send_directory(cbct.directory, calling_ae="LINAC", **dicom)
        released = time.monotonic()
        message, _ = wait_for_correction(sub, cbct.series_uid, timeout_s=300)
        received = time.monotonic()
        latency = received - released
    finally:
        sub.close()
    images_after = _images_ready(message.get("review_url"), timeout_s=60) - received
    registration = message["registration"]
    parts = (registration.get("cbct_s"), registration.get("planning_s"),
             registration.get("prepare_s"), registration["primary"]["elapsed_s"],
             registration.get("perturbation", {}).get("elapsed_s"))
    return {"send_s": released - t0, "latency_s": latency, "beyond_s": latency - SETTLE_S,
            "registration_s": float(registration["elapsed_s"]), "status": message["status"],
            "images_after_s": images_after,
            "cached": registration.get("planning_prepared_before"),
            "decoded": registration.get("cbct_decoded_on_arrival"),
            "parts": "/".join("-" if v is None else f"{float(v):.2f}" for v in parts)}


def show(label: str, row: dict[str, Any]) -> None:
    print(f"{label:>8} {row['send_s']:7.2f} {row['latency_s']:9.2f} {row['beyond_s']:9.2f} "
          f"{row['registration_s']:14.2f} {row['images_after_s']:6.2f} {row['status']:>6} "
          f"{str(row['cached']):>8} {str(row['decoded']):>7}  {row['parts']}", flush=True)


def _images_ready(review_url: str | None, *, timeout_s: float) -> float:
    """When (monotonic) the review page of a correction had its images (polled every 20 ms)."""
    if not review_url:
        return float("nan")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{review_url}/state.json") as reply:
            state = json.loads(reply.read())
        if state["images"] > 0 and not state["rendering"]:
            return time.monotonic()
        time.sleep(0.02)
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="full", choices=["small", "full"])
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--cross-check", action="store_true")
    args = parser.parse_args()
    work = work_directory(None, "igrt-latency-")
    plan = write_planning_set(work / "planning", patient_id="LATENCY-1", size=args.size)
    print(f"# igrt serve latency: size={args.size} settle_s={SETTLE_S}")
    print(f"{'case':>8} {'send_s':>7} {'latency_s':>9} {'beyond_s':>9} {'registration_s':>14} "
          f"{'images':>6} {'status':>6} {'prepared':>8} {'decoded':>7}  "
          "cbct/planning/prepare/primary/restart s")
    (work / "service").mkdir()
    service = ServiceProcess(work / "service", settle_s=SETTLE_S).start()
    n = 0
    try:
        send_directory(plan.directory, calling_ae="TPS", host="127.0.0.1",
                       port=service.dicom_port, called_ae="IGRT")
        print(f"planning set prepared {wait_idle(service):.2f} s after it was sent")
        warm: list[float] = []
        registrations: list[float] = []
        totals: list[float] = []
        images: list[float] = []
        for _ in range(args.cases):
            row = one_cbct(service, plan, work, n)
            show(str(n), row)
            warm.append(row["beyond_s"])
            images.append(row["images_after_s"])
            registrations.append(row["registration_s"])
            totals.append(row["send_s"] + row["latency_s"])
            n += 1
        service.stop()
        t0 = time.monotonic()
        service.start()
        print(f"restarted: ready {time.monotonic() - t0:.2f} s after the start")
        first = one_cbct(service, plan, work, n)
        show("first", first)
        n += 1
        cross: list[float] = []
        if args.cross_check:
            service.close()
            service = ServiceProcess(work / "service", settle_s=SETTLE_S,
                                     extra={"registration": {"cross_check": "elastix"}})
            t0 = time.monotonic()
            service.start()
            print(f"cross_check = elastix: ready {time.monotonic() - t0:.2f} s after the start")
            for _ in range(max(2, args.cases // 2)):
                row = one_cbct(service, plan, work, n)
                show(f"cc {n}", row)
                cross.append(row["latency_s"])
                n += 1
    finally:
        service.close()
    median = max(0.0, statistics.median(warm))
    print(f"release -> correction beyond settle_s: median {median:.2f} s, max "
          f"{max(0.0, max(warm)):.2f} s (registration itself: median "
          f"{statistics.median(registrations):.2f} s, made while settle_s ran)")
    shown = [v for v in images if not math.isnan(v)]
    images_median = statistics.median(shown) if shown else float("nan")
    print(f"review images ready after the correction message: median {images_median:.2f} s, "
          f"max {max(shown) if shown else float('nan'):.2f} s ({len(shown)}/{len(images)} "
          "rendered)")
    # the stricter reading of "review images included": the message and its images both there
    # (images never rendered count as never there)
    both = [b + (math.inf if math.isnan(i) else i) for b, i in zip(warm, images, strict=True)]
    both_median = statistics.median(both)
    print(f"release -> correction and its review images beyond settle_s: median "
          f"{both_median:.2f} s, max {max(both):.2f} s")
    first_total = first["send_s"] + first["latency_s"]
    ratio = first_total / statistics.median(totals)
    print(f"first CBCT after a start: {first_total:.2f} s from send to correction, {ratio:.2f}x "
          f"the warm median ({statistics.median(totals):.2f} s); beyond settle_s "
          f"{max(0.0, first['beyond_s']):.2f} s")
    if args.size == "full":
        print(f"target (median beyond settle_s <= {TARGET_BEYOND_S} s): "
              f"{'PASS' if median <= TARGET_BEYOND_S else 'FAIL'}")
        print(f"target (first <= {TARGET_FIRST}x warm, send to correction): "
              f"{'PASS' if ratio <= TARGET_FIRST else 'FAIL'}")
        # the images are rendered after the message is published: the message's own time
        # beyond settle_s is an upper bound of what they cost it, not their cost
        print(f"target (images' cost on the correction message <= {TARGET_IMAGES_AFTER_S} s): "
              + (f"PASS (at most {median:.2f} s: the message comes that long beyond settle_s, "
                 "and the images are rendered after it is published)"
                 if median <= TARGET_IMAGES_AFTER_S else
                 f"not shown (the bound this run gives is {median:.2f} s, the message's own time "
                 "beyond settle_s; the images are rendered after it is published)"))
        print(f"target, read strictly (the images too, median beyond settle_s <= "
              f"{TARGET_BEYOND_S} s): {'PASS' if both_median <= TARGET_BEYOND_S else 'FAIL'}")
        print(f"igrt's own goal (images on the review page <= {TARGET_IMAGES_AFTER_S} s after the "
              f"message): {'PASS' if images_median <= TARGET_IMAGES_AFTER_S else 'FAIL'}")
    if cross:
        added = statistics.median(cross) - (median + SETTLE_S)
        print(f"cross_check = elastix adds {added:.2f} s (median latency "
              f"{statistics.median(cross):.2f} s)")
        if args.size == "full":
            print(f"target (cross-check adds <= {TARGET_CROSS_CHECK_S} s): "
                  f"{'PASS' if added <= TARGET_CROSS_CHECK_S else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
