"""A training run as the API hands it out (`api.start_run`): what its header shows, its events,
its result, and a way to stop it; the trainer behind it stays private."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from charnext.events import Event, TrainResult

if TYPE_CHECKING:
    from charnext.modeling.model import CharModel
    from charnext.results import TrainRequest
    from charnext.text.source import Source
    from charnext.training.distributed import Processes
    from charnext.training.trainer import Trainer


@dataclass(frozen=True)
class RunHeader:
    """What a run is, as its header shows it before the first step."""

    cell: str  # rnn, gru or lstm
    num_layers: int  # stacked recurrent layers
    hidden_size: int  # units per layer
    vocab_size: int  # characters in the vocabulary
    batch_size: int  # windows (lines) per step, all processes
    seq_len: int  # characters per window
    device: str  # where it trains: cpu, cuda, mps
    precision: str  # fp32 or bf16
    plan: dict | None  # the plan of a new run (its "why", what was planned); None when resumed
    line_mode: bool  # each line a sequence
    sample_prompt: str  # what the previews continue
    files: tuple[str, ...] = ()  # several files trained on: their absolute paths, in order
    skipped: int = 0  # files of the folders given left out as not UTF-8 text
    resumed: str | None = None  # a resumed run: "from step 120, 30s more" (its time budget, if any)


def _resumed(trainer: Trainer) -> str | None:
    """'from step 120, 30s more': where a resumed run goes on, and its time (None: a new run)."""
    if trainer.resumed_from is None:
        return None
    budget = trainer.budget
    return f"from step {trainer.step:,}" + (f", {budget.describe()} (--max-time)" if budget else "")


class TrainingRun:
    """A run ready to train: `run()` trains it to its end and returns its `TrainResult`, handing
    each event to a listener; `events()` yields them instead; `stop()` asks it to end after the
    step in progress and save a resumable checkpoint."""

    def __init__(self, trainer: Trainer):
        self._trainer = trainer
        c = trainer.model.config
        self.header = RunHeader(
            cell=c.cell.value, num_layers=c.num_layers, hidden_size=c.hidden_size,
            vocab_size=len(trainer.vocab), batch_size=trainer.batch_size, seq_len=trainer.seq_len,
            device=str(trainer.device), precision=str(trainer.precision),
            plan=trainer.recorded_plan() if trainer.resumed_from is None else None,
            line_mode=bool(trainer.config.lines), sample_prompt=trainer.sample_prompt(),
            **_files_of(trainer.origin.get("source")), resumed=_resumed(trainer),
        )  # fmt: skip
        self.result: TrainResult | None = None  # set when the run has ended

    def events(self) -> Iterator[Event]:
        """Train, yielding each event; `result` is set at the end."""
        yield from self._trainer.run()
        self.result = self._trainer.result

    def run(
        self, on_event: Callable[[Event], None] | None = None, stop_on_sigint: bool = False
    ) -> TrainResult:
        """Train to the end, handing each event to `on_event`; the result. With `stop_on_sigint`
        the first Ctrl-C stops the run after the current step and saves it."""
        from charnext.training.launch import stop_on_sigint as sigint_stops

        with sigint_stops(self._trainer) if stop_on_sigint else contextlib.nullcontext():
            for event in self.events():
                if on_event is not None:
                    on_event(event)
        assert self.result is not None
        return self.result

    def stop(self) -> None:
        """Ask the run to stop after the step in progress and save a resumable checkpoint."""
        self._trainer.stop()

    @property
    def model(self) -> CharModel:
        """The model being trained (its weights as they are now)."""
        return self._trainer.model


def _files_of(record) -> dict:
    """The header's `files` and `skipped` from a source record (several files; else nothing)."""
    from charnext.text.source import recorded_files

    files = recorded_files(record)
    if not files or record.get("kind") != "files":
        return {}
    skipped = record.get("skipped")
    paths = tuple(str(f.get("path")) for f in files)
    return {"files": paths, "skipped": skipped if isinstance(skipped, int) else 0}


@contextlib.contextmanager
def training_processes(
    device: str = "auto", timeout: float = 600.0, threads: int | None = None
) -> Iterator[Processes]:
    """The processes a run trains in (one, or torchrun's), `threads` CPU threads each (default: the
    idle cores, counted over torch's import here), for a block; yields `.main`, `.rank`, `.world`."""
    from charnext.modeling.cpuload import IdleSample

    idle = IdleSample()  # its window: the imports below (torch's, seconds), not a pause of its own
    from charnext.modeling.device import configure_threads
    from charnext.training import distributed

    configure_threads(threads, idle)
    with distributed.process_group(device, timeout) as procs:
        yield procs


def start(source: Source | None, r: TrainRequest) -> TrainingRun:
    """The run `r` asks for (charnext.api.start_run): resumed, or new on `source`."""
    from charnext.config import ModelConfig, TrainConfig, split_options
    from charnext.training.budget import process_start
    from charnext.training.runs import new_run, resume_run

    since = process_start()  # the command line's --max-time counts from its process's start

    if r.resume is not None:
        options = {"out": r.out, "command": r.command, "force": r.force, "since": since}
        return TrainingRun(resume_run(r.resume, source, **options, **r.options))
    model_options, train_options = split_options(r.options)
    return TrainingRun(new_run(
        source, ModelConfig(**model_options), TrainConfig(**train_options), r.out or Path("checkpoint.pt"),
        init_from=r.init_from, extend_vocab=r.extend_vocab, command=r.command, given=set(r.options),
        force=r.force, since=since,
    ))  # fmt: skip
