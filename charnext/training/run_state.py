"""A run's state in its checkpoint: what `save_run` writes and `restore_run` reads back, side by
side, so that a field added to one is seen beside the other. A resumed run continues bitwise
where the saved one stopped: the weights, the optimizer, the step, the random state, the
carried recurrent state, the history, the best validation and the divergence guard.

Both take the `charnext.training.trainer.Trainer` whose run it is (not imported here: the
trainer imports this module)."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from charnext.config import ModelConfig, TrainConfig
from charnext.errors import CheckpointError, ConfigError
from charnext.events import TrainResult
from charnext.modeling.numpy_model import parameter_shapes
from charnext.storage import checkpoint as ckpt
from charnext.storage.metrics import MetricsLog, metrics_path
from charnext.text.paths import shown_path
from charnext.training import distributed
from charnext.training.averaging import WeightAverage
from charnext.training.optim import check_state_dict
from charnext.training.state import RunState, Session
from charnext.version import __version__


def best_path(out: Path) -> Path:
    """Where the best-by-validation checkpoint goes: `checkpoint.pt` -> `checkpoint.best.pt`."""
    return out.with_name(f"{out.stem}.best{out.suffix or '.pt'}")


def save_run(trainer, path: Path, summary: dict, state: torch.Tensor | None) -> None:
    """Write `trainer`'s run to `path`: the model and everything a resumed run needs, with
    `summary` (the latest figures) and `state` (the carried state, gathered from every process)."""
    t, rec = trainer, trainer.record
    resume = rec.to_resume()
    ckpt.save(
        path,
        t.model,
        t.vocab,
        # the batch and window as used, not None ("default"), so the record says what ran
        train_config={**t.config.to_dict(), "batch_size": t.batch_size},
        step=rec.step,
        optimizer=t.optimizer.state_dict(),
        history=rec.history,
        text=t.text_fingerprint,
        source=t.origin.get("source"),
        provenance=t.provenance(),
        metrics_log=metrics_path(t.out).name if t.out is not None else None,
        vocab_counts=t.corpus.vocab_counts,
        line_index=t.corpus.line_index,
        start=t.corpus.start.to_dict(),  # where every engine starts reading (the prime)
        summary={
            "device": str(t.device),
            "precision": t.precision,
            "elapsed": resume["elapsed"],
            "best_val_loss": rec.best_val_loss,
            "train_chars": t.train_chars,
            "val_chars": t.val_chars,
            "seq_len": t.seq_len,
            "batch_size": t.batch_size,
            "skipped_steps": rec.skipped_steps,
            **summary,
        },
        # the run's record in one step, with the objects the loop also continues
        resume={
            **resume,
            "rng": torch.get_rng_state(),
            "state": state,
            "guard": t.guard.to_dict(),
            "average": t.average.state() if t.average is not None else None,
        },
    )


def restore_run(trainer, raw: dict) -> None:
    """Set `trainer` (just built from the same configs) to the run saved in `raw`, a loaded
    checkpoint: its record in one step, then the model, the optimizer and the objects beside it."""
    t, r = trainer, raw["resume"]
    plan = (raw.get("provenance") or {}).get("plan")
    t._resumed_plan = plan if isinstance(plan, dict) else None
    t.record = RunState.from_checkpoint(raw)
    t.model.load_state_dict(raw["state_dict"])
    if raw.get("optimizer"):
        t.optimizer.load_state_dict(raw["optimizer"])
    t.guard.restore(r.get("guard"))
    if t.average is not None:
        t.average.restore(r.get("average"))
    if isinstance(r.get("rng"), torch.Tensor):
        torch.set_rng_state(r["rng"])
    state = r.get("state")
    if isinstance(state, torch.Tensor) and t.corpus.carries_state:
        # float: a state saved under bf16 also feeds a run resumed in fp32 (lossless back to bf16)
        t.carried = state[:, t.corpus.rows].float().to(t.device) if state.size(1) == t.batch_size else None


def provenance(trainer) -> dict:
    """Where the run came from and how it was run: recorded in every checkpoint it writes,
    with the periodic checks' sample and its noise."""
    t, rec = trainer, trainer.record
    return {
        **t.origin,
        "charnext": __version__,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processes": t.world,
        "threads": torch.get_num_threads() if t.device.type == "cpu" else None,
        "batch_size": t.batch_size,
        "seq_len": t.seq_len,
        "schedule": t.schedule.to_dict(),
        "plan": t.recorded_plan(),
        "outlook": t._outlook_record(),
        "averaging": t.averaging(),
        "validation": {
            "sample_chars": rec.val_sample_chars,  # what each periodic check scores, the same each time
            "sample_stderr": rec.val_sample_stderr,  # the standard error of its mean loss, nats/char
            "val_chars": t.val_chars,  # what the final check scores
            "checks": len(rec.history["val_step"]),
            "cut_short": rec.cut_short,  # run seconds where the curve ended the run (training/budget.py)
        },
    }


def run_result(trainer, session: Session, log: MetricsLog | None) -> TrainResult:
    """What the run reports at its end (or stop): the session's figures and the whole run's."""
    rec = trainer.record
    session_chars = (rec.step - session.start_step) * trainer.chars_per_step
    best = best_path(trainer.out) if trainer.out is not None else None
    final, best_all = trainer._final
    return TrainResult(
        steps=rec.step,
        elapsed=rec.elapsed,
        loss=session.loss,
        accuracy=session.accuracy,
        val_loss=final if final is not None else session.last_val,
        best_val_loss=best_all if best_all is not None else rec.best_val_loss,
        chars_per_sec=session_chars / session.train_time if session.train_time else 0.0,
        reason=session.reason,
        checkpoint=trainer.out if trainer.out is not None and trainer.out.exists() else None,
        best_checkpoint=best if best is not None and best.exists() else None,
        device=str(trainer.device),
        precision=trainer.precision,
        parameters=trainer.model.num_parameters(),
        train_chars=trainer.train_chars,
        val_chars=trainer.val_chars,
        train_time=session.train_time,
        batch_size=trainer.batch_size,
        seq_len=trainer.seq_len,
        threads=torch.get_num_threads() if trainer.device.type == "cpu" else 0,
        metrics_log=log.path if log else None,
        skipped_steps=rec.skipped_steps,
        plan=trainer.recorded_plan(),
        outlook=trainer._outlook_record(),
        averaging=trainer.averaging(),
        session_steps=rec.step - session.start_step,
        session_elapsed=session.seconds,
        validations=len(rec.history["val_step"]),
        val_sample_chars=rec.val_sample_chars,
        val_sample_stderr=rec.val_sample_stderr,
    )


def averaging(trainer) -> dict | None:
    """The weight average: its settings, the weights the checkpoint being written holds
    ("live" or "average"), those of the best validation, and the best validation of each
    (None where the run keeps no average)."""
    if trainer.average is None:
        return None
    rec = trainer.record
    return {
        **WeightAverage.describe(),
        "weights": trainer._weights,
        "best_weights": rec.best_weights,
        "best_val_loss_live": rec.best_val_loss_live,
        "best_val_loss_average": rec.best_val_loss_average,
    }


def save_weights(trainer, path: Path, summary: dict, weights: str) -> None:
    """Write a checkpoint holding the live weights or their average (`weights`)."""
    if weights == "live":
        _save(trainer, path, summary)
        return
    with trainer.average.applied():
        trainer._weights = "average"
        try:
            _save(trainer, path, summary)
        finally:
            trainer._weights = "live"


def _save(trainer, path: Path, summary: dict) -> None:
    """Write a checkpoint (rank 0; timed, for the budget); every process must call it, to
    gather the carried state."""
    t0 = time.perf_counter()
    state = distributed.gather_rows(trainer.carried, trainer.world) if trainer.carried is not None else None
    if trainer.rank != 0:
        return
    _clean_stale_best(trainer)
    save_run(trainer, path, summary, state)
    if trainer.session is not None:
        trainer.session.save_seconds = time.perf_counter() - t0


def _clean_stale_best(trainer) -> None:
    """Before this session's first write: a best checkpoint at `out` that is not this run's
    (left by an earlier run, or by the run this one resumed under another name) goes."""
    if trainer._cleaned or trainer.out is None:
        return
    trainer._cleaned = True
    best = best_path(trainer.out)
    same_run = trainer.resumed_from is not None and trainer.resumed_from.resolve() == trainer.out.resolve()
    if best.exists() and not same_run:
        best.unlink()


def check_resumable(path: str | Path, raw: dict) -> None:
    """Refuse, in one line, training state (of `load_raw`'s fields) that cannot continue a run:
    its configuration, step, optimizer state, random state and carried state must be what the
    model and torch take, so that a resumed run never fails inside torch."""
    path = Path(path)

    def damaged(what: str) -> CheckpointError:
        return CheckpointError(f"{shown_path(path)} is damaged: {what}")

    config = ModelConfig(**raw["model_config"])  # load_raw has checked it
    try:
        TrainConfig.from_dict(raw["train_config"])
    except (ConfigError, TypeError, ValueError) as e:
        raise damaged(f"train_config: {ckpt.first_line(e)}") from None
    if not ckpt.is_whole(raw.get("step")):
        raise damaged("field 'step' is not a whole number")
    if raw.get("optimizer") is not None:
        try:
            check_state_dict(raw["optimizer"], list(parameter_shapes(config).values()))
        except ValueError as e:
            raise damaged(ckpt.first_line(e)) from None
    r = raw["resume"]
    rng = r.get("rng")
    size = torch.get_rng_state().numel()
    if rng is not None and not (
        isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.shape == (size,)
    ):
        raise damaged(f"the random state is not {size} bytes (uint8)")
    state = r.get("state")
    width = config.hidden_size * (2 if config.cell.value == "lstm" else 1)
    if state is not None and not (
        isinstance(state, torch.Tensor) and state.dtype.is_floating_point and state.dim() == 3
        and state.shape[0] == config.num_layers and state.shape[2] == width
    ):  # fmt: skip
        raise damaged(f"the carried state is not a float tensor ({config.num_layers}, batch, {width})")
    for key, ok in (("elapsed", ckpt.is_number), ("best_val_loss", ckpt.is_number),
                    ("evals_since_best", ckpt.is_whole), ("skipped_steps", ckpt.is_whole),
                    ("budget", ckpt.is_number), ("val_sample_chars", ckpt.is_whole),
                    ("cut_short", ckpt.is_number)):  # fmt: skip
        if r.get(key) is not None and not ok(r[key]):
            raise damaged(f"resume field '{key}' is malformed")
    guard = r.get("guard")
    if guard is not None and not (
        isinstance(guard, dict)
        and all(v is None or ckpt.is_number(v) for k, v in guard.items() if k != "first_seen")
    ):
        raise damaged("resume field 'guard' is malformed")
