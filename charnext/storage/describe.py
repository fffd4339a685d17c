"""What a checkpoint holds, as plain data (for `charnext inspect` and its JSON), and the model's
rows that inspect and the web page's model card both show."""

from __future__ import annotations

import math

from charnext.storage.checkpoint import Checkpoint
from charnext.storage.metrics import read_metrics
from charnext.text.paths import absolute_path


def _finite(values: list) -> list:
    return [v if isinstance(v, (int, float)) and math.isfinite(v) else None for v in values]


def describe(ckpt: Checkpoint) -> dict:
    """Model, vocabulary, training and history of a checkpoint, as JSON-ready values."""
    raw = ckpt.raw
    history = ckpt.history
    summary = ckpt.summary
    losses = [v for v in history.get("loss", []) if isinstance(v, float) and math.isfinite(v)]
    val = [v for v in history.get("val_loss", []) if isinstance(v, float) and math.isfinite(v)]
    # the figure the run ended with (scored on more than the checks' sample, where it could),
    # else its latest check's
    last = summary.get("val_loss")
    last = last if isinstance(last, float) and math.isfinite(last) else (val[-1] if val else None)
    sample = (raw.get("resume") or {}).get("val_sample") if isinstance(raw.get("resume"), dict) else None
    return {
        "path": absolute_path(ckpt.path) if ckpt.path else None,
        # `charnext export` keeps only what inference needs: no history, summary or optimizer
        "inference_only": "history" not in raw and "summary" not in raw,
        "line_mode": ckpt.start.lines,
        "start": ckpt.start.prime,
        "format_version": raw.get("format_version"),
        "charnext_version": raw.get("charnext_version"),
        "created": raw.get("created"),
        "model": {
            **ckpt.config.to_dict(),
            "parameters": ckpt.num_parameters(),
            "layers": [{"name": n, "shape": list(s), "parameters": c} for n, s, c in ckpt.parameter_table()],
        },
        "vocabulary": list(ckpt.vocab.chars),
        "vocabulary_counts": raw.get("vocab_counts"),
        "training": {
            "steps": ckpt.step,
            "final_loss": losses[-1] if losses else None,
            "best_loss": min(losses) if losses else None,
            "accuracy": summary.get("accuracy"),
            "val_loss": last,
            "val_se": summary.get("val_se"),  # its standard error, and what it scored
            "val_scored": summary.get("val_scored"),
            "val_all": summary.get("val_all"),
            "best_val_loss": min(val) if val else None,  # the checks': all on the same sample
            "best_val_se": summary.get("best_val_se"),
            "sample_chars": sample.get("chars") if isinstance(sample, dict) else None,
            "elapsed": summary.get("elapsed"),
            "device": summary.get("device"),
            "precision": summary.get("precision"),
            "text": raw.get("text"),
            "config": ckpt.train_config,
            "resumable": isinstance(raw.get("resume"), dict) and raw.get("optimizer") is not None,
        },
        "provenance": raw.get("provenance") if isinstance(raw.get("provenance"), dict) else None,
        "metrics_log": _metrics_log(ckpt),
        "history": _finite(history.get("loss", [])),
        "history_steps": history.get("step", []),
        "validation": {"steps": history.get("val_step", []), "loss": _finite(history.get("val_loss", []))},
    }


def model_rows(info: dict) -> list[tuple[str, str]]:
    """The model's labelled rows, as plain strings, from `describe()`'s dict: cell, size, input,
    dropout, weight drop (where trained with it), vocabulary, parameters (`inspect`'s model
    table; the page's card leads with them)."""
    m = info["model"]
    drops = [("dropout", f"{m['dropout']:g}")]
    if m.get("weight_drop"):
        drops.append(("weight drop", f"{m['weight_drop']:g} (recurrent weights)"))
    return [
        ("cell", m["cell"]),
        ("layers", f"{m['num_layers']} × {m['hidden_size']} units"),
        ("input", f"embedding {m['embedding_size']}" if m["embedding_size"] else "one-hot"),
        *drops,
        ("vocabulary", f"{m['vocab_size']} characters"),
        ("parameters", f"{m['parameters']:,}"),
    ]


def _metrics_log(ckpt: Checkpoint) -> dict | None:
    """The run's JSON Lines metrics log, if it is beside the checkpoint: its path, how many step
    and validation records it holds, and its validation records."""
    name = ckpt.raw.get("metrics_log")
    if not isinstance(name, str) or ckpt.path is None:
        return None
    path = ckpt.path.with_name(name)
    if not path.is_file():
        return None
    records = read_metrics(path)
    validations = [r for r in records if r.get("kind") == "validation"]
    return {
        "path": absolute_path(path),
        "steps": sum(1 for r in records if r.get("kind") == "step"),
        "validations": validations,
    }
