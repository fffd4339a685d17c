"""The training loop: it runs steps, validates and saves, and reports through events.

Build a `Trainer` with `charnext.training.runs` (a new run, a resumed one, or one started from another
model's weights); then `for event in trainer.run(): ...` and read `trainer.result`. What the
run trains on is a corpus (`charnext.training.corpus`), when it ends and at which learning rate is its
schedule (`charnext.training.schedule`), and several processes talk through `charnext.training.distributed`.
"""

from __future__ import annotations

import math
import os
import platform
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from charnext.config import SampleConfig, TrainConfig
from charnext.errors import CheckpointError, ConfigError, TrainingDiverged
from charnext.events import EvalEvent, Event, RowEvent, StepEvent, TrainResult
from charnext.inference.sampling import generate
from charnext.inference.scoring import EvalResult
from charnext.inference.steps import Reader, read
from charnext.modeling.device import autocast, resolve_precision
from charnext.modeling.loss import sequence_loss
from charnext.modeling.model import CharModel, ModelConfig, eval_mode
from charnext.storage.checkpoint import first_line
from charnext.storage.metrics import MetricsLog, metrics_path
from charnext.text.paths import shown_path
from charnext.text.vocab import Vocab
from charnext.training import distributed
from charnext.training.averaging import WeightAverage
from charnext.training.corpus import make_corpus
from charnext.training.divergence import DivergenceGuard
from charnext.training.optim import make_adamw
from charnext.training.outlook import Outlook, read_outlook
from charnext.training.planner import Plan, parameters
from charnext.training.run_state import restore_run, save_run
from charnext.training.schedule import Schedule
from charnext.version import __version__

PERIODIC_VAL_CHARS = 2_000_000  # characters scored at each validation during training
# Under a step budget a validation scores at most this many characters per training character
# of the whole run (but at least MIN_VAL_CHARS): scoring a character costs about a third of
# training on one (forward only), so the final validation costs at most about 7% of the
# run. `--steps 120` on tinyshakespeare otherwise scored all 111k held-out characters, 0.9 s
# against 5.3 s of training.
VAL_CHARS_PER_RUN_CHAR = 0.2
MIN_VAL_CHARS = 10_000
FORWARD_COST = 1 / 3  # a forward pass's share of a training step's cost, per character
PREVIEW_CHARS = 80  # characters of the sampled preview after each validation
PREVIEW_SEED = 1234  # previews draw from the same seed each time, so they show progress only
RATE_WINDOW = 2.0  # seconds of steps over which the progress line's chars/s is measured


def best_path(out: Path) -> Path:
    """Where the best-by-validation checkpoint goes: `checkpoint.pt` -> `checkpoint.best.pt`."""
    return out.with_name(f"{out.stem}.best{out.suffix or '.pt'}")


@dataclass
class _Session:
    """One session of a run (a resumed run is a new session): its clock, the speed the progress
    line shows, and the latest figures, which a session that makes no step reports as they were."""

    trainer: Trainer
    start: float  # perf_counter at the session's start
    start_step: int  # the run's step then
    loss: float  # the latest step's training loss
    accuracy: float  # and accuracy
    last_val: float | None  # the latest validation loss
    reason: str = "steps"  # what ended the session
    train_time: float = 0.0  # seconds in optimizer steps
    last_eval_at: float = 0.0  # session seconds at the end of the latest validation
    last_row_fraction: float = 0.0  # share of the run done at the latest table row
    seconds: float = 0.0  # wall-clock seconds of the session, once it has ended
    rate: float = 0.0  # the progress line's chars/s, measured over RATE_WINDOW
    rate_time: float = 0.0
    rate_chars: int = 0

    @classmethod
    def begin(cls, trainer: Trainer) -> _Session:
        h = trainer.history
        last = lambda key: h[key][-1] if h[key] else math.nan  # noqa: E731
        start = time.perf_counter()
        trainer._start = start
        val = h["val_loss"][-1] if h["val_loss"] else None
        return cls(trainer, start, trainer.step, last("loss"), last("accuracy"), val)

    def elapsed(self) -> float:
        """Seconds trained in the run so far, earlier sessions included."""
        return self.trainer.elapsed_before + time.perf_counter() - self.start

    def count(self, seconds: float, chars: int) -> float:
        """Add one step's time and characters; the chars/s to show."""
        self.train_time += seconds
        self.rate_time, self.rate_chars = self.rate_time + seconds, self.rate_chars + chars
        if self.rate_time >= RATE_WINDOW or not self.rate:
            self.rate, self.rate_time, self.rate_chars = self.rate_chars / max(self.rate_time, 1e-9), 0.0, 0
        return self.rate


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
    ):
        """`text` is the training text, or the same already encoded with `vocab` (a 1-D integer
        tensor, possibly memory-mapped), or several texts kept apart (a list; encoded, the
        tokens end to end with each one's `lengths`); `resume` is the checkpoint a resumed run continues;
        `origin` the provenance the front end gives (command line, source of the text); `plan`
        what the planner chose (recorded; the configs already hold it)."""
        self.config = config
        self.plan = plan
        self.vocab = vocab
        self.out = Path(out) if out is not None else None
        self.text_fingerprint = text_fingerprint
        self.origin = origin or {}
        self.rank, self.world = distributed.rank_world()
        self.device = distributed.process_device(config.device, self.world)
        self.precision = resolve_precision(config.precision, self.device, model_config.cell)
        self._stop_requested = False
        self._start: float | None = None  # perf_counter at the start of this session's loop

        self._build(model_config, init_weights)
        self.corpus = make_corpus(text, vocab, config, self.rank, self.world, vocab_counts, lengths)
        self.schedule = Schedule.for_run(
            config, self.corpus.steps_per_epoch(), self.corpus.train_chars, self.chars_per_step
        )
        self.guard = DivergenceGuard(len(vocab))
        # the average of the weights over the run's end, validated beside them (needs held-out text)
        self.average = WeightAverage(self.model) if config.ema and self.corpus.has_validation() else None

        self._fresh_state(resumed_from)
        if resume is not None:
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

    def _build(self, model_config: ModelConfig, init_weights: dict | None) -> None:
        """The model (seeded; from `init_weights` where given), wrapped for several processes,
        and its optimizer."""
        torch.manual_seed(self.config.seed)
        _check_memory(model_config)
        self.model = CharModel(model_config)
        if init_weights is not None:
            with torch.no_grad():
                _copy_overlap(self.model, init_weights)
        self.model.to(self.device).train()
        self.net = distributed.wrap(self.model, self.device, self.world)
        # torch.optim.AdamW(fused=True)'s arithmetic and state, without torch.optim's import
        # of torch._dynamo (about 2 s): see training/optim.py
        self.optimizer = make_adamw(
            self.model.parameters(), self.config.lr, self.config.weight_decay, self.device
        )

    def _fresh_state(self, resumed_from: Path | None) -> None:
        """The state of a run before its first step (a resumed run then restores its own)."""
        self.step = 0
        self.elapsed_before = 0.0  # seconds trained in earlier sessions of this run
        self.history: dict[str, list] = {
            "step": [], "loss": [], "accuracy": [], "lr": [],
            "val_step": [], "val_loss": [], "val_accuracy": [],
        }  # fmt: skip
        self.best_val: float | None = None
        self.evals_since_best = 0
        self.state: torch.Tensor | None = None  # carried recurrent state (stream corpus)
        self.skipped_steps = 0
        self.resumed_from = Path(resumed_from) if resumed_from is not None else None
        self._cleaned = False  # whether a stale best checkpoint at `out` was dealt with
        self._saved_step: int | None = None  # the step of the latest checkpoint at `out`
        self._log: MetricsLog | None = None
        self._val_ok = True  # whether the latest validation allows saving (see divergence.py)
        self._resumed_plan: dict | None = None
        self.best_live_val: float | None = None  # the best validation of the live weights
        self.best_average_val: float | None = None  # and of their average
        self._weights = "live"  # the weights the model holds now: "live" or "average"
        self.best_weights = "live"  # the weights of the best validation (the best checkpoint's)

    # -- what the run is --------------------------------------------------------------------

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
        schedule, has_val = self.schedule, self.corpus.has_validation()
        session = _Session.begin(self)
        while True:
            elapsed, stop = distributed.agree(session.elapsed(), self._stop_requested, self.world)
            if schedule.done(self.step, elapsed):
                session.reason = schedule.reason()
                break
            if stop:
                session.reason = "interrupted"
                break
            event = self._timed_step(schedule.lr(self.step, elapsed), session)
            if self.rank == 0:
                if log:
                    log.step(event, session.accuracy)
                yield event
            if schedule.row_due(self.step, event.elapsed, session.last_row_fraction):
                session.last_row_fraction = event.fraction
                if self.rank == 0:
                    yield self._table_row(session.loss, session.accuracy)
            since_eval = event.elapsed - self.elapsed_before - session.last_eval_at
            if not schedule.eval_seconds and not self.config.eval_every:  # the first is spaced too
                schedule.eval_seconds = self._expected_eval_seconds(session)
            if (
                has_val
                and not schedule.done(self.step, event.elapsed)
                and schedule.eval_due(self.step, since_eval)
            ):
                yield from self._validate_and_save(session, event.elapsed, log)
                if self.config.patience and self.evals_since_best >= self.config.patience:
                    session.reason = "patience"
                    break
        yield from self._finish(session, log)
        return self.result

    def _timed_step(self, lr: float, session: _Session) -> StepEvent:
        """One optimizer step, timed and checked by the divergence guard; its event."""
        t0 = time.perf_counter()
        session.loss, session.accuracy, applied = self._train_step(lr)
        seconds = time.perf_counter() - t0
        self.step += 1
        # raises TrainingDiverged, before anything diverged is saved
        self.guard.check(self.step, session.loss if applied else math.nan, self.config.lr)
        rate = session.count(seconds, self.chars_per_step)
        elapsed = session.elapsed()
        for key, value in zip(
            ("step", "loss", "accuracy", "lr"), (self.step, session.loss, session.accuracy, lr)
        ):
            self.history[key].append(value)
        fraction = self.schedule.fraction(self.step, elapsed)
        if self.average is not None and applied and self.average.due(self.step, fraction):
            self.average.update()
        total, last_val = self.schedule.total, session.last_val
        return StepEvent(self.step, total, fraction, session.loss, lr, rate, elapsed, last_val, seconds)

    def _validate_and_save(
        self, session: _Session, elapsed: float, log: MetricsLog | None
    ) -> Iterator[Event]:
        """A validation during the run, the latest state saved with it (so that a run that dies
        later resumes from here), and the plan's regularisation set again for what is left."""
        start = time.perf_counter()
        event = self._validate()
        session.last_val = event.val_loss
        if self._val_ok:
            self._save_latest(session.loss, session.accuracy, session.last_val)
        self.schedule.eval_seconds = time.perf_counter() - start
        self.schedule.last_eval_step = self.step
        session.last_eval_at = elapsed - self.elapsed_before + self.schedule.eval_seconds
        if self.rank == 0:
            if log:
                log.validation(event)
            yield event
        self._replan_regularisation(elapsed, self.step - session.start_step)

    def _finish(self, session: _Session, log: MetricsLog | None) -> Iterator[Event]:
        """After the loop: a last validation unless the last step had one, the latest checkpoint
        (refused if that validation scored worse than an untrained model), and the result."""
        validated_here = bool(self.history["val_step"]) and self.history["val_step"][-1] == self.step
        if (
            self.corpus.has_validation()
            and session.reason != "interrupted"
            and self.step > 0
            and not validated_here
        ):
            event = self._validate(final=True)
            session.last_val = event.val_loss
            if self.rank == 0:
                if log:
                    log.validation(event)
                yield event
        session.seconds = time.perf_counter() - session.start
        self.elapsed_before += session.seconds
        self._start = None
        if not self._val_ok:
            self.guard.refuse_to_save(self.step, session.last_val, self.config.lr)
        self._save_latest(session.loss, session.accuracy, session.last_val)
        self.result = self._result(session, log)

    def _result(self, session: _Session, log: MetricsLog | None) -> TrainResult:
        session_chars = (self.step - session.start_step) * self.chars_per_step
        best = best_path(self.out) if self.out is not None else None
        return TrainResult(
            steps=self.step,
            elapsed=self.elapsed_before,
            loss=session.loss,
            accuracy=session.accuracy,
            val_loss=session.last_val,
            best_val_loss=self.best_val,
            chars_per_sec=session_chars / session.train_time if session.train_time else 0.0,
            reason=session.reason,
            checkpoint=self.out if self.out is not None and self.out.exists() else None,
            best_checkpoint=best if best is not None and best.exists() else None,
            device=str(self.device),
            precision=self.precision,
            parameters=self.model.num_parameters(),
            train_chars=self.train_chars,
            val_chars=self.val_chars,
            train_time=session.train_time,
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            threads=torch.get_num_threads() if self.device.type == "cpu" else 0,
            metrics_log=log.path if log else None,
            skipped_steps=self.skipped_steps,
            plan=self.recorded_plan(),
            outlook=self._outlook_record(),
            averaging=self.averaging(),
            session_steps=self.step - session.start_step,
            session_elapsed=session.seconds,
        )

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
        plan = self.plan
        session = elapsed - self.elapsed_before
        if plan is None or self.schedule.max_time is None or not session_steps or session <= 0:
            return
        rate = session_steps * self.chars_per_step / max(session, 1e-9)
        expected = self.step * self.chars_per_step + max(0.0, self.schedule.max_time - elapsed) * rate
        changed = plan.replan_regularisation(expected / max(self.train_chars, 1))
        if "dropout" in changed:
            self.model.set_dropout(plan.dropout)
        if "weight_decay" in changed:
            for group in self.optimizer.param_groups:
                group["weight_decay"] = plan.weight_decay

    def elapsed(self) -> float:
        """Seconds trained so far in this run, earlier sessions included."""
        start = self._start
        return self.elapsed_before + (time.perf_counter() - start if start is not None else 0.0)

    def _train_step(self, lr: float) -> tuple[float, float, bool]:
        """One optimizer step; returns (loss, accuracy) of its (global) batch, and whether the
        update was applied.

        A step whose gradients are not finite (an overflow, e.g. under bf16) is skipped: the
        weights, the optimizer and the carried state stay as they were.
        """
        batch = self.corpus.batch(self.step)
        x = batch.x.to(self.device, non_blocking=True).long()
        y = batch.y.to(self.device, non_blocking=True).long()
        weights = batch.weights.to(self.device) if batch.weights is not None else None
        state = None if batch.reset else self.state
        if state is not None and batch.cold is not None and batch.cold.any():
            state = state * (~batch.cold).to(state.device, state.dtype)[None, :, None]  # (L, B, S)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast(self.device, self.precision):
            logits, new_state = self.net(x, state)
        loss = sequence_loss(logits, y, weights)
        mean_loss = loss
        if self.world > 1 and weights is not None:
            # DDP averages the processes' gradients. Padded line batches give processes
            # different numbers of real positions, so weigh each one's mean by its share of
            # the global batch: the update is then exactly one process's on the whole batch.
            real = weights.sum()
            total = distributed.all_sum(real, self.world)
            loss = loss * (real * self.world / total[0])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # the gradient norm is the same in every process (DDP has averaged the gradients), so
        # all of them skip the same steps
        max_norm = self.config.grad_clip or math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        applied = bool(torch.isfinite(norm))
        if applied:
            self.optimizer.step()
            if self.corpus.carries_state:
                self.state = new_state.detach()
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
        with torch.no_grad():
            hits = (logits.argmax(-1) == y).float()
            accuracy = (
                float((hits * weights).sum() / weights.sum()) if weights is not None else float(hits.mean())
            )
        if self.world > 1:  # report the whole global batch, as one process would
            real = float(weights.sum()) if weights is not None else float(y.numel())
            loss_value, accuracy = distributed.weighted_mean([mean_loss.item(), accuracy], real, self.world)
            return loss_value, accuracy, applied
        return loss.item(), accuracy, applied

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

    def _val_limit(self, final: bool) -> int | None:
        """Characters a validation scores at most (None: all): periodic ones PERIODIC_VAL_CHARS;
        under a step budget, also no more than VAL_CHARS_PER_RUN_CHAR of the run's characters."""
        limit = None if final else PERIODIC_VAL_CHARS
        if self.schedule.total is not None:
            cap = max(MIN_VAL_CHARS, int(VAL_CHARS_PER_RUN_CHAR * self.schedule.total * self.chars_per_step))
            limit = cap if limit is None else min(limit, cap)
        return limit

    def _expected_eval_seconds(self, session: _Session) -> float:
        """Before the first validation: what one should take, from the speed of training."""
        steps = self.step - session.start_step
        if not session.train_time or not steps:
            return 0.0
        rate = steps * self.chars_per_step / session.train_time  # training characters per second
        limit = self._val_limit(final=False)
        chars = self.val_chars if limit is None else min(self.val_chars, limit)
        return chars * FORWARD_COST / rate

    def evaluate_validation(self, limit: int | None = None) -> EvalResult:
        """Loss and accuracy on the held-out part; with `limit`, on about its first `limit`
        characters only. With several processes each scores its share and all get the total."""
        part = self.corpus.evaluate(self.model, self.device, self.precision, limit, (self.rank, self.world))
        return distributed.merge_eval(part, self.world)

    def _validate(self, final: bool = False) -> EvalEvent:
        # Periodic validations score at most PERIODIC_VAL_CHARS characters so that a huge text's
        # validation part does not stall training; the final one scores all of it.
        result = self.evaluate_validation(self._val_limit(final))
        # a model scoring worse than an untrained one is never saved (raises if not finite)
        self._val_ok = self.guard.check_validation(self.step, result.loss, self.config.lr)
        self.history["val_step"].append(self.step)
        self.history["val_loss"].append(result.loss)
        self.history["val_accuracy"].append(result.accuracy)
        self.best_live_val = _lower(self.best_live_val, result.loss)
        loss, weights = result.loss, "live"
        if self.average is not None and self.average.ready():
            with self.average.applied():
                average = self.evaluate_validation(None if final else PERIODIC_VAL_CHARS).loss
            self.best_average_val = _lower(self.best_average_val, average)
            if average < loss:
                loss, weights = average, "average"
        best = self._val_ok and (self.best_val is None or loss < self.best_val)
        if best:
            self.best_val, self.evals_since_best, self.best_weights = loss, 0, weights
            if self.out is not None:
                last = self._summary(self.history["loss"][-1], self.history["accuracy"][-1], loss)
                self._save_weights(best_path(self.out), last, weights)
        else:
            self.evals_since_best += 1
        prompt = self.sample_prompt()
        sample = self._sample(prompt, PREVIEW_CHARS) if self.rank == 0 else ""
        return EvalEvent(self.step, result.loss, result.bits_per_char, result.accuracy, best, prompt, sample)

    # -- checkpoints ---------------------------------------------------------------------------

    def _summary(self, loss: float, accuracy: float, val_loss: float | None) -> dict:
        """The summary both checkpoints carry: the same fields, as of the step they are saved."""
        return {"loss": loss, "accuracy": accuracy, "val_loss": val_loss}

    def _save_latest(self, loss: float, accuracy: float, val_loss: float | None) -> None:
        if self.out is not None:
            self._save(self.out, self._summary(loss, accuracy, val_loss))
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
        same_run = self.resumed_from is not None and self.resumed_from.resolve() == self.out.resolve()
        if best.exists() and not same_run:
            best.unlink()

    def recorded_plan(self) -> dict | None:
        """The plan of this run: made now, or recorded by the checkpoint a resumed run continues."""
        if self.plan is not None:
            return self.plan.to_dict()
        return self._resumed_plan

    def provenance(self) -> dict:
        """Where the run came from and how it was run: recorded in every checkpoint it writes."""
        return {
            **self.origin,
            "charnext": __version__,
            "torch": str(torch.__version__),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processes": self.world,
            "threads": torch.get_num_threads() if self.device.type == "cpu" else None,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "schedule": self.schedule.to_dict(),
            "plan": self.recorded_plan(),
            "outlook": self._outlook_record(),
            "averaging": self.averaging(),
        }

    def _save_weights(self, path: Path, summary: dict, weights: str) -> None:
        """Write a checkpoint holding the live weights or their average (`weights`)."""
        if weights == "live":
            self._save(path, summary)
            return
        with self.average.applied():
            self._weights = "average"
            try:
                self._save(path, summary)
            finally:
                self._weights = "live"

    def averaging(self) -> dict | None:
        """The weight average: its settings, the weights the checkpoint being written holds
        ("live" or "average"), those of the best validation, and the best validation of each
        (None where the run keeps no average)."""
        if self.average is None:
            return None
        return {
            **WeightAverage.describe(),
            "weights": self._weights,
            "best_weights": self.best_weights,
            "best_val_loss_live": self.best_live_val,
            "best_val_loss_average": self.best_average_val,
        }

    def _save(self, path: Path, summary: dict) -> None:
        """Write a checkpoint (rank 0); every process must call it, to gather the state."""
        state = distributed.gather_rows(self.state, self.world) if self.state is not None else None
        if self.rank != 0:
            return
        self._clean_stale_best()
        save_run(self, path, summary, state)


# float32 copies of the weights a CPU run holds at once: the weights, their gradients and AdamW's
# two moments
TRAINING_COPIES = 4


def _check_memory(config: ModelConfig) -> None:
    """Refuse, in one line, a model whose training state cannot fit in this machine's memory
    (`--hidden-size 100000000`), before torch tries and fails to allocate it."""
    c = config
    count = parameters(c.cell, c.hidden_size, c.num_layers, c.vocab_size, c.embedding_size)
    need = count * 4 * TRAINING_COPIES
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: torch will say
        return
    if need > have:
        raise ConfigError(
            f"a {config.num_layers}x{config.hidden_size} {config.cell.value} model with embedding "
            f"{config.embedding_size} has {count:,} parameters, which need about "
            f"{need / 2**30:,.1f} GiB to train; this machine has {have / 2**30:,.1f} GiB"
        )


def _lower(best: float | None, loss: float) -> float | None:
    """The lower of a best loss so far (None: none yet) and a new one; a non-finite one never wins."""
    if not math.isfinite(loss):
        return best
    return loss if best is None or loss < best else best


def _copy_overlap(model: CharModel, state_dict: dict) -> None:
    """Load weights, copying the overlapping slice where a vocabulary grew (new rows stay new)."""
    own = model.state_dict()
    for name, src in state_dict.items():
        dst = own[name]
        if dst.shape == src.shape:
            dst.copy_(src)
        else:
            region = tuple(slice(0, min(a, b)) for a, b in zip(dst.shape, src.shape))
            dst[region].copy_(src[region])


@contextmanager
def stop_on_sigint(trainer: Trainer):
    """While active, the first Ctrl-C asks `trainer` to stop cleanly after the current step;
    a second one interrupts at once."""

    def handler(signum, frame):  # noqa: ARG001
        if trainer._stop_requested:
            raise KeyboardInterrupt
        trainer.stop()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
