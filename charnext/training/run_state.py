"""A run's state in its checkpoint: what `save_run` writes and `restore_run` reads back, side by
side, so that a field added to one is seen beside the other. A resumed run continues bitwise
where the saved one stopped: the weights, the optimizer, the step, the random state, the
carried recurrent state, the history, the best validation and the divergence guard.

Both take the `charnext.training.trainer.Trainer` whose run it is (not imported here: the
trainer imports this module)."""

from __future__ import annotations

from pathlib import Path

import torch

from charnext.config import ModelConfig, TrainConfig
from charnext.errors import CheckpointError, ConfigError
from charnext.modeling.numpy_model import parameter_shapes
from charnext.storage import checkpoint as ckpt
from charnext.storage.metrics import metrics_path
from charnext.text.paths import shown_path
from charnext.training.optim import check_state_dict


def save_run(trainer, path: Path, summary: dict, state: torch.Tensor | None) -> None:
    """Write `trainer`'s run to `path`: the model and everything a resumed run needs, with
    `summary` (the latest figures) and `state` (the carried state, gathered from every process)."""
    t = trainer
    elapsed = t.elapsed()
    ckpt.save(
        path,
        t.model,
        t.vocab,
        # the batch and window as used, not None ("default"), so the record says what ran
        train_config={**t.config.to_dict(), "batch_size": t.batch_size},
        step=t.step,
        optimizer=t.optimizer.state_dict(),
        history=t.history,
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
            "elapsed": elapsed,
            "best_val_loss": t.best_val,
            "train_chars": t.train_chars,
            "val_chars": t.val_chars,
            "seq_len": t.seq_len,
            "batch_size": t.batch_size,
            "skipped_steps": t.skipped_steps,
            **summary,
        },
        resume={
            "rng": torch.get_rng_state(),
            "state": state,
            "elapsed": elapsed,
            "best_val_loss": t.best_val,
            "evals_since_best": t.evals_since_best,
            "skipped_steps": t.skipped_steps,
            "guard": t.guard.to_dict(),
            "average": t.average.state() if t.average is not None else None,
            "best_val_loss_live": t.best_live_val,
            "best_val_loss_average": t.best_average_val,
            "best_weights": t.best_weights,
        },
    )


def restore_run(trainer, raw: dict) -> None:
    """Set `trainer` (just built from the same configs) to the run saved in `raw`, a loaded
    checkpoint: every field `save_run` wrote for resuming, read back once."""
    t, r = trainer, raw["resume"]
    plan = (raw.get("provenance") or {}).get("plan")
    t._resumed_plan = plan if isinstance(plan, dict) else None
    t.model.load_state_dict(raw["state_dict"])
    if raw.get("optimizer"):
        t.optimizer.load_state_dict(raw["optimizer"])
    t.step = int(raw["step"])
    t.elapsed_before = float(r.get("elapsed", 0.0))
    t.history = {k: list(v) for k, v in (raw.get("history") or t.history).items()}
    t.best_val = r.get("best_val_loss")
    t.evals_since_best = int(r.get("evals_since_best", 0))
    t.skipped_steps = int(r.get("skipped_steps", 0))
    t.guard.restore(r.get("guard"))
    if t.average is not None:
        t.average.restore(r.get("average"))
    t.best_live_val = r.get("best_val_loss_live")
    t.best_average_val = r.get("best_val_loss_average")
    t.best_weights = str(r.get("best_weights", "live"))
    if isinstance(r.get("rng"), torch.Tensor):
        torch.set_rng_state(r["rng"])
    state = r.get("state")
    if isinstance(state, torch.Tensor) and t.corpus.carries_state:
        # float: a state saved under bf16 also feeds a run resumed in fp32 (lossless back to bf16)
        t.state = state[:, t.corpus.rows].float().to(t.device) if state.size(1) == t.batch_size else None


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
                    ("evals_since_best", ckpt.is_whole), ("skipped_steps", ckpt.is_whole)):  # fmt: skip
        if r.get(key) is not None and not ok(r[key]):
            raise damaged(f"resume field '{key}' is malformed")
    guard = r.get("guard")
    if guard is not None and not (
        isinstance(guard, dict)
        and all(v is None or ckpt.is_number(v) for k, v in guard.items() if k != "first_seen")
    ):
        raise damaged("resume field 'guard' is malformed")
