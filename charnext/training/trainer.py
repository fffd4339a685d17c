"""The training loop: it runs steps, validates and saves, and reports through events.

Build a `Trainer` with `charnext.training.runs` (a new run, a resumed one, or one started from another
model's weights); then `for event in trainer.run(): ...` and read `trainer.result`. What the
run trains on is a corpus (`charnext.training.corpus`), when it ends and at which learning rate is its
schedule (`charnext.training.schedule`, a policy the loop asks), what it is at any moment one record
(`charnext.training.state.RunState`), how it checks itself `charnext.training.validation`, and several
processes talk through `charnext.training.distributed`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from charnext.config import SampleConfig, TrainConfig
from charnext.errors import CheckpointError, TrainingDiverged
from charnext.events import EvalEvent, Event, RowEvent, StepEvent
from charnext.inference.sampling import generate
from charnext.inference.scoring import EvalResult
from charnext.inference.steps import read
from charnext.modeling.device import resolve_precision
from charnext.modeling.model import CharModel, ModelConfig, eval_mode
from charnext.storage.checkpoint import first_line
from charnext.storage.metrics import MetricsLog, metrics_path
from charnext.text.paths import shown_path
from charnext.text.vocab import Vocab
from charnext.training import budget, distributed
from charnext.training import validation as checks
from charnext.training.averaging import WeightAverage
from charnext.training.corpus import make_corpus
from charnext.training.divergence import DivergenceGuard
from charnext.training.launch import check_memory, copy_overlap, optimizer_step, stop_on_sigint  # noqa: F401
from charnext.training.optim import make_adamw
from charnext.training.outlook import Outlook, read_outlook
from charnext.training.planner import Plan
from charnext.training.run_state import (
    averaging,
    best_path,  # noqa: F401  (where callers find it)
    provenance,
    restore_run,
    run_result,
    save_weights,
)
from charnext.training.schedule import Schedule
from charnext.training.state import RunState, Session, command_start

PREVIEW_CHARS = 80  # characters of the sampled preview after each validation
PREVIEW_SEED = 1234  # previews draw from the same seed each time, so they show progress only
# Under a time budget the end is estimated again after this many steps of a session (the
# training speed is then measured), and after every validation.
REPLAN_AFTER = 16


class Trainer:
    """Trains a CharModel on a corpus; `run()` yields events, then `result` holds a TrainResult."""

    def __init__(
        self,
        text: str | torch.Tensor,
        vocab: Vocab,
        model_config: ModelConfig,
        config: TrainConfig,
        out: Path | None,
        *,
        text_fingerprint: dict,
        vocab_counts: list[int] | None = None,
        resume: dict | None = None,
        resumed_from: Path | None = None,
        init_weights: dict | None = None,
        origin: dict | None = None,
        plan: Plan | None = None,
        more_time: float | None = None,
    ):
        """`text` is the training text, or the same already encoded with `vocab` (a 1-D integer
        tensor, possibly memory-mapped); `resume` is the checkpoint a resumed run continues, and
        `more_time` the seconds this command may add to it (--max-time given with --resume);
        `origin` the provenance the front end gives (command line, source of the text); `plan`
        what the planner chose (recorded; the configs already hold it)."""
        self.born = command_start()  # perf_counter when this command started: --max-time counts from it
        self.config, self.plan, self.vocab, self.more_time = config, plan, vocab, more_time
        self.out = Path(out) if out is not None else None
        self.text_fingerprint = text_fingerprint
        self.origin = origin or {}
        self.rank, self.world = distributed.rank_world()
        self.device = distributed.process_device(config.device, self.world)
        self.precision = resolve_precision(config.precision, self.device, model_config.cell)
        self._stop_requested = False
        self._build(model_config, init_weights)
        self.corpus = make_corpus(text, vocab, config, self.rank, self.world, vocab_counts)
        self.schedule = Schedule.for_run(
            config, self.corpus.steps_per_epoch(), self.corpus.train_chars, self.chars_per_step
        )
        self.guard = DivergenceGuard(len(vocab))
        # the average of the weights over the run's end, validated beside them (needs held-out text)
        self.average = WeightAverage(self.model) if config.ema and self.corpus.has_validation() else None
        self.record = RunState()  # the run's state: what the loop reads and writes, and saves
        self.carried: torch.Tensor | None = None  # carried recurrent state (stream corpus)
        self.resumed_from = Path(resumed_from) if resumed_from is not None else None
        self._cleaned = False  # whether a stale best checkpoint at `out` was dealt with
        self._saved_step: int | None = None  # the step of the latest checkpoint at `out`
        self._log: MetricsLog | None = None
        self._val_ok = True  # whether the latest validation allows saving (see divergence.py)
        self._resumed_plan: dict | None = None
        self._weights = "live"  # the weights the model holds now: "live" or "average"
        self._best_copy: list[torch.Tensor] | None = None  # the best validation's weights
        self._final: tuple[float | None, float | None] = (None, None)  # all held out: final, best
        self.session: Session | None = None  # the session running (None before and after)
        if resume is not None:
            self._restore(resume)

    def _restore(self, resume: dict) -> None:
        """Continue the run saved in `resume` (a loaded checkpoint); refuse one that has nothing left."""
        try:  # run_state.check_resumable has checked it; this is the last line of defence
            restore_run(self, resume)
        except (RuntimeError, ValueError, TypeError, KeyError) as e:
            where = shown_path(self.resumed_from) if self.resumed_from is not None else "the checkpoint"
            raise CheckpointError(f"{where} is damaged: {first_line(e)}") from None
        if (
            self.out is not None
            and self.resumed_from is not None
            and self.out.resolve() == self.resumed_from.resolve()
        ):
            self._saved_step = self.step
        budget.refuse_nothing_left(self)

    def _build(self, model_config: ModelConfig, init_weights: dict | None) -> None:
        """The model (seeded; from `init_weights` where given), wrapped for several processes,
        and its optimizer."""
        torch.manual_seed(self.config.seed)
        check_memory(model_config)
        self.model = CharModel(model_config)
        if init_weights is not None:
            with torch.no_grad():
                copy_overlap(self.model, init_weights)
        self.model.to(self.device).train()
        self.net = distributed.wrap(self.model, self.device, self.world)
        # torch.optim.AdamW(fused=True)'s arithmetic and state, without torch.optim's import
        # of torch._dynamo (about 2 s): see training/optim.py
        self.optimizer = make_adamw(
            self.model.parameters(), self.config.lr, self.config.weight_decay, self.device
        )

    # -- what the run is --------------------------------------------------------------------

    @property
    def step(self) -> int:
        """Optimizer steps made so far."""
        return self.record.step

    @step.setter
    def step(self, value: int) -> None:
        self.record.step = value

    @property
    def history(self) -> dict[str, list]:
        """Per step (step, loss, accuracy, lr) and per validation (val_step, val_loss, val_accuracy)."""
        return self.record.history

    @property
    def best_val(self) -> float | None:
        """The best validation so far (on the fixed sample)."""
        return self.record.best_val_loss

    def elapsed(self) -> float:
        """Seconds trained so far in this run, earlier sessions included."""
        return self.record.seconds()

    @property
    def batch_size(self) -> int:
        """Windows (lines) per step over all processes, as used."""
        return self.corpus.batch_size

    @property
    def seq_len(self) -> int:
        """Characters per window (the longest line + 1 in line mode), as used."""
        return self.corpus.seq_len

    @property
    def chars_per_step(self) -> int:
        """Training characters (positions) per optimizer step, over all processes."""
        return self.batch_size * self.seq_len

    @property
    def train_chars(self) -> int:
        """Characters in the training part."""
        return self.corpus.train_chars

    @property
    def val_chars(self) -> int:
        """Characters in the validation part."""
        return self.corpus.val_chars

    @property
    def vocab_counts(self) -> list[int]:
        """Occurrences of each vocabulary entry in the text, index order."""
        return self.corpus.vocab_counts

    def budget_line(self) -> str | None:
        """For a resumed run, what it used and what this session adds (see training/budget.py)."""
        return budget.budget_line(self)

    # -- the run ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the run to stop after the step in progress and save a resumable checkpoint."""
        self._stop_requested = True

    def run(self) -> Iterator[Event]:
        """Train; yield events as it goes; set `self.result` (also StopIteration's value).

        Raises TrainingDiverged when the loss explodes, before anything diverged is saved; the
        message says which checkpoint stays.
        """
        log = None
        if self.out is not None and self.rank == 0:
            previous = metrics_path(self.resumed_from) if self.resumed_from is not None else None
            log = MetricsLog(metrics_path(self.out), self.step, previous)
        self._log = log
        try:
            self.result = yield from self._run(log)
        except TrainingDiverged as e:
            kept = "this run wrote no checkpoint"
            if self._saved_step is not None:
                kept = f"{shown_path(self.out)} keeps step {self._saved_step}"
            raise TrainingDiverged(f"{e}; {kept}") from None
        finally:
            if log:
                log.close()
        return self.result

    def _run(self, log: MetricsLog | None) -> Iterator[Event]:
        """The loop: a step, now and then a table row and a validation, until the schedule is
        done, a stop is asked for, or patience runs out; then the last validation and save."""
        schedule, rec, has_val = self.schedule, self.record, self.corpus.has_validation()
        self.session = session = Session.begin(rec)
        budget.begin(self, session)
        while True:
            seconds, stop = distributed.agree(rec.seconds(), self._stop_requested, self.world)
            if schedule.done(rec.step, seconds, rec.budget):
                session.reason = schedule.reason()
                break
            if stop:
                session.reason = "interrupted"
                break
            event = self._timed_step(schedule.lr(rec.step, seconds, rec.budget), session)
            if self.rank == 0:
                if log:
                    log.step(event, session.accuracy)
                yield event
            if schedule.row_due(rec.step, event.elapsed, session.last_row_fraction, rec.budget):
                session.last_row_fraction = event.fraction
                if self.rank == 0:
                    yield self._table_row(session.loss, session.accuracy)
            if rec.step - session.start_step == REPLAN_AFTER:
                budget.set_end(self, self.session)
            cost = rec.eval_seconds or self._expected_check_seconds(session)
            if (
                has_val
                and not schedule.done(rec.step, event.elapsed, rec.budget)
                and schedule.eval_due(
                    rec.step, event.elapsed - rec.last_eval_at, cost, rec.last_eval_step, rec.budget
                )
            ):
                yield from self._validate_and_save(session, event.elapsed, log)
                if self.config.patience and rec.evals_since_best >= self.config.patience:
                    session.reason = "patience"
                    break
        yield from self._finish(session, log)
        return self.result

    def _timed_step(self, lr: float, session: Session) -> StepEvent:
        """One optimizer step, timed and checked by the divergence guard; its event."""
        rec = self.record
        t0 = time.perf_counter()
        session.loss, session.accuracy, applied = self._train_step(lr)
        seconds = time.perf_counter() - t0
        rec.step += 1
        # raises TrainingDiverged, before anything diverged is saved
        self.guard.check(rec.step, session.loss if applied else math.nan, self.config.lr)
        rate = session.count(seconds, self.chars_per_step)
        elapsed = rec.seconds()
        for key, value in zip(
            ("step", "loss", "accuracy", "lr"), (rec.step, session.loss, session.accuracy, lr)
        ):
            rec.history[key].append(value)
        fraction = self.schedule.fraction(rec.step, elapsed, rec.budget)
        if self.average is not None and applied and self.average.due(rec.step, fraction):
            self.average.update()
        return StepEvent(
            rec.step, self.schedule.total, fraction, session.loss, lr, rate, elapsed, session.last_val
        )

    def _validate_and_save(self, session: Session, elapsed: float, log: MetricsLog | None) -> Iterator[Event]:
        """A validation during the run, the latest state saved with it (so that a run that
        dies later resumes from near there), and the plan's regularisation and
        the run's end set again for what is left."""
        start, rec = time.perf_counter(), self.record
        event = self._check()
        session.last_val = event.val_loss
        # every other check (the first included) when the run spaces them, each one with --eval-every
        if self._val_ok and (self.config.eval_every or len(rec.history["val_step"]) % 2 == 1):
            self._save_latest(session.loss, session.accuracy, session.last_val)
        rec.eval_seconds = time.perf_counter() - start
        rec.last_eval_step, rec.last_eval_at = rec.step, elapsed + rec.eval_seconds
        if self.rank == 0:
            if log:
                log.validation(event)
            yield event
        self._replan_regularisation(elapsed, rec.step - session.start_step)
        budget.read_curve(self)
        budget.set_end(self, self.session)

    def _finish(self, session: Session, log: MetricsLog | None) -> Iterator[Event]:
        """After the loop: a last check of the sample unless the last step had one, then all of
        the held-out part scored; the latest checkpoint (refused if the last validation scored
        worse than an untrained model), and the result. An interrupted run skips the checks."""
        rec = self.record
        if self.corpus.has_validation() and session.reason != "interrupted" and rec.step > 0:
            if not (rec.history["val_step"] and rec.history["val_step"][-1] == rec.step):
                event = self._check()
                session.last_val = event.val_loss
                if self.rank == 0:
                    if log:
                        log.validation(event)
                    yield event
            self._final = checks.score_all(self, session.last_val)
        session.seconds = rec.stop()
        if not self._val_ok:
            self.guard.refuse_to_save(rec.step, session.last_val, self.config.lr)
        final = self._final[0] if self._final[0] is not None else session.last_val
        self._save_latest(session.loss, session.accuracy, final)
        self.result = run_result(self, session, log)

    def outlook(self) -> Outlook | None:
        """What more time would buy, read from the validation curve so far (None: too few
        validations)."""
        name = best_path(self.out).name if self.out is not None else "the best checkpoint"
        return read_outlook(self.history["val_step"], self.history["val_loss"], name)

    def _outlook_record(self) -> dict | None:
        outlook = self.outlook()
        return outlook.to_dict() if outlook is not None else None

    def _replan_regularisation(self, elapsed: float, session_steps: int) -> None:
        """Under a time budget, ask the plan for its dropout and weight decay again, for the
        passes the run now expects at the speed measured so far (validation and saving
        included), and apply what it sets."""
        plan, rec = self.plan, self.record
        session = elapsed - rec.elapsed
        if plan is None or self.schedule.max_time is None or not session_steps or session <= 0:
            return
        end = rec.budget if rec.budget is not None else self.schedule.max_time
        rate = session_steps * self.chars_per_step / max(session, 1e-9)
        expected = rec.step * self.chars_per_step + max(0.0, end - elapsed) * rate
        changed = plan.replan_regularisation(expected / max(self.train_chars, 1))
        if "dropout" in changed:
            self.model.set_dropout(plan.dropout)
        if "weight_decay" in changed:
            for group in self.optimizer.param_groups:
                group["weight_decay"] = plan.weight_decay

    def _train_step(self, lr: float) -> tuple[float, float, bool]:
        """One optimizer step: (loss, accuracy) of its (global) batch, and whether it applied."""
        return optimizer_step(self, lr)

    @torch.no_grad()
    def _table_row(self, loss: float, accuracy: float) -> RowEvent:
        """The lecture's row: the model's argmax prediction for the corpus's fixed window."""
        x, y = self.corpus.window
        with eval_mode(self.model):
            # read as predict reads it: from the corpus's start (a line after its newline)
            logits, _ = read(self.model, self.vocab, self.vocab.decode(x), self.corpus.start)  # (1, T, V)
        pred = self.vocab.decode(logits[0].argmax(-1))
        return RowEvent(self.step, loss, accuracy, pred, self.vocab.decode(y))

    def sample_prompt(self) -> str:
        """The prompt the previews continue: --sample-prompt, else the corpus's own."""
        if self.config.sample_prompt is not None:
            return self.config.sample_prompt
        return self.corpus.sample_prompt()

    def _sample(self, prompt: str, length: int) -> str:
        """A preview: `length` characters sampled after `prompt` with a fixed seed."""
        sample = SampleConfig(temperature=self.config.sample_temperature, seed=PREVIEW_SEED)
        with eval_mode(self.model):
            stop, start = self.corpus.preview_stop, self.corpus.start
            steps = generate(self.model, self.vocab, prompt, length, sample, stop=stop, start=start)
            return "".join(step[0] for step in steps)

    def _sample_size(self, seconds: float) -> int:
        """Characters of the periodic checks' fixed sample: as recorded, else sized for what the
        run is expected to train on (steps so far over the share of the run they are)."""
        rec = self.record
        if rec.val_sample_chars is not None:
            return min(rec.val_sample_chars, self.val_chars)
        fraction = self.schedule.fraction(rec.step, seconds, rec.budget)
        run_chars = rec.step * self.chars_per_step / fraction if fraction > 0 else 0.0
        return checks.sample_chars(run_chars, self.val_chars)

    def _expected_check_seconds(self, session: Session) -> float:
        """Before the first validation: what one should take, from the speed of training."""
        steps = self.step - session.start_step
        if not session.train_time or not steps:
            return 0.0
        rate = steps * self.chars_per_step / session.train_time  # training characters per second
        return self._sample_size(self.record.seconds()) * checks.FORWARD_COST / rate

    def evaluate_validation(self, limit: int | None = None) -> EvalResult:
        """Loss and accuracy on the held-out part; with `limit`, on its fixed sample of about
        `limit` characters. With several processes each scores its share and all get the total."""
        part = self.corpus.evaluate(self.model, self.device, self.precision, limit, (self.rank, self.world))
        return distributed.merge_eval(part, self.world)

    def _timed_score(self, limit: int | None) -> EvalResult:
        """evaluate_validation, timed: the speed of scoring, for the budget's reserve."""
        t0 = time.perf_counter()
        result = self.evaluate_validation(limit)
        if result.characters:
            self.session.check_rate = result.characters / max(time.perf_counter() - t0, 1e-6)
        return result

    def _check(self) -> EvalEvent:
        """A check on the fixed sample of the held-out part: the live weights and, where kept,
        their average, on the same characters; the better is the best checkpoint's if it wins."""
        rec = self.record
        if rec.val_sample_chars is None:
            rec.val_sample_chars = self._sample_size(rec.seconds())
        result = self._timed_score(rec.val_sample_chars)
        rec.val_sample_stderr = result.stderr
        # a model scoring worse than an untrained one is never saved (raises if not finite)
        self._val_ok = self.guard.check_validation(rec.step, result.loss, self.config.lr)
        for key, value in zip(
            ("val_step", "val_loss", "val_accuracy"), (rec.step, result.loss, result.accuracy)
        ):
            rec.history[key].append(value)
        rec.best_val_loss_live = _lower(rec.best_val_loss_live, result.loss)
        loss, weights = result.loss, "live"
        if self.average is not None and self.average.ready():
            with self.average.applied():
                average = self.evaluate_validation(rec.val_sample_chars).loss
            rec.best_val_loss_average = _lower(rec.best_val_loss_average, average)
            if average < loss:
                loss, weights = average, "average"
        best = self._val_ok and (rec.best_val_loss is None or loss < rec.best_val_loss)
        if best:
            rec.best_val_loss, rec.evals_since_best, rec.best_weights = loss, 0, weights
            source = self.average.shadow if weights == "average" else list(self.model.parameters())
            self._best_copy = [p.detach().clone() for p in source]
            if self.out is not None:
                last = self._summary(self.history["loss"][-1], self.history["accuracy"][-1], loss)
                save_weights(self, best_path(self.out), last, weights)
        else:
            rec.evals_since_best += 1
        prompt = self.sample_prompt()
        sample = self._sample(prompt, PREVIEW_CHARS) if self.rank == 0 else ""
        return EvalEvent(rec.step, result.loss, result.bits_per_char, result.accuracy, best, prompt, sample)

    # -- checkpoints (what they hold: charnext.training.run_state) ------------------------------

    def _summary(self, loss: float, accuracy: float, val_loss: float | None) -> dict:
        """The summary both checkpoints carry: the same fields, as of the step they are saved."""
        return {"loss": loss, "accuracy": accuracy, "val_loss": val_loss}

    def _save_latest(self, loss: float, accuracy: float, val_loss: float | None) -> None:
        if self.out is not None:
            save_weights(self, self.out, self._summary(loss, accuracy, val_loss), "live")
            self._saved_step = self.step
            if self._log is not None:
                self._log.attach()

    def recorded_plan(self) -> dict | None:
        """The plan of this run: made now, or recorded by the checkpoint a resumed run continues."""
        if self.plan is not None:
            return self.plan.to_dict()
        return self._resumed_plan

    def averaging(self) -> dict | None:
        """The weight average's record (None where the run keeps none): see run_state.averaging."""
        return averaging(self)

    def provenance(self) -> dict:
        """Where the run came from and how it was run: recorded in every checkpoint it writes."""
        return provenance(self)


def _lower(best: float | None, loss: float) -> float | None:
    """The lower of a best loss so far (None: none yet) and a new one; a non-finite one never wins."""
    if not math.isfinite(loss):
        return best
    return loss if best is None or loss < best else best
