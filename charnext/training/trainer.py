"""The training loop: it runs steps, validates and saves, and reports through events.

Build a `Trainer` with `charnext.training.runs` (a new run, a resumed one, or one started from another
model's weights); then `for event in trainer.run(): ...` and read `trainer.result`. What the
run trains on is a corpus (`charnext.training.corpus`), when it ends and at which learning rate is its
schedule (`charnext.training.schedule`), and several processes talk through `charnext.training.distributed`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from charnext.config import SampleConfig, TrainConfig
from charnext.errors import CheckpointError, TrainingDiverged
from charnext.events import Event, RowEvent, Score, StepEvent
from charnext.inference.sampling import generate
from charnext.inference.steps import Reader, read
from charnext.modeling.device import resolve_precision
from charnext.modeling.model import CharModel, ModelConfig, eval_mode
from charnext.storage.checkpoint import first_line
from charnext.storage.metrics import MetricsLog, metrics_path
from charnext.text.paths import shown_path
from charnext.text.vocab import Vocab
from charnext.training import distributed
from charnext.training.averaging import WeightAverage
from charnext.training.budget import EXIT_SECONDS, Budget
from charnext.training.checks import Checks
from charnext.training.corpus import make_corpus
from charnext.training.divergence import DivergenceGuard
from charnext.training.launch import check_memory, copy_overlap, optimizer_step
from charnext.training.optim import make_adamw
from charnext.training.outlook import Outlook, read_outlook
from charnext.training.planner import Plan
from charnext.training.run_state import best_path, restore_run, rewind, run_result, save_run, saved_plan
from charnext.training.schedule import Schedule
from charnext.training.state import HISTORY_KEYS, RunState, Session
from charnext.training.validation import Sample

PREVIEW_SEED = 1234  # previews draw from the same seed each time, so they show progress only


class Trainer:
    """Trains a CharModel on a corpus; `run()` yields events, then `result` holds a TrainResult."""

    def __init__(
        self,
        text: str | torch.Tensor | list[str],
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
        lengths: list[int] | None = None,
        budget: Callable[[float], Budget] | None = None,
    ):
        """`text` is the training text, or the same already encoded with `vocab` (a 1-D integer
        tensor, possibly memory-mapped), or several texts kept apart (a list; encoded, the
        tokens end to end with each one's `lengths`); `resume` is the checkpoint a resumed run continues;
        `origin` the provenance the front end gives (command line, source of the text); `plan`
        what the planner chose; `budget` makes this command's time budget (training/budget.py)."""
        self.config = config
        self.plan = plan
        self.vocab = vocab
        self.out = Path(out) if out is not None else None
        self.text_fingerprint = text_fingerprint
        self.origin = origin or {}
        self.rank, self.world = distributed.rank_world()
        self.device = distributed.process_device(config.device, self.world)
        self.precision = resolve_precision(config.precision, self.device, model_config.cell)
        self.stop_requested = False  # a clean stop after the step in progress was asked for

        self._build(model_config, init_weights)
        self.corpus = make_corpus(text, vocab, config, self.rank, self.world, vocab_counts, lengths)
        self.guard = DivergenceGuard(len(vocab))
        # the average of the weights over the run's end, validated beside them (needs held-out text)
        self.average = WeightAverage(self.model) if config.ema and self.corpus.has_validation() else None

        self._fresh_state(resumed_from)
        if resume is not None:
            self._restore(resume)
        self.budget = budget(self.record.elapsed) if budget and config.max_time is not None else None
        end = self.budget.clock_end if self.budget is not None else None
        self.schedule = Schedule.for_run(
            config, self.corpus.steps_per_epoch(), self.corpus.train_chars, self.chars_per_step, end
        )
        if resume is not None:
            self.checks.resumed()

    def _restore(self, resume: dict) -> None:
        """Continue the run saved in `resume` (a loaded checkpoint)."""
        try:  # run_state.check_resumable has checked it; this is the last line of defence
            self.record, self.carried = restore_run(self, resume)
            self._resumed_plan = saved_plan(resume)
        except (RuntimeError, ValueError, TypeError, KeyError) as e:
            where = shown_path(self.resumed_from) if self.resumed_from is not None else "the checkpoint"
            raise CheckpointError(f"{where} is damaged: {first_line(e)}") from None
        if self.resumed_here():
            self._saved_step = self.step

    def resumed_here(self) -> bool:
        """Whether this run continues the checkpoint it writes (resumed, to the same --out)."""
        if self.out is None or self.resumed_from is None:
            return False
        return self.out.resolve() == self.resumed_from.resolve()

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

    def _fresh_state(self, resumed_from: Path | None) -> None:
        """The state of a run before its first step (a resumed run then restores its own)."""
        self.record = RunState()  # the run's state: what the loop reads and writes, and saves
        self.carried: torch.Tensor | None = None  # carried recurrent state (stream corpus)
        self.resumed_from = Path(resumed_from) if resumed_from is not None else None
        self._cleaned = False  # whether a stale best checkpoint at `out` was dealt with
        self._saved_step: int | None = None  # the step of the latest checkpoint at `out`
        self._log: MetricsLog | None = None
        self._val_ok = True  # whether the latest validation allows saving (see divergence.py)
        self._resumed_plan: dict | None = None
        self._save_seconds = 0.0  # how long the latest save took (the time budget keeps it for the end)
        self.weights_held = "live"  # the weights the model holds now: "live" or "average"
        self.checks = Checks(self)  # the checks of the held-out part, and the best state held

    # -- what the run is --------------------------------------------------------------------

    @property
    def step(self) -> int:
        """Optimizer steps made in the run."""
        return self.record.step

    @step.setter
    def step(self, value: int) -> None:
        self.record.step = value

    @property
    def history(self) -> dict[str, list]:
        """Per step (step, loss, accuracy, lr) and per validation (val_step, val_loss, ...)."""
        return self.record.history

    @property
    def best_val(self) -> float | None:
        """The best validation loss so far (of live or averaged weights)."""
        return self.record.best_val_loss

    def elapsed(self) -> float:
        """Seconds trained so far in this run, earlier sessions included: the run's one clock."""
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
    def chars_per_step(self) -> float:
        """Training characters per optimizer step, over all processes (line mode: on average,
        the padding not counted)."""
        return self.corpus.chars_per_step

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

    # -- the run ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the run to stop after the step in progress and save a resumable checkpoint."""
        self.stop_requested = True

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
            self.checks.write_best()  # the best state held, never diverged
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
        schedule, has_val, rec = self.schedule, self.corpus.has_validation(), self.record
        if not rec.last_eval_step:  # a new session's validations are spaced from its start
            rec.last_eval_at = rec.elapsed
        if rec.turn is not None and rec.turn["until"] <= rec.elapsed:
            rec.turn = None  # annealed in an earlier session: this one follows its own budget
        session = Session.begin(rec)
        while True:
            elapsed = rec.seconds()
            if self.budget is not None and self.budget.left() <= self._finish_reserve(session):
                elapsed = max(elapsed, schedule.max_time)  # the command's end is near: training's is here
            elapsed, stop = distributed.agree(elapsed, self.stop_requested, self.world)
            if schedule.done(rec.step, elapsed, rec.turn):
                session.reason = schedule.reason(rec.turn)
                break
            if stop:
                session.reason = "interrupted"
                break
            event = self._timed_step(schedule.lr(rec.step, elapsed, rec.turn), session)
            if self.rank == 0:
                if log:
                    log.step(event, session.accuracy)
                yield event
            if schedule.row_due(rec.step, event.elapsed, session.last_row_fraction, rec.turn):
                session.last_row_fraction = event.fraction
                if self.rank == 0:
                    yield self._table_row(session.loss, session.accuracy)
            if not rec.eval_seconds and not self.config.eval_every:  # the first is spaced too
                rec.eval_seconds = self.checks.expected_seconds(session)
            since_eval = event.elapsed - rec.last_eval_at
            if (
                has_val
                and not schedule.done(rec.step, event.elapsed, rec.turn)
                and schedule.eval_due(rec.step, since_eval, rec.eval_seconds)
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
        batch = self.corpus.batch(rec.step)
        done = optimizer_step(
            self.net, self.model, self.optimizer, batch, self.carried, lr,
            device=self.device, precision=self.precision, grad_clip=self.config.grad_clip,
            world=self.world, carries_state=self.corpus.carries_state,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        self.carried, session.loss, session.accuracy = done.state, done.loss, done.accuracy
        rec.skipped_steps += not done.applied
        rec.step += 1
        # raises TrainingDiverged, before anything diverged is saved
        self.guard.check(rec.step, session.loss if done.applied else math.nan, self.config.lr)
        rate = session.count(seconds, self.chars_per_step)
        elapsed = rec.seconds()
        for key, value in zip(HISTORY_KEYS[:4], (rec.step, session.loss, session.accuracy, lr)):
            rec.history[key].append(value)
        fraction = self.schedule.fraction(rec.step, elapsed, rec.turn)
        if self.average is not None and done.applied and self.average.due(rec.step, fraction):
            self.average.update()
        (last_se,) = rec.history["val_se"][-1:] or [None]  # the latest check's, as its loss
        figures = (session.loss, lr, rate, elapsed, session.last_val, seconds, last_se)
        return StepEvent(rec.step, self.schedule.total, fraction, *figures)

    def _validate_and_save(self, session: Session, elapsed: float, log: MetricsLog | None) -> Iterator[Event]:
        """A validation during the run, the latest state saved with it (so that a run that dies
        later resumes from here), and the plan's regularisation set again for what is left."""
        rec = self.record
        start = time.perf_counter()
        # the checkpoints record this validation's step and start; its length is known after
        rec.last_eval_step, rec.last_eval_at = rec.step, elapsed
        event = self.checks.check(session)
        session.last_val = event.val_loss
        if rec.turn is None and self.checks.turned():
            self._turn(elapsed, session)
        if self._val_ok:
            self._save_latest(session.loss, session.accuracy, self.checks.figures())
        rec.eval_seconds = time.perf_counter() - start
        if self.rank == 0:
            if log:
                log.validation(event)
            yield event
        self._replan_regularisation(elapsed, rec.step - session.start_step)

    def _turn(self, elapsed: float, session: Session) -> None:
        """The validation turned up (charnext.training.checks.Checks.turned): go back to the best
        check's state where this process holds it (a run of one process that writes
        checkpoints), and anneal from the learning rate it had there to the end (Schedule.turn)."""
        rec = self.record
        lr, back = rec.history["lr"][-1], None
        best = self.checks.best_state() if self.world == 1 else None
        if best is not None and rec.best_step in rec.history["step"]:
            self.carried, back = rewind(self, best), rec.best_step
            lr = rec.history["lr"][rec.history["step"].index(back)]
        now, steps = rec.history["val_loss"][-1], rec.step - session.start_step
        rate = steps * self.chars_per_step / session.train_time if steps and session.train_time else 0.0
        per_pass = self.train_chars / rate if rate else math.inf  # seconds a pass takes
        rec.turn = self.schedule.turn(rec.step, elapsed, lr, now, rec.best_val_loss_live, per_pass)
        if rec.turn is not None:
            rec.turn["back_to"] = back

    def _finish(self, session: Session, log: MetricsLog | None) -> Iterator[Event]:
        """After the loop: a last check unless the last step had one, the final figure, the
        latest checkpoint (refused if that check scored worse than an untrained model), the
        best one, and the result."""
        validated_here = bool(self.history["val_step"]) and self.history["val_step"][-1] == self.step
        final = self.corpus.has_validation() and session.reason != "interrupted" and self.step > 0
        if final and not validated_here:
            event = self.checks.check(session)
            session.last_val = event.val_loss
            if self.rank == 0:
                if log:
                    log.validation(event)
                yield event
        if final:
            self.checks.finish()
        session.end(self.record)
        if not self._val_ok:
            self.guard.refuse_to_save(self.step, session.last_val, self.config.lr)
        self._save_latest(session.loss, session.accuracy, self.checks.figures())
        self.checks.write_best()
        self.result = run_result(self, session, log.path if log else None)

    def outlook(self) -> Outlook | None:
        """What more time would buy, read from the validation curve so far (None: too few
        validations)."""
        name = best_path(self.out).name if self.out is not None else "the best checkpoint"
        return read_outlook(self.history["val_step"], self.history["val_loss"], name, self.record.turn)

    def outlook_record(self) -> dict | None:
        """The outlook as plain values (None: too few validations)."""
        outlook = self.outlook()
        return outlook.to_dict() if outlook is not None else None

    def _replan_regularisation(self, elapsed: float, session_steps: int) -> None:
        """Under a time budget, ask the plan for its dropout, weight decay and weight drop again,
        for the passes the run now expects at the speed measured so far (validation and saving
        included), and apply what it chooses; a change is recorded beside the plan, which stays."""
        plan, rec = self.plan, self.record
        session = elapsed - rec.elapsed
        if plan is None or self.schedule.max_time is None or not session_steps or session <= 0:
            return
        rate = session_steps * self.chars_per_step / max(session, 1e-9)
        expected = rec.step * self.chars_per_step + max(0.0, self.schedule.max_time - elapsed) * rate
        passes = expected / max(self.train_chars, 1)
        chosen = plan.regularisation_for(passes)
        if "dropout" in chosen:
            self.model.set_dropout(chosen["dropout"])
        if "weight_drop" in chosen:
            self.model.set_weight_drop(chosen["weight_drop"])
        if "weight_decay" in chosen:
            for group in self.optimizer.param_groups:
                group["weight_decay"] = chosen["weight_decay"]
        now = rec.replans[-1] if rec.replans else plan.to_dict()
        if any(now[k] != v for k, v in chosen.items()):
            rec.replans.append({"step": rec.step, "passes": passes, **chosen})

    @torch.no_grad()
    def _table_row(self, loss: float, accuracy: float) -> RowEvent:
        """The lecture's row: the model's argmax prediction for the corpus's fixed window."""
        x, y = self.corpus.window
        with eval_mode(self.model):
            # read as predict reads it: from the corpus's start (a line after its newline)
            logits, _ = read(self._reader(), self.vocab.decode(x))  # (1, T, V)
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
            return "".join(step[0] for step in generate(self._reader(), prompt, length, sample))

    def _reader(self) -> Reader:
        """The model being trained, as predict reads it: from the corpus's start (a line model
        after its newline, each line ending at its own)."""
        return Reader(self.model, self.vocab, self.corpus.start)

    def _finish_reserve(self, session: Session) -> float:
        """Seconds the command needs after its last step: the last checks (charnext.training.checks),
        the save, the summary and leaving."""
        checks = self.checks.reserve(session) if self.corpus.has_validation() else 0.0
        return checks + self._save_seconds + EXIT_SECONDS

    def evaluate_validation(self, sample: Sample | None = None) -> Score:
        """Loss, accuracy and standard error on `sample` of the held-out part (None: all of it).
        With several processes each scores its share of the windows and all get the total."""
        part = self.corpus.evaluate(self.model, self.device, self.precision, sample, (self.rank, self.world))
        return distributed.merge_sums(part, self.world).score()

    # -- checkpoints ---------------------------------------------------------------------------

    def _summary(self, loss: float, accuracy: float, val: dict) -> dict:
        """The summary both checkpoints carry: the same fields, as of the step they are saved
        (`val`: the validation's, charnext.training.checks.Checks.figures)."""
        return {"loss": loss, "accuracy": accuracy, **val}

    def _save_latest(self, loss: float, accuracy: float, val: dict) -> None:
        """Write the latest checkpoint (the best one first, if it holds the only copy)."""
        if self.out is not None:
            start = time.perf_counter()
            self.checks.before_save(self.step)
            self._save(self.out, self._summary(loss, accuracy, val))
            self._save_seconds = time.perf_counter() - start
            self._saved_step = self.step
            if self._log is not None:
                self._log.attach()

    def _clean_stale_best(self) -> None:
        """Before this session's first write: a best checkpoint at `out` that is not this run's
        (left by an earlier run, or by the run this one resumed under another name) goes."""
        if self._cleaned or self.out is None:
            return
        self._cleaned = True
        best = best_path(self.out)
        if best.exists() and not self.resumed_here():
            best.unlink()

    def recorded_plan(self) -> dict | None:
        """The plan of this run: made now, or recorded by the checkpoint a resumed run continues."""
        if self.plan is not None:
            return self.plan.to_dict()
        return self._resumed_plan

    def _save(self, path: Path, summary: dict) -> None:
        """Write a checkpoint (rank 0); every process must call it, to gather the state."""
        state = distributed.gather_rows(self.carried, self.world) if self.carried is not None else None
        if self.rank != 0:
            return
        self._clean_stale_best()
        save_run(self, path, summary, state)
