"""How many threads igrt's parallel work takes: from the cores this process may run on."""

from __future__ import annotations

import os


def run_threads() -> int | None:
    """ITK threads of one optimisation: half the cores this process may use, at least one;
    None (ITK's own default) when ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` sets it. A
    registration runs two jobs side by side from its first level (the result beside the CBCT's
    masks near edges, :mod:`igrt.registration.cbct_side`, then beside the robustness
    restart; a cross-check is a third; the native level's planning part smoothed ahead, a
    tenth of a second, is one more beside the middle level), so on half the cores each keeps
    them busy without the two contending; on two cores ITK's threads cost more in hand-offs at
    every metric evaluation than they share out (``igrt register``, 6 full-size cases, 3
    interleaved rounds: median 1.50 -> 1.40 s, CPU time 2.33 -> 2.22 s, the same answers)."""
    if os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
        return None
    return max(1, usable_cores() // 2)


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container's or a unit's share)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
