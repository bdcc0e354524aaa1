"""What every benchmark records about the machine it ran on."""

from __future__ import annotations

import os
import platform


def machine() -> dict:
    """Platform, Python, CPUs (all and usable), memory and the load average at call time."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_gb": round(memory / 2**30, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
