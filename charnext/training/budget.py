"""What `--max-time` bounds: the whole command, from its process's start to its end.

A budget is two instants. Its `deadline` is when the command must be done: the process's start
plus `--max-time` on the command line (the call's start, from Python), or, for a run resumed
with no `--max-time`, what the run had left. Its `clock_end` is the run's clock
(charnext.training.state.RunState.seconds) at which training stops at the latest: the schedule
fits its learning rate and its validations to it. Before the first step the time still to come
after training (the last validation, the save, the summary, the interpreter leaving) is a
guess, FINISH_GUESS; during the run the loop measures it (`Trainer._finish_reserve`) and ends
training earlier where it costs more, so the command ends on time however long it took to start
(importing torch, reading the text, planning) and however long its end takes.

With `--resume`, `--max-time T` means T more: T from this command's start.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from charnext.errors import ConfigError

EXIT_SECONDS = 0.3  # after the last save: the summary, and Python and torch leaving
FINISH_GUESS = 0.5  # all that follows training, before any of it is measured
NOTHING_LEFT = 0.5  # a resumed run with less than this left on its budget has nothing left

_IMPORTED = time.perf_counter()


def process_age() -> float:
    """Seconds since this process started: read from /proc on Linux (the interpreter's start,
    its imports included), elsewhere since this module was imported."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter() - _IMPORTED


def process_start() -> float:
    """The perf_counter instant this process started (see `process_age`)."""
    return time.perf_counter() - process_age()


@dataclass(frozen=True)
class Budget:
    """A run's time budget for this command: when it must be done (`deadline`, perf_counter),
    and the run clock at which training stops at the latest (`clock_end`)."""

    seconds: float  # what this command was given (--max-time, or what the run had left)
    deadline: float
    clock_end: float
    more: bool = False  # a resumed run given --max-time: that much more

    @classmethod
    def of(cls, seconds: float, since: float | None, run_elapsed: float = 0.0, more: bool = False) -> Budget:
        """`seconds` from `since` (a perf_counter instant; None: now), for a run whose clock
        stands at `run_elapsed`."""
        now = time.perf_counter()
        deadline = (now if since is None else since) + seconds
        return cls(seconds, deadline, run_elapsed + max(0.0, deadline - now - FINISH_GUESS), more)

    @classmethod
    def left_over(cls, clock_end: float, run_elapsed: float, where: str) -> Budget:
        """What a resumed run given no --max-time has left of its own budget: training up to
        `clock_end` on its clock, the command's end after it; refused if nothing is left."""
        left = clock_end - run_elapsed
        if left < NOTHING_LEFT:
            raise ConfigError(
                f"{where} has used its time budget ({run_elapsed:.0f}s trained): nothing is left to "
                "train; give --max-time T to train for T more"
            )
        return cls(left, time.perf_counter() + left + FINISH_GUESS, clock_end)

    def left(self) -> float:
        """Seconds until the command must be done (negative once past)."""
        return self.deadline - time.perf_counter()

    def describe(self) -> str:
        """'90s', '30s more' (the header's words for a resumed run)."""
        return f"{_seconds(self.seconds)} more" if self.more else f"{_seconds(self.seconds)} left"


def _seconds(s: float) -> str:
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.1f} min"
