"""A run's state in its checkpoint: what `save_run` writes and `restore_run` reads back, side by
side, so that a field added to one is seen beside the other. A resumed run continues bitwise
where the saved one stopped: the weights, the optimizer, the run's record (step, history, best
validation, ...: `charnext.training.state.RunState`), the random state, the carried recurrent
state, the divergence guard and the weight average.

Both take the `charnext.training.trainer.Trainer` whose run it is (not imported here: the
trainer imports this module); neither sets the trainer's fields: `restore_run` loads the
objects the trainer holds and hands back the record and the carried state.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from charnext.config import ModelConfig, TrainConfig
from charnext.errors import CheckpointError, ConfigError
from charnext.events import TrainResult
from charnext.modeling.numpy_model import parameter_shapes
from charnext.storage import checkpoint as ckpt
from charnext.storage.metrics import metrics_path
from charnext.text.paths import shown_path
from charnext.training.averaging import WeightAverage
from charnext.training.optim import check_state_dict
from charnext.training.state import RunState, Session
from charnext.training.validation import Sample
from charnext.version import __version__


def best_path(out: Path) -> Path:
    """Where the best-by-validation checkpoint goes: `checkpoint.pt` -> `checkpoint.best.pt`."""
    return out.with_name(f"{out.stem}.best{out.suffix or '.pt'}")


def save_run(trainer, path: Path, summary: dict, state: torch.Tensor | None) -> None:
    """Write `trainer`'s run to `path`: the model and everything a resumed run needs, with
    `summary` (the latest figures) and `state` (the carried state, gathered from every process)."""
    ckpt.write_record(path, run_record(trainer, summary, state))


def hold_run(trainer, summary: dict, state: torch.Tensor | None) -> dict:
    """What `save_run` would write now, copied (tensors to the CPU), to be written later with
    `ckpt.write_record` whatever the run does meanwhile."""
    return _copied(run_record(trainer, summary, state))


def _copied(value):
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(v) for v in value)
    return value


def run_record(trainer, summary: dict, state: torch.Tensor | None) -> dict:
    """The fields of `trainer`'s checkpoint as they stand (see `save_run`)."""
    t, rec = trainer, trainer.record
    resume = rec.to_resume()
    return ckpt.record(
        t.model,
        t.vocab,
        # the batch and window as used, not None ("default"), so the record says what ran
        train_config={**t.config.to_dict(), "batch_size": t.batch_size},
        step=rec.step,
        optimizer=t.optimizer.state_dict(),
        history=rec.history,
        text=t.text_fingerprint,
        source=t.origin.get("source"),
        provenance=provenance(t),
        metrics_log=metrics_path(t.out).name if t.out is not None else None,
        vocab_counts=t.corpus.vocab_counts,
        line_index=t.corpus.line_index,
        start=t.corpus.start.to_dict(),  # where every engine starts reading (the prime)
        summary={
            "device": str(t.device),
            "precision": t.precision,
            "elapsed": resume["elapsed"],
            "best_val_loss": rec.best_val_loss,
            "best_val_se": rec.best_val_se,  # on the checks' sample (resume: val_sample)
            "best_step": rec.best_step,
            "train_chars": t.train_chars,
            "val_chars": t.val_chars,
            "seq_len": t.seq_len,
            "batch_size": t.batch_size,
            "skipped_steps": rec.skipped_steps,
            **summary,
        },
        # the run's record in one step, with the objects the loop also continues
        resume={
            "rng": torch.get_rng_state(),
            "state": state,
            **resume,
            "guard": t.guard.to_dict(),
            "average": t.average.state() if t.average is not None else None,
        },
    )


def restore_run(trainer, raw: dict) -> tuple[RunState, torch.Tensor | None]:
    """Load the run saved in `raw` (a loaded checkpoint) into the model, the optimizer, the
    divergence guard and the weight average of `trainer` (just built from the same configs),
    and into torch's random state; return the run's record and the carried state (None where
    the corpus carries none, or the batch changed)."""
    t, r = trainer, raw["resume"]
    record = RunState.from_checkpoint(raw)
    carried = rewind(t, raw)
    t.guard.restore(r.get("guard"))
    if isinstance(r.get("rng"), torch.Tensor):
        torch.set_rng_state(r["rng"])
    return record, carried


def rewind(trainer, raw: dict) -> torch.Tensor | None:
    """Load the weights, the optimizer and the weight average saved in `raw` (a checkpoint's
    record: loaded, or held by hold_run) into `trainer`; return the carried state (None where
    the corpus carries none, or the batch changed). The run's record is not touched: a resume
    reads it from `raw`, a run going back to its best state (charnext.training.checks) keeps
    its own."""
    t, r = trainer, raw["resume"]
    t.model.load_state_dict(raw["state_dict"])
    if raw.get("optimizer"):
        t.optimizer.load_state_dict(raw["optimizer"])
    if t.average is not None:
        t.average.restore(r.get("average"))
    state = r.get("state")
    if isinstance(state, torch.Tensor) and t.corpus.carries_state and state.size(1) == t.batch_size:
        # float: a state saved under bf16 also feeds a run resumed in fp32 (lossless back to bf16)
        return state[:, t.corpus.rows].float().to(t.device)
    return None


def saved_plan(raw: dict) -> dict | None:
    """The plan a loaded checkpoint recorded (as chosen at its run's start), if any."""
    plan = (raw.get("provenance") or {}).get("plan")
    return plan if isinstance(plan, dict) else None


def provenance(trainer) -> dict:
    """Where the run came from and how it was run: recorded in every checkpoint it writes. The
    plan is the one chosen at the start; each later change of its regularisation is beside it."""
    t = trainer
    replans = t.record.replans
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
        **({"replans": [dict(r) for r in replans]} if replans else {}),
        "outlook": t.outlook_record(),
        "averaging": averaging(t),
    }


def averaging(trainer) -> dict | None:
    """The weight average: its settings, the weights the checkpoint being written holds
    ("live" or "average"), those of the best validation, and the best validation of each
    (None where the run keeps no average)."""
    if trainer.average is None:
        return None
    rec = trainer.record
    return {
        **WeightAverage.describe(),
        "weights": trainer.weights_held,
        "best_weights": rec.best_weights,
        "best_val_loss_live": rec.best_val_loss_live,
        "best_val_loss_average": rec.best_val_loss_average,
    }


def run_result(trainer, session: Session, metrics_log: Path | None) -> TrainResult:
    """What a finished session of `trainer`'s run reports."""
    t, rec = trainer, trainer.record
    session_chars = (rec.step - session.start_step) * t.chars_per_step
    best = best_path(t.out) if t.out is not None else None
    return TrainResult(
        steps=rec.step,
        elapsed=rec.elapsed,
        loss=session.loss,
        accuracy=session.accuracy,
        val_loss=session.last_val if t.checks.final is None else t.checks.final.loss,
        best_val_loss=rec.best_val_loss,
        chars_per_sec=session_chars / session.train_time if session.train_time else 0.0,
        reason=session.reason,
        checkpoint=t.out if t.out is not None and t.out.exists() else None,
        best_checkpoint=best if best is not None and best.exists() else None,
        device=str(t.device),
        precision=t.precision,
        parameters=t.model.num_parameters(),
        train_chars=t.train_chars,
        val_chars=t.val_chars,
        train_time=session.train_time,
        batch_size=t.batch_size,
        seq_len=t.seq_len,
        threads=torch.get_num_threads() if t.device.type == "cpu" else 0,
        metrics_log=metrics_log,
        skipped_steps=rec.skipped_steps,
        plan=t.recorded_plan(),
        outlook=t.outlook_record(),
        averaging=averaging(t),
        session_steps=rec.step - session.start_step,
        session_elapsed=session.seconds,
        turn=rec.turn,
        **checked(t),
    )


def checked(trainer) -> dict:
    """The TrainResult's figures of the checks: the final one's standard error and what it
    scored, the best one's standard error and step, the checks' sample and how many there were."""
    t, rec = trainer, trainer.record
    sample = Sample.from_dict(rec.val_sample)
    score = t.checks.final or t.checks.latest()  # an interrupted run ends with its latest check
    return {
        "val_se": score.se if score is not None else None,
        "val_scored": score.characters if score is not None else 0,
        "val_all": t.checks.final_all if t.checks.final is not None else bool(sample and sample.whole),
        "best_val_se": rec.best_val_se,
        "best_step": rec.best_step,
        "sample_chars": sample.chars if sample is not None else 0,
        "checks": len(rec.history["val_step"]),
    }


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
                    ("last_eval_step", ckpt.is_whole), ("last_eval_at", ckpt.is_number),
                    ("eval_seconds", ckpt.is_number), ("best_val_se", ckpt.is_number),
                    ("best_step", ckpt.is_whole)):  # fmt: skip
        if r.get(key) is not None and not ok(r[key]):
            raise damaged(f"resume field '{key}' is malformed")
    guard = r.get("guard")
    if guard is not None and not (
        isinstance(guard, dict)
        and all(v is None or ckpt.is_number(v) for k, v in guard.items() if k != "first_seen")
    ):
        raise damaged("resume field 'guard' is malformed")
    sample = r.get("val_sample")
    if sample is not None and Sample.from_dict(sample) is None:
        raise damaged("resume field 'val_sample' is malformed")
