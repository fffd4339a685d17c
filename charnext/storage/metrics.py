"""The metrics log: one JSON object a line beside the checkpoint, for pandas, jq or plotting.

`run.pt` logs to `run.metrics.jsonl`: a line per optimizer step
`{"kind": "step", "step", "loss", "accuracy", "lr", "elapsed", "chars_per_sec"}` and a line
per validation `{"kind": "validation", "step", "val_loss", "val_bpc", "val_accuracy", "best",
"val_se", "val_chars"}` (every check scores the run's fixed sample of the held-out part,
`val_chars` characters; `val_se` is its loss's standard error; logs written before have neither).
A new run starts the file afresh when it writes its first checkpoint; a resumed run keeps the
lines up to the step it resumes from (later ones, from after the checkpoint, are replayed).
`pandas.read_json(path, lines=True)` reads it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from charnext.events import EvalEvent, StepEvent


def metrics_path(checkpoint: Path) -> Path:
    """Where the metrics log of a checkpoint goes: `run.pt` -> `run.metrics.jsonl`."""
    stem = checkpoint.stem.removesuffix(".best")
    return checkpoint.with_name(f"{stem}.metrics.jsonl")


def _number(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no NaN


class MetricsLog:
    """Step and validation records of a run, in a JSON Lines file beside its checkpoint.

    The file always describes the checkpoint beside it: records wait in memory until the run
    first writes that checkpoint (`attach`), then go to the file as they come. A run that fails
    before its first checkpoint leaves an earlier run's log alone.
    """

    def __init__(self, path: Path, resume_step: int = 0, previous: Path | None = None):
        """`previous`: the log of the run being resumed, whose lines up to `resume_step` are kept."""
        self.path = Path(path)
        self.pending: list[str] = []
        self.file = None
        if resume_step and previous is not None and Path(previous).is_file():
            for line, record in _records(previous):
                step = record.get("step", 0)
                if isinstance(step, (int, float)) and step <= resume_step:
                    self.pending.append(line)

    def attach(self) -> None:
        """The checkpoint is written: (re)write the file from here on."""
        if self.file is None:
            self.file = open(self.path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - close()
            self.file.write("".join(line + "\n" for line in self.pending))
            self.pending = []

    def step(self, e: StepEvent, accuracy: float) -> None:
        """One optimizer step."""
        self._write(
            {
                "kind": "step",
                "step": e.step,
                "loss": _number(e.loss),
                "accuracy": _number(accuracy),
                "lr": e.lr,
                "elapsed": round(e.elapsed, 4),
                "chars_per_sec": round(e.chars_per_sec),
            }
        )

    def validation(self, e: EvalEvent) -> None:
        """One validation."""
        self._write(
            {
                "kind": "validation",
                "step": e.step,
                "val_loss": _number(e.val_loss),
                "val_bpc": _number(e.val_bpc),
                "val_accuracy": _number(e.val_accuracy),
                "best": e.best,
                "val_se": _number(e.val_se) if e.val_se is not None else None,
                "val_chars": e.val_chars,
            }
        )

    def _write(self, record: dict) -> None:
        if self.file is None:
            self.pending.append(json.dumps(record))
        else:
            self.file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        """Flush and close the file."""
        if self.file is not None:
            self.file.close()


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics log (lines that are not JSON objects, e.g. cut by a crash, skipped)."""
    return [record for _, record in _records(path)]


def _records(path: Path) -> list[tuple[str, dict]]:
    """Each line of a metrics log that holds a JSON object, with that object. Lines that do not
    (cut short by a crash, damaged, not UTF-8) are skipped; an unreadable file has none."""
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(record, dict):
            out.append((line, record))
    return out
