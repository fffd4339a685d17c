"""The time a run has: `--max-time` bounds the whole command, and a resumed run says what it adds.

A new run given `--max-time T` ends within T of the process's start: training stops early
enough for what follows the last step (the final checks, the last save, the exit), whose cost
is measured during the run (each check and save is timed) and estimated before. Start-up
(imports, reading, the plan's probe) is counted too, from the process's start.

With `--resume`, `--max-time T` means T more, for this command, on top of what the run used;
the learning rate's cosine then stretches over the whole run. Without it a run continues to the
end of its recorded budget (a run interrupted at 30 s of 90 s trains 60 s more), and one that
has nothing left, in steps or time, is refused with a message saying why.

The functions take the `charnext.training.trainer.Trainer` whose run it is (not imported here:
the trainer imports this module) and its current `charnext.training.state.Session`.
"""

from __future__ import annotations

import time

from charnext.config import format_budget, format_duration
from charnext.errors import ConfigError
from charnext.text.paths import shown_path
from charnext.training import validation as checks
from charnext.training.outlook import OVERFIT_RISE

# Reading the validation curve (read_curve): checks in a row above the best, how far above (in
# standard errors of the sample), before which share of the run, and the annealing left.
CUT_CHECKS = 2
CUT_NOISE = 2.0
CUT_BEFORE = 0.6
CUT_ANNEAL = 0.15


def recorded_end(trainer) -> float:
    """The run's seconds at which a time-budgeted run ends, as recorded (an older checkpoint
    records none: its --max-time, which then meant the whole run)."""
    if trainer.record.budget is not None:
        return trainer.record.budget
    return trainer.schedule.max_time or 0.0


def refuse_nothing_left(trainer) -> None:
    """A resumed run that would train no step (its steps made, its time used) is refused."""
    where = shown_path(trainer.resumed_from) if trainer.resumed_from is not None else "the run"
    total, used = trainer.schedule.total, trainer.record.elapsed
    if total is not None and trainer.step >= total:
        raise ConfigError(f"{where} has made its {total:,} steps; give --steps above {total:,} to train more")
    if total is None and trainer.more_time is None and recorded_end(trainer) - used <= 0:
        raise ConfigError(
            f"{where} used its whole time budget ({format_duration(used)} of "
            f"{format_duration(recorded_end(trainer))}); give --max-time T to train T more"
        )


def budget_line(trainer) -> str | None:
    """For a resumed run: what it used and what this session adds ('used 1m28s of training; 5m
    more, this command included'); None for a new run."""
    if trainer.resumed_from is None:
        return None
    used, total = trainer.record.elapsed, trainer.schedule.total
    if total is not None:
        return f"resumed at step {trainer.step:,} of {total:,}: {total - trainer.step:,} steps more"
    if trainer.more_time is not None:
        more = format_budget(trainer.more_time)
        return f"used {format_duration(used)} of training; {more} more, this command included"
    end = recorded_end(trainer)
    rest = format_duration(end - used)
    return f"used {format_duration(used)} of {format_duration(end)} of training; the rest, {rest}, follows"


def begin(trainer, session) -> None:
    """Under a time budget, when this session's training stops. A new run, or a resumed one
    given --max-time, bounds the whole command; a resumed one without it trains the rest of its
    recorded budget. Refuses a budget that start-up and the final work leave nothing of."""
    if trainer.schedule.total is not None:
        return
    if trainer.resumed_from is not None and trainer.more_time is None:
        trainer.record.budget = recorded_end(trainer)
        return
    given = trainer.more_time if trainer.more_time is not None else trainer.schedule.max_time
    session.deadline = trainer.born + given
    trainer.record.cut_short = None  # more time: the curve is read afresh
    set_end(trainer, session)
    if trainer.record.budget <= trainer.record.seconds():
        raise ConfigError(
            f"--max-time {format_budget(given)} leaves no time to train: start-up took "
            f"{format_duration(time.perf_counter() - trainer.born)} and the final validation and "
            f"save need about {format_duration(reserve(trainer, session))}"
        )


def set_end(trainer, session) -> None:
    """Estimate again the run's seconds at which training stops (command-bounded sessions), no
    later than where the validation curve cut the run short (read_curve)."""
    rec = trainer.record
    if session.deadline is not None:
        rec.budget = rec.seconds() + session.deadline - time.perf_counter() - reserve(trainer, session)
    if rec.cut_short is not None and rec.budget is not None:
        rec.budget = min(rec.budget, rec.cut_short)


def read_curve(trainer) -> None:
    """Under a time budget, end the run early where its validation curve says that the rest
    would overfit: the last CUT_CHECKS checks all above the best, the last by more than its
    noise (CUT_NOISE standard errors, at least OVERFIT_RISE), before CUT_BEFORE of the run. The
    learning rate then anneals over the next CUT_ANNEAL of the run (the cosine's end, where a
    run gains most) and the run stops there; a small text met by a long budget (names in 10
    minutes, 135 passes) otherwise spent four fifths of it overfitting at a high rate."""
    rec, schedule = trainer.record, trainer.schedule
    losses = rec.history["val_loss"]
    if schedule.total is not None or rec.cut_short is not None or rec.budget is None:
        return
    if len(losses) <= CUT_CHECKS or rec.best_val_loss is None or rec.evals_since_best < CUT_CHECKS:
        return
    seconds = rec.seconds()
    noise = max(OVERFIT_RISE, CUT_NOISE * (rec.val_sample_stderr or 0.0))
    if seconds < CUT_BEFORE * rec.budget and losses[-1] - rec.best_val_loss > noise:
        rec.cut_short = seconds + CUT_ANNEAL * rec.budget
        rec.budget = min(rec.budget, rec.cut_short)


def reserve(trainer, session) -> float:
    """Seconds expected after the last step: the final checks (the sample, all of the held-out
    part, and the best weights where they differ), the last save and the exit."""
    seconds = checks.EXIT_SECONDS
    if trainer.out is not None:
        seconds += session.save_seconds or checks.expected_save_seconds(trainer.model.num_parameters())
    if trainer.corpus.has_validation():
        rate = session.check_rate or _expected_check_rate(trainer)
        sample = trainer.record.val_sample_chars or checks.MIN_SAMPLE_CHARS
        seconds += (sample + 2 * trainer.val_chars) / max(rate, 1.0)
    return seconds


def _expected_check_rate(trainer) -> float:
    """Characters a check scores per second before one is timed: from the plan's measured speed
    (or a modest guess) and the cost of a forward pass."""
    speed = (trainer.plan.chars_per_sec if trainer.plan is not None else None) or 20_000.0
    return speed / checks.FORWARD_COST
