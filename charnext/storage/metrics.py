"""The metrics log: one JSON object a line beside the checkpoint, for pandas, jq or plotting.

`run.pt` logs to `run.metrics.jsonl`: a line per optimizer step
`{"kind": "step", "step", "loss", "accuracy", "lr", "elapsed", "chars_per_sec"}` and a line
per validation `{"kind": "validation", "step", "val_loss", "val_bpc", "val_accuracy", "best"}`.
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
            for line in Path(previous).read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("step", 0) <= resume_step:
                        self.pending.append(line)
                except json.JSONDecodeError:  # a line cut short by a crash
                    continue

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
    """The records of a metrics log (lines that do not parse, e.g. cut by a crash, skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
