"""How many CPUs are idle, from /proc/stat (Linux). No torch here, so that a sample can be
started before torch is imported and read after: the import (seconds) is the sample's window,
instead of a pause of its own."""

from __future__ import annotations

import os
import time

# The shortest window a sample reads: long enough for /proc/stat's 100 Hz ticks to say which
# cores are busy, short enough not to be noticed at start-up.
IDLE_SAMPLE_SECONDS = 0.1


def _ticks() -> dict[int, tuple[int, int]]:
    """Per CPU: (idle + iowait ticks, all ticks) since boot."""
    out = {}
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *values = line.split()
                v = [int(x) for x in values]
                out[int(name[3:])] = (v[3] + (v[4] if len(v) > 4 else 0), sum(v))
    return out


class IdleSample:
    """Idle CPUs over a window that opens when the sample is made and closes when it is read.

    What this process itself used meanwhile (importing torch, say) counts as idle: the question
    is how many CPUs other processes leave to this one."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        try:
            self.allowed: set[int] | None = os.sched_getaffinity(0)
            self.before = _ticks()
        except (AttributeError, OSError, ValueError, IndexError):
            self.allowed = None  # not Linux, or /proc unreadable

    def idle(self, at_least: float = IDLE_SAMPLE_SECONDS) -> float | None:
        """Idle CPUs among those this process may run on, over the window so far (waiting until
        it is `at_least` seconds long); None where it cannot be known."""
        if self.allowed is None:
            return None
        wait = at_least - (time.perf_counter() - self.start)
        if wait > 0:
            time.sleep(wait)
        try:
            after = _ticks()
        except (OSError, ValueError, IndexError):
            return None
        window = time.perf_counter() - self.start
        own = (time.process_time() - self.cpu_start) / window if window > 0 else 0.0
        idle = 0.0
        for cpu in self.allowed:
            if cpu in self.before and cpu in after:
                total = after[cpu][1] - self.before[cpu][1]
                idle += (after[cpu][0] - self.before[cpu][0]) / total if total > 0 else 1.0
        return min(float(len(self.allowed)), idle + own)
