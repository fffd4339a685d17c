"""The training loop: it runs steps, validates and saves, and reports through events.

Build a `Trainer` with `charnext.runs` (a new run, a resumed one, or one started from another
model's weights); then `for event in trainer.run(): ...` and read `trainer.result`. What the
run trains on is a corpus (`charnext.corpus`), when it ends and at which learning rate is its
schedule (`charnext.schedule`), and several processes talk through `charnext.distributed`.
"""

from __future__ import annotations

import math
import platform
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from charnext import __version__, distributed
from charnext import checkpoint as ckpt
from charnext.config import SampleConfig, TrainConfig
from charnext.corpus import make_corpus
from charnext.device import autocast, resolve_precision
from charnext.divergence import DivergenceGuard
from charnext.errors import TrainingDiverged
from charnext.events import EvalEvent, Event, ReportEvent, StepEvent, TrainResult
from charnext.inference import generate, read
from charnext.loss import sequence_loss
from charnext.metrics import MetricsLog, metrics_path
from charnext.model import CharModel, ModelConfig
from charnext.planner import Plan, dropout_for, weight_decay_for
from charnext.schedule import Schedule
from charnext.scoring import EvalResult
from charnext.vocab import Vocab

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
    ):
        """`text` is the training text, or the same already encoded with `vocab` (a 1-D integer
        tensor, possibly memory-mapped); `resume` is the checkpoint a resumed run continues;
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

        torch.manual_seed(config.seed)
        self.model = CharModel(model_config)
        if init_weights is not None:
            with torch.no_grad():
                _copy_overlap(self.model, init_weights)
        self.model.to(self.device).train()
        self.net = distributed.wrap(self.model, self.device, self.world)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            weight_decay=config.weight_decay,
            fused=self.device.type in ("cpu", "cuda"),
        )
        self.corpus = make_corpus(text, vocab, config, self.rank, self.world, vocab_counts)
        self.schedule = Schedule.plan(
            config, self.corpus.steps_per_epoch(), self.corpus.train_chars, self.chars_per_step
        )
        self.guard = DivergenceGuard(len(vocab))

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
        if resume is not None:
            self._restore(resume)
            if (
                self.out is not None
                and self.resumed_from is not None
                and self.out.resolve() == self.resumed_from.resolve()
            ):
                self._saved_step = self.step

    @classmethod
    def new(cls, *args, **kwargs) -> Trainer:
        """A fresh run: `charnext.runs.new_run`."""
        from charnext.runs import new_run

        return new_run(*args, **kwargs)

    @classmethod
    def resume(cls, *args, **kwargs) -> Trainer:
        """A resumed run: `charnext.runs.resume_run`."""
        from charnext.runs import resume_run

        return resume_run(*args, **kwargs)

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

    def total_steps(self) -> int | None:
        """Planned optimizer steps, or None when a time budget decides."""
        return self.schedule.total

    def _restore(self, raw: dict) -> None:
        r = raw["resume"]
        plan = (raw.get("provenance") or {}).get("plan")
        self._resumed_plan = plan if isinstance(plan, dict) else None
        self.model.load_state_dict(raw["state_dict"])
        if raw.get("optimizer"):
            self.optimizer.load_state_dict(raw["optimizer"])
        self.step = int(raw["step"])
        self.elapsed_before = float(r.get("elapsed", 0.0))
        self.history = {k: list(v) for k, v in (raw.get("history") or self.history).items()}
        self.best_val = r.get("best_val_loss")
        self.evals_since_best = int(r.get("evals_since_best", 0))
        self.skipped_steps = int(r.get("skipped_steps", 0))
        self.guard.restore(r.get("guard"))
        if isinstance(r.get("rng"), torch.Tensor):
            torch.set_rng_state(r["rng"])
        state = r.get("state")
        if isinstance(state, torch.Tensor) and self.corpus.carries_state:
            rows = self.corpus.rows
            # float: a state saved under bf16 also feeds a run resumed in fp32 (lossless back to bf16)
            self.state = state[:, rows].float().to(self.device) if state.size(1) == self.batch_size else None

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
                kept = f"{self.out} keeps step {self._saved_step}"
            raise TrainingDiverged(f"{e}; {kept}") from None
        finally:
            if log:
                log.close()
        return self.result

    def _run(self, log: MetricsLog | None) -> Iterator[Event]:
        plan = self.schedule
        has_val = self.corpus.has_validation()
        reason = "steps"
        last_val: float | None = self.history["val_loss"][-1] if self.history["val_loss"] else None
        # a session that makes no step reports the figures of the last one
        loss_value = self.history["loss"][-1] if self.history["loss"] else math.nan
        accuracy = self.history["accuracy"][-1] if self.history["accuracy"] else math.nan
        start = time.perf_counter()
        self._start = start
        session_start_step = self.step
        train_time = 0.0  # seconds in optimizer steps, this session
        rate_time, rate_chars, rate = 0.0, 0, 0.0  # the progress line's chars/s, over RATE_WINDOW
        last_eval_at, last_report_fraction = 0.0, 0.0
        while True:
            elapsed, stop = distributed.agree(
                self.elapsed_before + time.perf_counter() - start, self._stop_requested, self.world
            )
            if plan.done(self.step, elapsed):
                reason = plan.reason()
                break
            if stop:
                reason = "interrupted"
                break
            lr = plan.lr(self.step, elapsed)
            t0 = time.perf_counter()
            loss_value, accuracy, applied = self._train_step(lr)
            step_seconds = time.perf_counter() - t0
            train_time += step_seconds
            self.step += 1
            # raises TrainingDiverged, before anything diverged is saved
            self.guard.check(self.step, loss_value if applied else math.nan, self.config.lr)
            rate_time, rate_chars = rate_time + step_seconds, rate_chars + self.chars_per_step
            if rate_time >= RATE_WINDOW or not rate:
                rate, rate_time, rate_chars = rate_chars / max(rate_time, 1e-9), 0.0, 0
            elapsed = self.elapsed_before + time.perf_counter() - start
            for key, value in zip(("step", "loss", "accuracy", "lr"), (self.step, loss_value, accuracy, lr)):
                self.history[key].append(value)
            fraction = plan.fraction(self.step, elapsed)
            event = StepEvent(self.step, plan.total, fraction, loss_value, lr, rate, elapsed, last_val)
            if self.rank == 0:
                if log:
                    log.step(event, accuracy)
                yield event
            final = plan.done(self.step, elapsed)
            if plan.report_due(self.step, elapsed, last_report_fraction):
                last_report_fraction = fraction
                if self.rank == 0:
                    yield self._report(loss_value, accuracy)
            session = elapsed - self.elapsed_before
            if not plan.eval_seconds and not self.config.eval_every:  # the first is spaced too
                plan.eval_seconds = self._expected_eval_seconds(train_time, self.step - session_start_step)
            if has_val and not final and plan.eval_due(self.step, session - last_eval_at):
                eval_start = time.perf_counter()
                eval_event = self._validate()
                last_val = eval_event.val_loss
                # the latest state too, so that a run that dies later resumes from here
                if self._val_ok:
                    self._save_latest(loss_value, accuracy, last_val)
                plan.eval_seconds = time.perf_counter() - eval_start
                plan.last_eval_step = self.step
                last_eval_at = session + plan.eval_seconds
                if self.rank == 0:
                    if log:
                        log.validation(eval_event)
                    yield eval_event
                self._replan_regularisation(elapsed, self.step - session_start_step)
                if self.config.patience and self.evals_since_best >= self.config.patience:
                    reason = "patience"
                    break
        validated_here = bool(self.history["val_step"]) and self.history["val_step"][-1] == self.step
        if has_val and reason != "interrupted" and self.step > 0 and not validated_here:
            eval_event = self._validate(final=True)
            last_val = eval_event.val_loss
            if self.rank == 0:
                if log:
                    log.validation(eval_event)
                yield eval_event
        session_seconds = time.perf_counter() - start
        self.elapsed_before += session_seconds
        self._start = None
        if not self._val_ok:  # the last validation scored worse than an untrained model
            self.guard.refuse_to_save(self.step, last_val, self.config.lr)
        self._save_latest(loss_value, accuracy, last_val)
        session_chars = (self.step - session_start_step) * self.chars_per_step
        best = best_path(self.out) if self.out is not None else None
        self.result = TrainResult(
            steps=self.step,
            elapsed=self.elapsed_before,
            loss=loss_value,
            accuracy=accuracy,
            val_loss=last_val,
            best_val_loss=self.best_val,
            chars_per_sec=session_chars / train_time if train_time else 0.0,
            reason=reason,
            checkpoint=self.out if self.out is not None and self.out.exists() else None,
            best_checkpoint=best if best is not None and best.exists() else None,
            device=str(self.device),
            precision=self.precision,
            parameters=self.model.num_parameters(),
            train_chars=self.train_chars,
            val_chars=self.val_chars,
            train_time=train_time,
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            threads=torch.get_num_threads() if self.device.type == "cpu" else 0,
            metrics_log=log.path if log else None,
            skipped_steps=self.skipped_steps,
            plan=self.recorded_plan(),
            session_steps=self.step - session_start_step,
            session_elapsed=session_seconds,
        )
        return self.result

    def _replan_regularisation(self, elapsed: float, session_steps: int) -> None:
        """Under a time budget, set the planned dropout and weight decay again for the passes
        the run now expects to make at the speed measured so far: a machine slower or faster
        than the probe at the start gets the regularisation its real number of passes calls for."""
        plan = self.plan
        if plan is None or self.schedule.max_time is None:
            return
        if not {"dropout", "weight_decay"} & set(plan.planned):
            return
        session = elapsed - self.elapsed_before
        if not session_steps or session <= 0:
            return
        # chars per second of wall-clock time, validation and saving included
        rate = session_steps * self.chars_per_step / max(session, 1e-9)
        expected = self.step * self.chars_per_step + max(0.0, self.schedule.max_time - elapsed) * rate
        passes = expected / max(self.train_chars, 1)
        plan.passes = passes
        if "dropout" in plan.planned:
            plan.dropout = dropout_for(passes)
            self.model.set_dropout(plan.dropout)
        if "weight_decay" in plan.planned:
            plan.weight_decay = weight_decay_for(passes)
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
    def _report(self, loss: float, accuracy: float) -> ReportEvent:
        """The lecture's row: the model's argmax prediction for the corpus's fixed window."""
        x, y = self.corpus.window
        self.model.eval()
        # read as predict reads it: from the corpus's start (a line after its newline)
        logits, _ = read(self.model, self.vocab, self.vocab.decode(x), self.corpus.start)  # (1, T, V)
        self.model.train()
        pred = self.vocab.decode(logits[0].argmax(-1))
        return ReportEvent(self.step, loss, accuracy, pred, self.vocab.decode(y))

    def sample_prompt(self) -> str:
        """The prompt the previews continue: --sample-prompt, else the corpus's own."""
        if self.config.sample_prompt is not None:
            return self.config.sample_prompt
        return self.corpus.sample_prompt()

    def _sample(self, prompt: str, length: int) -> str:
        """A preview: `length` characters sampled after `prompt` with a fixed seed."""
        self.model.eval()
        sample = SampleConfig(temperature=self.config.sample_temperature, seed=PREVIEW_SEED)
        steps = generate(
            self.model,
            self.vocab,
            prompt,
            length,
            sample,
            stop=self.corpus.preview_stop,
            start=self.corpus.start,
        )
        chars = [step[0] for step in steps]
        self.model.train()
        return "".join(chars)

    def _val_limit(self, final: bool) -> int | None:
        """Characters a validation scores at most (None: all): periodic ones PERIODIC_VAL_CHARS;
        under a step budget, also no more than VAL_CHARS_PER_RUN_CHAR of the run's characters."""
        limit = None if final else PERIODIC_VAL_CHARS
        if self.schedule.total is not None:
            cap = max(MIN_VAL_CHARS, int(VAL_CHARS_PER_RUN_CHAR * self.schedule.total * self.chars_per_step))
            limit = cap if limit is None else min(limit, cap)
        return limit

    def _expected_eval_seconds(self, train_time: float, session_steps: int) -> float:
        """Before the first validation: what one should take, from the speed of training."""
        if not train_time or not session_steps:
            return 0.0
        rate = session_steps * self.chars_per_step / train_time  # training characters per second
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
        best = self._val_ok and (self.best_val is None or result.loss < self.best_val)
        if best:
            self.best_val, self.evals_since_best = result.loss, 0
            if self.out is not None:
                last = self._summary(self.history["loss"][-1], self.history["accuracy"][-1], result.loss)
                self._save(best_path(self.out), last)
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
        }

    def _save(self, path: Path, summary: dict) -> None:
        """Write a checkpoint (rank 0); every process must call it, to gather the state."""
        state = self.state
        if state is not None:
            state = distributed.gather_rows(state, self.world)
        if self.rank != 0:
            return
        self._clean_stale_best()
        elapsed = self.elapsed()
        ckpt.save(
            path,
            self.model,
            self.vocab,
            # the batch and window as used, not None ("default"), so the record says what ran
            train_config={**self.config.to_dict(), "batch_size": self.batch_size},
            step=self.step,
            optimizer=self.optimizer.state_dict(),
            history=self.history,
            text=self.text_fingerprint,
            source=self.origin.get("source"),
            provenance=self.provenance(),
            metrics_log=metrics_path(self.out).name if self.out is not None else None,
            vocab_counts=self.corpus.vocab_counts,
            line_index=self.corpus.line_index,
            start=self.corpus.start.to_dict(),
            summary={
                "device": str(self.device),
                "precision": self.precision,
                "elapsed": elapsed,
                "best_val_loss": self.best_val,
                "train_chars": self.train_chars,
                "val_chars": self.val_chars,
                "seq_len": self.seq_len,
                "batch_size": self.batch_size,
                "skipped_steps": self.skipped_steps,
                **summary,
            },
            resume={
                "rng": torch.get_rng_state(),
                "state": state,
                "elapsed": elapsed,
                "best_val_loss": self.best_val,
                "evals_since_best": self.evals_since_best,
                "skipped_steps": self.skipped_steps,
                "guard": self.guard.to_dict(),
            },
        )


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
