"""The training loop. It reports through small event dataclasses and never prints."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from charnext import checkpoint as ckpt
from charnext import distributed
from charnext.config import TrainConfig
from charnext.data import LineBatches, StreamBatches, fingerprint, line_index, split_stream, text_lines
from charnext.device import autocast, resolve_precision
from charnext.errors import ConfigError, TextError, UnknownCharactersError
from charnext.evaluate import EvalResult, evaluate_lines, evaluate_stream
from charnext.inference import SampleConfig, generate
from charnext.loss import sequence_loss
from charnext.model import CharModel, ModelConfig
from charnext.prepare import PreparedData
from charnext.vocab import Vocab, count_indices, require_text

NEWLINE = "\n"
# Default batches, measured on tinyshakespeare (README, "Training on real text"): in a short
# budget more, smaller steps learn faster than fewer large ones (16x64 windows reached 1.485
# nats/char in 90 s where 64x128 reached 1.727). Lines are short, so a line batch holds more.
DEFAULT_BATCH = 16
DEFAULT_LINE_BATCH = 64
PERIODIC_VAL_CHARS = 2_000_000  # characters scored at each validation during training


# ---------------------------------------------------------------------------------------------
# Events: what the loop reports. The front end decides how to show them.


@dataclass
class StepEvent:
    """After every optimizer step."""

    step: int  # steps done
    total: int | None  # planned steps (None under a time budget)
    fraction: float  # share of the run done, 0..1
    loss: float  # training loss of this step, nats/char
    lr: float  # learning rate used
    chars_per_sec: float  # training throughput over recent steps
    elapsed: float  # seconds since training started (this session)
    val_loss: float | None  # latest validation loss


@dataclass
class ReportEvent:
    """A row of the lecture's table: loss, accuracy and decoded prediction of a fixed window."""

    step: int
    loss: float  # training loss at this step
    accuracy: float  # next-character accuracy on the step's batch
    prediction: str  # decoded argmax prediction for the window
    target: str  # the window's true next characters


@dataclass
class EvalEvent:
    """After each validation."""

    step: int
    val_loss: float  # nats/char on the validation part
    val_bpc: float  # bits/char
    val_accuracy: float
    best: bool  # a new best validation loss (the best checkpoint was written)
    prompt: str  # the fixed prompt of the sample
    sample: str  # a short continuation of the prompt


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports."""

    steps: int  # total optimizer steps of the run, resumed ones included
    elapsed: float  # seconds of training, resumed sessions included
    loss: float  # last training loss
    accuracy: float  # accuracy on the last batch
    val_loss: float | None  # final validation loss
    best_val_loss: float | None
    chars_per_sec: float  # training throughput of this session
    reason: str  # "steps", "max-time", "patience" or "interrupted"
    checkpoint: Path | None  # the latest checkpoint
    best_checkpoint: Path | None  # the best-by-validation checkpoint, if one was written
    device: str
    precision: str
    parameters: int
    train_chars: int
    val_chars: int

    def to_dict(self) -> dict:
        """Plain values, for JSON."""
        d = asdict(self)
        d["checkpoint"] = str(self.checkpoint) if self.checkpoint else None
        d["best_checkpoint"] = str(self.best_checkpoint) if self.best_checkpoint else None
        return d


Event = StepEvent | ReportEvent | EvalEvent


def best_path(out: Path) -> Path:
    """Where the best-by-validation checkpoint goes: `checkpoint.pt` -> `checkpoint.best.pt`."""
    return out.with_name(f"{out.stem}.best{out.suffix or '.pt'}")


def default_steps(train_chars: int, chars_per_step: int) -> int:
    """Steps when none are asked for: about 10 passes over the text, within [60, 3000]."""
    return int(min(3000, max(60, math.ceil(10 * train_chars / chars_per_step))))


def lr_at(config: TrainConfig, step: int, fraction: float) -> float:
    """Linear warm-up over warmup_steps, then cosine decay to min_lr_ratio at fraction 1."""
    peak = config.lr
    if step < config.warmup_steps:
        return peak * (step + 1) / (config.warmup_steps + 1)
    f = min(max(fraction, 0.0), 1.0)
    floor = peak * config.min_lr_ratio
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * f))


def _distributed() -> tuple[int, int]:
    """(rank, world size) when running under torch.distributed, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


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


class Trainer:
    """Trains a CharModel on a text; `run()` yields events and returns a TrainResult.

    Build it with `Trainer.new(...)` for a fresh run, `Trainer.resume(...)` to continue a
    checkpointed run, or `Trainer.new(..., init_from=...)` to start from a model's weights.
    """

    def __init__(
        self,
        text: str | torch.Tensor,
        vocab: Vocab,
        model_config: ModelConfig,
        config: TrainConfig,
        out: Path | None,
        resume: dict | None = None,
        init_weights: dict | None = None,
        text_fingerprint: dict | None = None,
        vocab_counts: list[int] | None = None,
    ):
        """`text` is the training text, or the same already encoded with `vocab` (a 1-D integer
        tensor, possibly memory-mapped), in which case `text_fingerprint` describes it and
        `vocab_counts` may spare a pass over it."""
        self.config = config
        self.vocab = vocab
        self.out = Path(out) if out is not None else None
        self.rank, self.world = _distributed()
        self.device = distributed.process_device(config.device, self.world)
        self.precision = resolve_precision(config.precision, self.device, model_config.cell)
        self._stop_requested = False
        self._start: float | None = None  # perf_counter at the start of this session's loop
        self.text_fingerprint = text_fingerprint or fingerprint(text)

        torch.manual_seed(config.seed)
        self.model = CharModel(model_config)
        if init_weights is not None:
            with torch.no_grad():
                _copy_overlap(self.model, init_weights)
        self.model.to(self.device).train()
        self.net: torch.nn.Module = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            weight_decay=config.weight_decay,
            fused=self.device.type in ("cpu", "cuda"),
        )
        self._prepare_data(text, vocab_counts)

        self.step = 0
        self.elapsed_before = 0.0  # seconds trained in earlier sessions of this run
        self.history: dict[str, list] = {
            "step": [], "loss": [], "accuracy": [], "lr": [],
            "val_step": [], "val_loss": [], "val_accuracy": [],
        }  # fmt: skip
        self.best_val: float | None = None
        self.evals_since_best = 0
        self.state: torch.Tensor | None = None  # carried recurrent state (stream mode)
        if resume is not None:
            self._restore(resume)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def new(
        cls,
        text: str | PreparedData,
        model_config: ModelConfig | None = None,
        config: TrainConfig | None = None,
        out: str | Path | None = "checkpoint.pt",
        init_from: str | Path | None = None,
        extend_vocab: bool = False,
        **model_options,
    ) -> Trainer:
        """A fresh run on `text` (its vocabulary built from it), or from `init_from`'s weights.

        `text` may also be a prepared corpus (`charnext.prepare.load_prepared`), which brings
        its own vocabulary and is read from its memory-mapped file, never loaded whole.
        `model_options` (cell, hidden_size, ...) build the ModelConfig when none is given.
        """
        config = config or TrainConfig()
        if isinstance(text, PreparedData):
            if init_from is not None:
                raise ConfigError("--init-from trains on a text (--file), not on prepared data (--data)")
            if config.lines:
                raise ConfigError("line mode trains on a text (--file), not on prepared data (--data)")
            vocab = text.vocab
            options = model_config.to_dict() if model_config is not None else model_options
            model_config = ModelConfig(**{**options, "vocab_size": len(vocab)})
            return cls(
                text.tokens, vocab, model_config, config, Path(out) if out else None,
                text_fingerprint=text.fingerprint, vocab_counts=text.counts,
            )  # fmt: skip
        require_text(text)
        init_weights = None
        if init_from is not None:
            raw = ckpt.load_raw(init_from)
            vocab = Vocab(tuple(raw["vocab"]))
            unknown = vocab.unknown(text + (NEWLINE if config.lines else ""))
            if unknown and not extend_vocab:
                raise UnknownCharactersError(
                    vocab.unknown_message(unknown) + " (add --extend-vocab to grow it)", unknown
                )
            vocab = Vocab(vocab.chars + tuple(unknown))
            model_config = ModelConfig(**{**raw["model_config"], "vocab_size": len(vocab)})
            init_weights = raw["state_dict"]
        else:
            vocab = Vocab.from_text(text + NEWLINE if config.lines and NEWLINE not in text else text)
            if model_config is None:
                model_config = ModelConfig(vocab_size=len(vocab), **model_options)
            elif model_config.vocab_size != len(vocab):
                model_config = ModelConfig(**{**model_config.to_dict(), "vocab_size": len(vocab)})
        return cls(text, vocab, model_config, config, Path(out) if out else None, None, init_weights)

    @classmethod
    def resume(
        cls,
        path: str | Path,
        text: str | torch.Tensor | PreparedData,
        out: str | Path | None = None,
        text_fingerprint: dict | None = None,
        **overrides,
    ) -> Trainer:
        """Continue the run saved in `path` on the same text; `overrides` may change
        steps, epochs, max_time, patience or device. The model, optimizer, schedule, step,
        random state and position in the data continue where they stopped."""
        raw = ckpt.load_raw(path)
        if not isinstance(raw.get("resume"), dict) or not isinstance(raw.get("train_config"), dict):
            raise ConfigError(f"{path} holds no resumable training state; use --init-from")
        counts = None
        if isinstance(text, PreparedData):
            text.require_vocab(raw["vocab"], path)
            text, text_fingerprint, counts = text.tokens, text.fingerprint, text.counts
        fp = text_fingerprint or fingerprint(text)
        if raw.get("text") and raw["text"].get("sha256") != fp["sha256"]:
            raise TextError(
                f"the text differs from the one {path} was trained on "
                f"({raw['text'].get('length')} characters); to train further on another text, "
                "use --init-from"
            )
        allowed = {"steps", "epochs", "max_time", "patience", "device", "eval_every"}
        bad = set(overrides) - allowed
        if bad:
            raise ConfigError(f"cannot change {', '.join(sorted(bad))} when resuming")
        config = TrainConfig.from_dict(
            {**raw["train_config"], **{k: v for k, v in overrides.items() if v is not None}}
        )
        vocab = Vocab(tuple(raw["vocab"]))
        model_config = ModelConfig(**raw["model_config"])
        return cls(
            text, vocab, model_config, config, Path(out or path), resume=raw, text_fingerprint=fp,
            vocab_counts=counts,
        )  # fmt: skip

    def _prepare_data(self, text: str | torch.Tensor, vocab_counts: list[int] | None = None) -> None:
        c = self.config
        self.lines_mode = c.lines
        if c.lines:
            if isinstance(text, torch.Tensor):
                raise ConfigError("line mode trains on a text, not on prepared data")
            lines = text_lines(text)
            if len(lines) < 1:
                raise TextError("line mode needs at least one non-empty line")
            val_fraction = (
                c.val_fraction if c.val_fraction is not None else (0.1 if len(lines) >= 100 else 0.0)
            )
            n_val = int(len(lines) * val_fraction)
            # Lines are independent samples, and line files are often sorted (by frequency,
            # alphabetically), so the held-out lines are a seeded random 10%, as makemore's
            # test set is, not the last ones, which would all be the rarest or the z's.
            order = torch.randperm(len(lines), generator=torch.Generator().manual_seed(c.seed))
            held_out = set(order[:n_val].tolist())
            train_text = [line for i, line in enumerate(lines) if i not in held_out]
            val_text = [line for i, line in enumerate(lines) if i in held_out]
            self.train_lines = [self.vocab.encode(line) for line in train_text]
            self.val_lines = [self.vocab.encode(line) for line in val_text]
            encoded = self.train_lines + self.val_lines
            # lets `predict` say whether a generated line is new or one of the training lines
            self.line_index = line_index(train_text) if len(lines) <= 2_000_000 else None
            self.boundary = self.vocab.chars.index(NEWLINE)
            wanted = c.batch_size or DEFAULT_LINE_BATCH
            self.batch_size = max(self.world, wanted // self.world * self.world)
            self.batches = LineBatches(
                self.train_lines, self.boundary, self.batch_size, c.seed, self.rank, self.world
            )
            counts = torch.bincount(torch.cat(encoded).long(), minlength=len(self.vocab))
            counts[self.boundary] += len(encoded)
            self.vocab_counts = counts.tolist()
            self.train_chars = sum(len(x) + 1 for x in self.train_lines)
            self.val_chars = sum(len(x) + 1 for x in self.val_lines)
            self.seq_len = max(len(x) for x in self.train_lines) + 1
            # the lecture's view: the first training line, read after a newline from the zero state
            nl = torch.tensor([self.boundary], dtype=self.train_lines[0].dtype)
            seq = torch.cat([nl, self.train_lines[0], nl])[:25]
            self.window = (seq[:-1], seq[1:])
            return
        data = text if isinstance(text, torch.Tensor) else self.vocab.encode(text)
        self.vocab_counts = vocab_counts or count_indices(data, len(self.vocab))
        val_fraction = c.val_fraction if c.val_fraction is not None else (0.1 if len(data) >= 10_000 else 0.0)
        self.train_data, self.val_data = split_stream(data, val_fraction)
        n = len(self.train_data)
        if n < 2:
            raise TextError("the training part of the text is shorter than 2 characters")
        # Short texts: shrink the window, then the batch, so that one step fits in the text.
        self.seq_len = min(c.seq_len, n - 1)
        batch = max(1, min(c.batch_size or DEFAULT_BATCH, (n - 1) // self.seq_len))
        if self.world > 1:
            batch = max(self.world, batch // self.world * self.world)
            if self.seq_len * batch > n - 1:
                raise TextError(f"the text is too short to give each of {self.world} processes a window")
        self.batch_size = batch
        self.batches = StreamBatches(
            self.train_data, batch, self.seq_len, c.seed, c.random_windows, self.rank, self.world
        )
        self.train_chars, self.val_chars = n, len(self.val_data)
        # the lecture's view: a fixed window at the start of the training text
        w = min(n - 1, 24)
        self.window = (self.train_data[:w], self.train_data[1 : w + 1])

    def _restore(self, raw: dict) -> None:
        r = raw["resume"]
        self.model.load_state_dict(raw["state_dict"])
        if raw.get("optimizer"):
            self.optimizer.load_state_dict(raw["optimizer"])
        self.step = int(raw["step"])
        self.elapsed_before = float(r.get("elapsed", 0.0))
        self.history = {k: list(v) for k, v in (raw.get("history") or self.history).items()}
        self.best_val = r.get("best_val_loss")
        self.evals_since_best = int(r.get("evals_since_best", 0))
        if isinstance(r.get("rng"), torch.Tensor):
            torch.set_rng_state(r["rng"])
        state = r.get("state")
        if isinstance(state, torch.Tensor) and not self.lines_mode:
            rows = self.batches.rows
            self.state = state[:, rows].to(self.device) if state.size(1) == self.batch_size else None

    # -- the run ------------------------------------------------------------------------------

    def total_steps(self) -> int | None:
        """Planned optimizer steps, or None when a time budget decides."""
        c = self.config
        if c.steps is not None:
            return c.steps
        if c.epochs is not None:
            return max(1, math.ceil(c.epochs * self.batches.windows_per_epoch()))
        if c.max_time is not None:
            return None
        return default_steps(self.train_chars, self.batch_size * self.seq_len)

    def stop(self) -> None:
        """Ask the run to stop after the step in progress and save a resumable checkpoint."""
        self._stop_requested = True

    def run(self) -> Iterator[Event]:
        """Train; yield events as it goes; return (via StopIteration.value) a TrainResult.

        Use `for event in trainer.run(): ...` and then `trainer.result`.
        """
        c = self.config
        total = self.total_steps()
        has_val = (len(self.val_lines) if self.lines_mode else len(self.val_data)) > 1
        eval_every = c.eval_every or self._auto_eval_every(total)
        report_marks = self._report_steps(total)
        reason = "steps"
        last_val: float | None = self.history["val_loss"][-1] if self.history["val_loss"] else None
        loss_value, accuracy = float("nan"), float("nan")
        start = time.perf_counter()
        rate_t, rate_chars, rate = start, 0, 0.0
        next_time_eval = c.max_time / 10 if c.max_time else None
        next_time_report = 1
        chars_per_step = self.batch_size * self.seq_len  # over all processes

        session_start_step = self.step
        self._start = start
        step_time = 0.0
        while True:
            elapsed, stop = self._agree(self.elapsed_before + time.perf_counter() - start)
            if total is not None and self.step >= total:
                break
            if total is None and c.max_time is not None and elapsed >= c.max_time:
                reason = "max-time"
                break
            if stop:
                reason = "interrupted"
                break
            fraction = self.step / total if total else elapsed / c.max_time
            lr = lr_at(c, self.step, fraction)
            t0 = time.perf_counter()
            loss_value, accuracy = self._train_step(lr)
            now = time.perf_counter()
            step_time += now - t0
            self.step += 1
            rate_chars += chars_per_step
            if now - rate_t >= 2.0:  # throughput over the last couple of seconds
                rate, rate_t, rate_chars = rate_chars / (now - rate_t), now, 0
            elapsed = self.elapsed_before + now - start
            self.history["step"].append(self.step)
            self.history["loss"].append(loss_value)
            self.history["accuracy"].append(accuracy)
            self.history["lr"].append(lr)
            fraction = self.step / total if total else min(1.0, elapsed / c.max_time)
            if self.rank == 0:
                yield StepEvent(self.step, total, fraction, loss_value, lr,
                                rate or rate_chars / max(now - rate_t, 1e-9), elapsed, last_val)  # fmt: skip
            final = (total is not None and self.step >= total) or (total is None and elapsed >= c.max_time)
            if (total is not None and self.step in report_marks) or (
                total is None and (fraction * 12 >= next_time_report or final or self.step == 1)
            ):
                if total is None and self.step > 1:
                    next_time_report = math.floor(fraction * 12) + 1
                if self.rank == 0:
                    yield self._report(loss_value, accuracy)
            due_eval = (
                self.step % eval_every == 0
                if next_time_eval is None
                else elapsed - self.elapsed_before >= next_time_eval
            )
            if has_val and due_eval and not final:
                if next_time_eval is not None:
                    next_time_eval += c.max_time / 10
                event = self._validate()
                last_val = event.val_loss
                # the latest state too, so that a run that dies later resumes from here
                self._save_latest(loss_value, accuracy, last_val)
                if self.rank == 0:
                    yield event
                if c.patience and self.evals_since_best >= c.patience:
                    reason = "patience"
                    break
        train_time = time.perf_counter() - start
        elapsed = self.elapsed_before + train_time
        if has_val and reason != "interrupted" and self.step > 0:
            event = self._validate(final=True)
            last_val = event.val_loss
            if self.rank == 0:
                yield event
        self.elapsed_before = elapsed
        self._start = None
        session_chars = (self.step - session_start_step) * chars_per_step
        self._save_latest(loss_value, accuracy, last_val)
        best = best_path(self.out) if self.out is not None and self.best_val is not None else None
        self.result = TrainResult(
            steps=self.step,
            elapsed=elapsed,
            loss=loss_value,
            accuracy=accuracy,
            val_loss=last_val,
            best_val_loss=self.best_val,
            chars_per_sec=session_chars / step_time if step_time else 0.0,
            reason=reason,
            checkpoint=self.out,
            best_checkpoint=best,
            device=str(self.device),
            precision=self.precision,
            parameters=self.model.num_parameters(),
            train_chars=self.train_chars,
            val_chars=self.val_chars,
        )
        return self.result

    def _agree(self, elapsed: float) -> tuple[float, bool]:
        """(elapsed, stop requested) as every process sees them, so that all stop together."""
        stop = self._stop_requested
        if self.world > 1:
            flags = torch.tensor([elapsed, float(stop)], dtype=torch.float64)
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            elapsed, stop = float(flags[0]), bool(flags[1])
        return elapsed, stop

    def elapsed(self) -> float:
        """Seconds trained so far in this run, earlier sessions included."""
        start = getattr(self, "_start", None)
        return self.elapsed_before + (time.perf_counter() - start if start is not None else 0.0)

    def _auto_eval_every(self, total: int | None) -> int:
        return max(1, (total or 1000) // 10)

    @staticmethod
    def _report_steps(total: int | None, rows: int = 12) -> set[int]:
        if total is None:
            return set()
        return {1, total} | {max(1, round(total * i / (rows - 1))) for i in range(1, rows - 1)}

    def _train_step(self, lr: float) -> tuple[float, float]:
        """One optimizer step; returns (loss, accuracy) of its batch."""
        batch = self.batches.batch(self.step)
        x = batch.x.to(self.device, non_blocking=True).long()
        y = batch.y.to(self.device, non_blocking=True).long()
        weights = batch.weights.to(self.device) if batch.weights is not None else None
        state = None if batch.reset or self.config.random_windows else self.state
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
            total = real.detach().clone().reshape(1)
            torch.distributed.all_reduce(total)
            loss = loss * (real * self.world / total[0])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        if not self.lines_mode and not self.config.random_windows:
            self.state = new_state.detach()
        with torch.no_grad():
            hits = (logits.argmax(-1) == y).float()
            accuracy = (
                float((hits * weights).sum() / weights.sum()) if weights is not None else float(hits.mean())
            )
        if self.world > 1:  # report the whole global batch, as one process would
            real = float(weights.sum()) if weights is not None else float(y.numel())
            return self._global_mean(mean_loss.item(), accuracy, real)
        return loss.item(), accuracy

    def _global_mean(self, loss: float, accuracy: float, weight: float) -> tuple[float, float]:
        """Loss and accuracy over all processes, each process's figures weighted by `weight`."""
        sums = torch.tensor([loss * weight, accuracy * weight, weight], dtype=torch.float64)
        torch.distributed.all_reduce(sums)
        return float(sums[0] / sums[2]), float(sums[1] / sums[2])

    @torch.no_grad()
    def _report(self, loss: float, accuracy: float) -> ReportEvent:
        if self.window is None:  # line mode: a generated line shows progress instead
            sample = self._sample("", 40)
            return ReportEvent(self.step, loss, accuracy, sample, "")
        x, y = self.window
        self.model.eval()
        with autocast(self.device, self.precision):
            logits, _ = self.model(x.long().to(self.device)[None])
        self.model.train()
        pred = self.vocab.decode(logits[0].argmax(-1))
        return ReportEvent(self.step, loss, accuracy, pred, self.vocab.decode(y))

    def sample_prompt(self) -> str:
        """The fixed prompt that evaluation samples continue: the text's first line, cut short."""
        if self.lines_mode:
            return ""
        head = self.vocab.decode(self.train_data[:32])
        return head.split(NEWLINE)[0][:24] or head[:1]

    def _sample(self, prompt: str, length: int) -> str:
        self.model.eval()
        stop = NEWLINE if self.lines_mode else None
        chars = [
            step[0]
            for step in generate(
                self.model, self.vocab, prompt, length, SampleConfig(temperature=0.8, seed=1234), stop=stop
            )
        ]
        self.model.train()
        return "".join(chars)

    def evaluate_validation(self, limit: int | None = None) -> EvalResult:
        """Loss and accuracy on the held-out part, state carried through it; with `limit`, on
        about its first `limit` characters only.

        With several processes each scores its share of the part and all get the total.
        """
        rank, world = self.rank, self.world
        if self.lines_mode:
            val_lines = self.val_lines if limit is None else self.val_lines[: limit // 16]
            result = evaluate_lines(
                self.model, val_lines[rank::world], self.boundary, device=self.device,
                precision=self.precision,
            )  # fmt: skip
        else:
            val_data = self.val_data if limit is None else self.val_data[: limit + 1]
            result = evaluate_stream(
                self.model, val_data, device=self.device, precision=self.precision, part=(rank, world)
            )
        if world == 1:
            return result
        n = result.characters
        loss, accuracy = (result.loss, result.accuracy) if n else (0.0, 0.0)
        sums = torch.tensor([loss * n, accuracy * n, n], dtype=torch.float64)
        torch.distributed.all_reduce(sums)
        total = int(sums[2])
        if not total:
            return EvalResult(float("nan"), float("nan"), 0)
        return EvalResult(float(sums[0] / total), float(sums[1] / total), total)

    def _validate(self, final: bool = False) -> EvalEvent:
        # Periodic validations score at most PERIODIC_VAL_CHARS characters so that a huge text's
        # validation part does not stall training; the final one scores all of it.
        result = self.evaluate_validation(None if final else PERIODIC_VAL_CHARS)
        self.history["val_step"].append(self.step)
        self.history["val_loss"].append(result.loss)
        self.history["val_accuracy"].append(result.accuracy)
        best = self.best_val is None or result.loss < self.best_val
        if best:
            self.best_val, self.evals_since_best = result.loss, 0
            if self.out is not None:
                self._save(best_path(self.out), summary_extra={"val_loss": result.loss})
        else:
            self.evals_since_best += 1
        prompt = self.sample_prompt()
        sample = self._sample(prompt, 80) if self.rank == 0 else ""
        return EvalEvent(self.step, result.loss, result.bits_per_char, result.accuracy, best, prompt, sample)

    # -- checkpoints ---------------------------------------------------------------------------

    def _save_latest(self, loss: float, accuracy: float, val_loss: float | None) -> None:
        if self.out is not None:
            self._save(self.out, summary_extra={"loss": loss, "accuracy": accuracy, "val_loss": val_loss})

    def _save(self, path: Path, summary_extra: dict) -> None:
        """Write a checkpoint (rank 0); every process must call it, to gather the state."""
        state = self.state
        if state is not None and self.world > 1:
            gathered = [torch.zeros_like(state) for _ in range(self.world)]
            torch.distributed.all_gather(gathered, state.contiguous())
            state = torch.cat(gathered, dim=1)
        if self.rank != 0:
            return
        elapsed = self.elapsed()
        ckpt.save(
            path,
            self.model,
            self.vocab,
            train_config=self.config.to_dict(),
            step=self.step,
            optimizer=self.optimizer.state_dict(),
            history=self.history,
            text=self.text_fingerprint,
            vocab_counts=self.vocab_counts,
            line_index=getattr(self, "line_index", None),
            summary={
                "device": str(self.device),
                "precision": self.precision,
                "elapsed": elapsed,
                "best_val_loss": self.best_val,
                "train_chars": self.train_chars,
                "val_chars": self.val_chars,
                "seq_len": self.seq_len,
                "batch_size": self.batch_size,
                **summary_extra,
            },
            resume={
                "rng": torch.get_rng_state(),
                "state": state,
                "elapsed": elapsed,
                "best_val_loss": self.best_val,
                "evals_since_best": self.evals_since_best,
            },
        )


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
