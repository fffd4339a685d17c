"""A run's checks of its held-out part: the fixed sample scored with the live weights (and
their average), the best checkpoint held in memory until it must be written, the final figure.

Every check scores the run's `Sample` (charnext.training.validation), chosen at its first check
and recorded in its state, so the history, the best checkpoint, the outlook and the charts all
read points scored on the same characters, before and after a resume too. The final figure
scores more where the held-out part is larger than the sample (all of it where the run can
afford it, FINAL_SHARE), and says what it scored.

The best state is not written at each check that improves (early in a run, almost every one):
it is held in memory (`hold_run`: weights, optimizer and record, copied to the CPU) and written
to X.best.pt when the run ends in any way (its budget, patience, Ctrl-C, divergence), and before
X.pt is overwritten while X.pt is the only file holding it (the latest checkpoint saved with a
check that improves has the same state). So a run that dies loses nothing it had saved: the best
state is always in X.best.pt or in X.pt, and a run resumed at X.pt whose best is its own step
holds it again.

`Checks` takes the `charnext.training.trainer.Trainer` whose run it is (not imported here: the
trainer imports this module), as charnext.training.run_state does.
"""

from __future__ import annotations

import math
import time

from charnext.events import EvalEvent, Score
from charnext.storage import checkpoint as ckpt
from charnext.training import distributed
from charnext.training.launch import lower
from charnext.training.run_state import best_path, hold_run
from charnext.training.state import Session
from charnext.training.validation import FORWARD_COST, Sample, final_read, sample_read

PREVIEW_CHARS = 80  # characters of the sampled preview after each check
# Checks in a row above the best by more than their standard error that make a turn (the run
# anneals and ends: charnext.training.schedule.ANNEAL_SHARE). One such check came in 7 of 29 runs
# of 90 s on tinyshakespeare, prose and names (Intel Xeon), mostly early, at a high learning rate,
# and the next check was below it again: a bump, not a turn. Two in a row came only in the
# 10-minute runs on names, all four of them, at 60-80% of the budget (docs/planning.md). Each of
# them also scores no lower than the one before it by more than its standard error: a curve that
# comes back down is recovering, not learning its text by heart. On prose at 90 s one check read
# 2.45 after a best of 1.60 and the next 1.76 (the training loss falling all along); taken for a
# turn, it made the run anneal and end 17 s early at 1.54, where its twins reached 1.47-1.49.
# Replayed over 99 recorded runs' checks, the rule fires where it did in all 17 that turned.
TURN_CHECKS = 2


def turned_up(losses: list[float], ses: list[float | None], best: float | None) -> bool:
    """The turn's rule (Checks.turned) on a run's checks so far, their losses and standard errors
    (`benchmarks/replay_turn.py` replays it over recorded runs), against the best loss so far."""
    losses, ses = losses[-TURN_CHECKS:], ses[-TURN_CHECKS:]
    if len(losses) < TURN_CHECKS or best is None or None in ses:
        return False
    above = all(loss > best + se for loss, se in zip(losses, ses))
    return above and all(b >= a - se for a, b, se in zip(losses, losses[1:], ses[1:]))


class Checks:
    """The checks of one trainer's run, and the best state it holds until written."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.held: dict | None = None  # the best state not yet written (its record, on rank 0)
        self.held_step: int | None = None  # its step (every rank)
        self.last: Score | None = None  # the latest check's score of the live weights
        self.final: Score | None = None  # the figure the run ended with (None: not yet, or stopped)
        self.final_all = False  # whether `final` scored all of the held-out part
        self.rate = 0.0  # characters scored per second by the latest check (0: none yet)
        self.final_chars = 0  # characters the final figure is expected to score beyond the sample

    # -- what the checks score ----------------------------------------------------------------

    def run_chars(self, session: Session) -> float:
        """Characters the run trains on: as planned under a step budget; under a time budget
        at the speed this session trained so far, over the whole budget."""
        t = self.trainer
        if t.schedule.total is not None:
            return t.schedule.total * t.chars_per_step
        steps = t.step - session.start_step
        if not steps or not session.train_time:
            return t.step * t.chars_per_step
        return steps * t.chars_per_step / session.train_time * t.schedule.max_time

    def sample(self, session: Session) -> Sample:
        """The run's sample: recorded, or chosen now (the run's first check) for what the run
        can afford, and recorded."""
        t, rec = self.trainer, self.trainer.record
        sample = Sample.from_dict(rec.val_sample)
        if sample is None:  # every process chooses the same: from their mean speed
            run_chars = distributed.weighted_mean([self.run_chars(session)], 1.0, t.world)[0]
            checks = t.schedule.checks(run_chars / t.chars_per_step)
            sample = t.corpus.sample(sample_read(run_chars, checks))
            rec.val_sample = sample.to_dict()
        return sample

    def check(self, session: Session) -> EvalEvent:
        """Score the sample with the live weights and their average, record the check, hold the
        state where it is the best, and make the preview."""
        t, rec = self.trainer, self.trainer.record
        sample = self.sample(session)
        start = time.perf_counter()
        live = self.last = t.evaluate_validation(sample)
        # a model scoring worse than an untrained one is never saved (raises if not finite)
        t._val_ok = t.guard.check_validation(rec.step, live.loss, t.config.lr)
        for key, value in zip(("val_step", "val_loss", "val_accuracy", "val_se"),
                              (rec.step, live.loss, live.accuracy, live.se)):  # fmt: skip
            rec.history[key].append(value)
        rec.best_val_loss_live = lower(rec.best_val_loss_live, live.loss)
        best_score, weights = live, "live"
        if t.average is not None and t.average.ready():
            with t.average.applied():  # the same characters, the averaged weights
                average = t.evaluate_validation(sample)
            rec.best_val_loss_average = lower(rec.best_val_loss_average, average.loss)
            if average.loss < live.loss:
                best_score, weights = average, "average"
        self.rate = live.characters * (1 + (weights == "average")) / max(time.perf_counter() - start, 1e-9)
        self.final_chars = self._final_sample(self.run_chars(session), sample).chars
        best = t._val_ok and (rec.best_val_loss is None or best_score.loss < rec.best_val_loss)
        if best:
            rec.best_val_loss, rec.best_val_se, rec.best_step = best_score.loss, best_score.se, rec.step
            rec.evals_since_best, rec.best_weights = 0, weights
            self.hold(figures(best_score, sample.whole), weights)
        else:
            rec.evals_since_best += 1
        prompt = t.sample_prompt()
        preview = t._sample(prompt, PREVIEW_CHARS) if t.rank == 0 else ""
        return EvalEvent(rec.step, live.loss, live.bits_per_char, live.accuracy, best, prompt, preview,
                         live.se, live.characters)  # fmt: skip

    def turned(self) -> bool:
        """Whether the validation has turned up: the latest TURN_CHECKS checks' losses of the live
        weights each above their best by more than its standard error, and none below the one
        before it by more than its standard error (a curve coming back down is recovering). Every
        check scores the same characters, so such a rise is the model learning its training text
        by heart, not the luck of the sample."""
        rec = self.trainer.record
        return turned_up(rec.history["val_loss"], rec.history["val_se"], rec.best_val_loss_live)

    def best_state(self) -> dict | None:
        """The best check's state as the best checkpoint holds it: held in memory, or written
        to X.best.pt (None: neither, as in a run that writes no checkpoint, or on a process
        other than the first)."""
        t = self.trainer
        if self.held is not None or t.rank != 0 or t.out is None:
            return self.held
        path = best_path(t.out)
        if not path.exists():
            return None
        raw = ckpt.load_raw(path)
        return raw if raw.get("step") == t.record.best_step else None

    def _final_sample(self, run_chars: float, sample: Sample) -> Sample:
        """What the final figure scores beyond the sample (characters 0: nothing more)."""
        final = self.trainer.corpus.sample(final_read(run_chars))
        return final if final.chars > sample.chars and not sample.whole else Sample(0, 0, 0, 0)

    def latest(self) -> Score | None:
        """The latest check's score of the live weights: this session's, else as the run's
        history recorded it (None: no check yet)."""
        h = self.trainer.record.history
        if self.last is not None or not h["val_step"]:
            return self.last
        sample = Sample.from_dict(self.trainer.record.val_sample)
        chars, windows = (sample.chars, sample.windows) if sample is not None else (0, 0)
        return Score(h["val_loss"][-1], h["val_accuracy"][-1], chars, windows, h["val_se"][-1])

    def figures(self) -> dict:
        """The validation fields of the latest checkpoint's summary: the final figure once made,
        else the latest check's."""
        sample = Sample.from_dict(self.trainer.record.val_sample)
        if self.final is not None:
            return figures(self.final, self.final_all)
        return figures(self.latest(), sample is not None and sample.whole)

    def finish(self) -> Score | None:
        """The run's final figure, after its last check: that check's where the sample is all
        of the held-out part (or as large as the final figure may be), else a larger set of it
        scored now with the live weights. None where no check was made."""
        t, rec = self.trainer, self.trainer.record
        sample, latest = Sample.from_dict(rec.val_sample), self.latest()
        if sample is None or latest is None:
            return None
        final = self._final_sample(rec.step * t.chars_per_step, sample)
        self.final, self.final_all = latest, sample.whole
        if final.chars:
            self.final, self.final_all = t.evaluate_validation(final), final.whole
        return self.final

    # -- the best state -----------------------------------------------------------------------

    def hold(self, val: dict, weights: str) -> None:
        """Keep the run's state as the best checkpoint would hold it now (`weights`: "live" or
        "average"; `val`: its validation figures), to be written later (`write_best`)."""
        t, rec = self.trainer, self.trainer.record
        if t.out is None:
            return
        summary = t._summary(rec.history["loss"][-1], rec.history["accuracy"][-1], val)
        state = distributed.gather_rows(t.carried, t.world) if t.carried is not None else None
        self.held_step = rec.step
        if t.rank != 0:
            return
        if weights == "live":
            self.held = hold_run(t, summary, state)
            return
        with t.average.applied():
            t.weights_held = "average"
            try:
                self.held = hold_run(t, summary, state)
            finally:
                t.weights_held = "live"

    def before_save(self, step: int) -> None:
        """Before the latest checkpoint is written at `step`: write the best one first if the
        latest is the only file that holds it (saved with the check that found it)."""
        if self.held_step is not None and self.held_step == self.trainer._saved_step != step:
            self.write_best()

    def write_best(self) -> None:
        """Write the best state held (if any) to the best checkpoint."""
        t = self.trainer
        if self.held is not None and t.rank == 0 and t.out is not None:
            t._clean_stale_best()
            ckpt.write_record(best_path(t.out), self.held)
        self.held, self.held_step = None, None

    def resumed(self) -> None:
        """A run resumed at its own checkpoint whose best check was its last step: the state
        just restored is the best one, and X.pt may be the only file that has it; hold it."""
        t, rec = self.trainer, self.trainer.record
        if not t.resumed_here():
            return
        sample = Sample.from_dict(rec.val_sample)
        if sample is not None and rec.best_step == rec.step and rec.history["val_step"][-1:] == [rec.step]:
            best = Score(rec.best_val_loss, math.nan, sample.chars, sample.windows, rec.best_val_se)
            self.hold(figures(best, sample.whole), rec.best_weights)

    # -- what they cost -----------------------------------------------------------------------

    def expected_seconds(self, session: Session, read: float | None = None) -> float:
        """Before the run's first check: what scoring its sample (or `read` characters) should
        take, from the speed of training (0: nothing measured yet)."""
        t = self.trainer
        steps = t.step - session.start_step
        if not session.train_time or not steps:
            return 0.0
        rate = steps * t.chars_per_step / session.train_time  # training characters per second
        run_chars = self.run_chars(session)
        if read is None:
            read = sample_read(run_chars, t.schedule.checks(run_chars / t.chars_per_step))
        return read * FORWARD_COST / rate

    def reserve(self, session: Session) -> float:
        """Seconds the checks at the run's end take: a last check as long as the latest one
        (or as expected), the final figure's larger set at the speed the checks scored (or as
        expected), and writing the best checkpoint."""
        t = self.trainer
        last = t.record.eval_seconds or self.expected_seconds(session)
        if self.rate:
            final = self.final_chars / self.rate
        else:  # all of the held-out part, at most, with its warm-up
            read = min(final_read(self.run_chars(session)), 1.1 * t.val_chars)
            final = self.expected_seconds(session, read)
        return last + final + t._save_seconds


def figures(score: Score | None, whole: bool) -> dict:
    """A checkpoint summary's validation fields: the loss, its standard error, the held-out
    characters it scored and whether they were all of them (None, 0: no validation)."""
    if score is None:
        return {"val_loss": None, "val_se": None, "val_scored": 0, "val_all": False}
    return {"val_loss": score.loss, "val_se": score.se, "val_scored": score.characters, "val_all": whole}
