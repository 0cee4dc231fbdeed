"""Memory benchmark: peak resident memory of the real ``igrt serve`` holding five patients'
planning sets prepared (default ``planning_cache_mb``), while it registers one CBCT of each;
then restarted on the same state directory (the five are rebuilt from the store before READY)
and one CBCT of each registered again, each of which must find its planning set prepared.

    .venv/bin/python benchmarks/memory.py [--size full|small] [--patients 5]

Peak = VmHWM of the service process (Linux /proc). Target at full size: <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from latency import wait_idle  # noqa: E402
from service_process import ServiceProcess, wait_for_correction  # noqa: E402
from workdir import work_directory  # noqa: E402

from igrt.core.geometry import CouchCorrection, PatientPosition  # noqa: E402
from phantoms.generator import PlanningCase, write_cbct, write_planning_set  # noqa: E402
from services.scu import send_directory  # noqa: E402

TARGET_GB = 1.5
POSITIONS = (PatientPosition.HFS, PatientPosition.FFS, PatientPosition.HFP, PatientPosition.FFP)
KNOWN = CouchCorrection(2.0, -3.0, 1.5, 0.5, -0.5, 1.0)


def memory_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def register_each(service: ServiceProcess, plans: list[PlanningCase], work: Path,
                  tag: str) -> tuple[float, bool]:
    """One CBCT of each patient registered; prints the service's memory after. Its peak (MB),
    and whether every planning set had been prepared before its CBCT came."""
    prepared = []
    dicom = {"host": "127.0.0.1", "port": service.dicom_port, "called_ae": "IGRT"}
    for n, plan in enumerate(plans):
        cbct = write_cbct(work / f"cbct-{tag.replace(' ', '-')}-{n}", plan, KNOWN, seed=60 + n)
        sub = service.subscriber()
        try:
            send_directory(cbct.directory, calling_ae="LINAC", **dicom)
            message, _ = wait_for_correction(sub, cbct.series_uid, timeout_s=300)
        finally:
            sub.close()
        prepared.append(bool(message["registration"].get("planning_prepared_before")))
    assert service.proc is not None
    now, peak = memory_mb(service.proc.pid)
    print(f"one CBCT of each registered ({tag}; planning set prepared before: "
          f"{sum(prepared)}/{len(prepared)}): {now:.0f} MB resident, peak {peak:.0f} MB")
    return peak, all(prepared)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="full", choices=["small", "full"])
    parser.add_argument("--patients", type=int, default=5)
    args = parser.parse_args()
    work = work_directory(None, "igrt-memory-")
    plans = [write_planning_set(work / f"planning-{n}", patient_id=f"MEMORY-{n}",
                                patient_position=POSITIONS[n % len(POSITIONS)], size=args.size)
             for n in range(args.patients)]
    (work / "service").mkdir()
    service = ServiceProcess(work / "service", settle_s=0.5)
    print(f"# igrt serve memory: size={args.size} patients={args.patients}")
    try:
        service.start()
        assert service.proc is not None
        print(f"started: {memory_mb(service.proc.pid)[0]:.0f} MB resident")
        for plan in plans:
            send_directory(plan.directory, calling_ae="TPS", host="127.0.0.1",
                           port=service.dicom_port, called_ae="IGRT")
        print(f"{args.patients} planning sets sent and prepared in {wait_idle(service):.1f} s: "
              f"{memory_mb(service.proc.pid)[0]:.0f} MB resident")
        peak, _ = register_each(service, plans, work, "first")
        service.stop()
        t0 = time.monotonic()
        service.start()
        assert service.proc is not None
        ready_s = time.monotonic() - t0
        now, peak_start = memory_mb(service.proc.pid)
        print(f"restarted, ready in {ready_s:.1f} s with the planning sets rebuilt: {now:.0f} MB "
              f"resident, peak {peak_start:.0f} MB")
        peak_again, prepared_again = register_each(service, plans, work, "after the restart")
    finally:
        service.close()
    worst = max(peak, peak_again) / 1024
    print(f"peak resident memory: {worst:.2f} GB")
    if args.size == "full":
        print(f"target (<= {TARGET_GB} GB): {'PASS' if worst <= TARGET_GB else 'FAIL'}")
    return 0 if prepared_again else 1


if __name__ == "__main__":
    raise SystemExit(main())
