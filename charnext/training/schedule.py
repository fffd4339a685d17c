"""The schedule of a run: how long it lasts, its learning rate, and when it validates and reports.

A run is planned either in steps (`--steps`, `--epochs`, or sized to the text) or in time
(`--max-time`); `Schedule` hides which, so the loop asks it and never branches on the kind.
The constants below are the defaults a planner may replace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from charnext.config import TrainConfig

# Steps when none are asked for: about DEFAULT_PASSES passes over the text, within bounds that
# keep a tiny text from finishing before it is learned and a big one from running for hours.
DEFAULT_PASSES = 10
MIN_DEFAULT_STEPS = 60
MAX_DEFAULT_STEPS = 3000
# Checks of the held-out part per run when --eval-every is not given, the last one at the end:
# enough for the best checkpoint, the outlook and the charts to follow the whole run (the first
# comes a tenth of the way in), cheap because each scores a fixed sample sized for it
# (charnext.training.validation).
EVALS_PER_RUN = 10
# Under a time budget a check waits, beyond its tenth of the budget, until the time since the
# last one began is 1/MAX_EVAL_SHARE times what that one took (scoring, preview and save): a
# machine where even the smallest sample is slow does not spend its budget checking. The sample
# is sized so that scoring it takes at most 3% of a tenth (validation.CHECKS_SHARE); in a 60 s
# run on tinyshakespeare here a whole check, preview and save included, took about 0.2 s of 5.6.
MAX_EVAL_SHARE = 0.1
# Rows of the lecture's table (RowEvents) per run, first and last step included.
ROWS_PER_RUN = 12
# A run under a time budget whose validation turns up (charnext.training.checks.Checks.turned)
# goes back to its best state and anneals: the learning rate falls from the one it had there to
# zero, on the second half of a cosine, over ANNEAL_SHARE of the budget or ANNEAL_PASSES passes
# over the training text, whichever is shorter (at most what is left), and the run ends. A 90 s
# run on names gains its last 0.03 over its last 7-8 passes; a tenth of ten minutes was 27 passes
# on a fast machine and 100 over the stdlib's function names, and those anneals learnt the text by
# heart again. Annealing from where the run turned, not from its best, went on rising (names:
# 1.971 at the turn, 1.994 at the end). Figures: docs/planning.md.
ANNEAL_SHARE = 0.1
ANNEAL_PASSES = 8.0


def default_steps(train_chars: int, chars_per_step: float) -> int:
    """Steps when none are asked for: about DEFAULT_PASSES passes over the text, within bounds."""
    steps = math.ceil(DEFAULT_PASSES * train_chars / chars_per_step)
    return int(min(MAX_DEFAULT_STEPS, max(MIN_DEFAULT_STEPS, steps)))


def lr_at(config: TrainConfig, step: int, fraction: float) -> float:
    """The learning rate of step `step` (0-based), `fraction` of the way through the run.

    1. Warm-up: linear from near 0 over `warmup_steps`, so that Adam's first, poorly estimated
       updates are small.
    2. Past the end (fraction >= 1, e.g. a resumed run given more steps): the floor.
    3. Otherwise cosine decay from the peak to `min_lr_ratio` of it, as in nanoGPT's get_lr.
    """
    peak = config.lr
    if step < config.warmup_steps:
        return peak * (step + 1) / (config.warmup_steps + 1)
    f = min(max(fraction, 0.0), 1.0)
    floor = peak * config.min_lr_ratio
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * f))


@dataclass(frozen=True)
class Schedule:
    """When a run ends, its learning rate, and when it validates and adds a table row: a
    policy the loop asks and never changes (what it needs of the run so far, such as when the
    latest validation was, it is handed: charnext.training.state.RunState).

    Exactly one of `total` (steps) and `max_time` (seconds) decides when the run ends.
    """

    config: TrainConfig
    total: int | None  # planned optimizer steps; None when the time budget decides
    max_time: float | None  # wall-clock budget in seconds (with total None)
    eval_every: int  # steps between validations (step plans)
    row_marks: frozenset[int]  # steps that add a table row (step plans)

    @classmethod
    def for_run(
        cls,
        config: TrainConfig,
        steps_per_epoch: int,
        train_chars: int,
        chars_per_step: float,
        clock_end: float | None = None,
    ) -> Schedule:
        """The schedule `config` asks for: steps, epochs, a time budget, or sized to the text.
        Under a time budget training ends when the run's clock reaches `clock_end` (given by
        charnext.training.budget: --max-time less what comes before and after training), else
        `config.max_time`."""  # fmt: skip
        if config.steps is not None:
            total = config.steps
        elif config.epochs is not None:
            total = max(1, math.ceil(config.epochs * steps_per_epoch))
        elif config.max_time is not None:
            total = None
        else:
            total = default_steps(train_chars, chars_per_step)
        eval_every = config.eval_every or max(1, (total or 1000) // EVALS_PER_RUN)
        marks: frozenset[int] = frozenset()
        if total is not None:
            middle = {max(1, round(total * i / (ROWS_PER_RUN - 1))) for i in range(1, ROWS_PER_RUN - 1)}
            marks = frozenset({1, total} | middle)
        end = clock_end if clock_end is not None else config.max_time
        return cls(config, total, None if total is not None else end, eval_every, marks)

    def to_dict(self) -> dict:
        """Plain values, for the checkpoint's provenance."""
        return {
            "total_steps": self.total,
            "max_time": self.max_time,
            "eval_every": self.eval_every if self.total is not None else None,
            "lr": self.config.lr,
            "warmup_steps": self.config.warmup_steps,
            "min_lr_ratio": self.config.min_lr_ratio,
            "decay": "cosine",
        }

    def fraction(self, step: int, elapsed: float, turn: dict | None = None) -> float:
        """Share of the run done after `step` steps and `elapsed` seconds, 0..1 (after a `turn`,
        of the run as it now ends)."""
        if self.total is not None:
            return min(1.0, step / self.total) if self.total else 1.0
        return min(1.0, elapsed / self._end(turn))

    def lr(self, step: int, elapsed: float, turn: dict | None = None) -> float:
        """The learning rate of the next step: after a `turn`, falling from the turn's to zero."""
        if self.total is not None:
            return lr_at(self.config, step, step / self.total)
        if turn is not None:
            left = (turn["until"] - elapsed) / max(turn["until"] - turn["at"], 1e-9)
            return turn["lr"] * 0.5 * (1 - math.cos(math.pi * min(max(left, 0.0), 1.0)))
        return lr_at(self.config, step, elapsed / self.max_time)

    def done(self, step: int, elapsed: float, turn: dict | None = None) -> bool:
        """Whether the plan is complete (the step count or the time budget reached, or the
        anneal after a `turn` done)."""
        if self.total is not None:
            return step >= self.total
        return elapsed >= self._end(turn)

    def _end(self, turn: dict | None) -> float:
        """Where a time-budgeted run ends: its budget, or sooner where a `turn` anneals."""
        return min(self.max_time, turn["until"]) if turn is not None else self.max_time

    def reason(self, turn: dict | None = None) -> str:
        """What ended a completed plan: "steps", "max-time" or, after a `turn`, "annealed"."""
        if self.total is not None:
            return "steps"
        return "annealed" if turn is not None and turn["until"] <= self.max_time else "max-time"

    def turn(
        self,
        step: int,
        elapsed: float,
        lr: float,
        val_loss: float,
        best: float,
        pass_seconds: float = math.inf,
    ) -> dict | None:
        """The record of a turn of the validation at `step` (`val_loss` against the `best`),
        with the learning rate `lr` it anneals from, over ANNEAL_SHARE of the budget or
        ANNEAL_PASSES passes of `pass_seconds` each, whichever is shorter: under a time budget
        only (a run of so many steps makes them all); None otherwise, or where no time is left."""
        if self.total is not None:
            return None
        until = min(self.max_time, elapsed + min(ANNEAL_SHARE * self.max_time, ANNEAL_PASSES * pass_seconds))
        if until <= elapsed:
            return None
        return dict(step=step, at=elapsed, until=until, lr=lr, val_loss=val_loss, best_val_loss=best)

    def eval_due(self, step: int, since_eval: float, eval_seconds: float = 0.0) -> bool:
        """Whether to check after `step`: every `eval_every` steps under a step budget or with
        --eval-every (by steps alone, so such a run checks at the same steps on any machine);
        under a time budget once a tenth of it has passed since the latest check began
        (`since_eval` seconds), or later where that one took more than MAX_EVAL_SHARE of the
        time since (`eval_seconds`)."""
        if self.total is not None or self.config.eval_every:
            return step % self.eval_every == 0
        return since_eval >= max(self.max_time / EVALS_PER_RUN, eval_seconds / MAX_EVAL_SHARE)

    def checks(self, steps: float) -> int:
        """Checks a run of `steps` steps (planned, or expected under a time budget) makes."""
        if self.total is None and not self.config.eval_every:
            return EVALS_PER_RUN
        return max(1, int(steps // self.eval_every))

    def row_due(self, step: int, elapsed: float, last_fraction: float, turn: dict | None = None) -> bool:
        """Whether to add a row to the lecture's table after `step`; `last_fraction` is the share
        of the run done at the last row (a time plan adds one each 1/(ROWS_PER_RUN-1) of it)."""
        if self.total is not None:
            return step in self.row_marks
        if step == 1 or self.done(step, elapsed, turn):
            return True
        rows = ROWS_PER_RUN - 1
        return math.floor(self.fraction(step, elapsed, turn) * rows) > math.floor(last_fraction * rows)
