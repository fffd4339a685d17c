"""A run's state in its checkpoint: what `save_run` writes and `restore_run` reads back, side by
side, so that a field added to one is seen beside the other. A resumed run continues bitwise
where the saved one stopped: the weights, the optimizer, the step, the random state, the
carried recurrent state, the history, the best validation and the divergence guard.

Both take the `charnext.training.trainer.Trainer` whose run it is (not imported here: the
trainer imports this module)."""

from __future__ import annotations

from pathlib import Path

import torch

from charnext.storage import checkpoint as ckpt
from charnext.storage.metrics import metrics_path


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
