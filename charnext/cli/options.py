"""The options several commands share, each declared once: its flag, its type and its help.

A command names one of these in its signature with its own default, e.g.
`checkpoint: options.CheckpointPath = Path("checkpoint.pt")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charnext.config import Cell as CellChoice
from charnext.config import DeviceName, Engine, Precision, training_options

ENGINE_HELP = (
    "What runs the model: numpy (no torch imported; the CPU only) or torch. auto picks numpy on "
    "the CPU and torch on a GPU: measured, numpy starts without torch's ~1.3 s import and "
    "generates faster on a CPU."
)

CheckpointPath = Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint to use.")]
# inspect and export also take the checkpoint as their argument; -c names it the same way
CheckpointArgument = Annotated[
    Path | None,
    typer.Argument(
        metavar="CHECKPOINT", help="Checkpoint to read [default: checkpoint.pt]", show_default=False
    ),
]
SameCheckpoint = Annotated[
    Path | None, typer.Option("--checkpoint", "-c", help="The same as CHECKPOINT.", show_default=False)
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
# every command that writes a file: without it, a file there that charnext did not write (of
# that kind) is refused at once and left as it is (charnext.storage.replacing)
Force = Annotated[
    bool, typer.Option("--force", help="Replace the file it writes even if charnext did not write it.")
]
Device = Annotated[DeviceName, typer.Option(help="Where to run.")]
EngineChoice = Annotated[Engine, typer.Option(help=ENGINE_HELP)]
SkipUnknown = Annotated[bool, typer.Option("--skip-unknown", help="Drop characters the vocabulary lacks.")]
# the text a command reads (evaluate scores it, neurons reads it): TEXT itself, or --file
ReadText = Annotated[
    str | None,
    typer.Argument(metavar="TEXT", help="Text to read; - reads standard input.", show_default=False),
]
ScoreText = Annotated[
    str | None,
    typer.Argument(metavar="TEXT", help="Text to score; - reads standard input.", show_default=False),
]
ReadFile = Annotated[
    Path | None,
    typer.Option(
        "--file", "-f", help="Read this UTF-8 text file; - reads standard input.", show_default=False
    ),
]
ScoreFile = Annotated[
    Path | None,
    typer.Option(
        "--file", "-f", help="Score this UTF-8 text file; - reads standard input.", show_default=False
    ),
]

# sampling: predict, play and the report's own sample draw the same way (charnext.inference.sampling)
Temperature = Annotated[
    float,
    typer.Option(
        help="Sampling temperature: 1 samples from the model as it is, lower is safer, "
        "0 is greedy (always the most likely character)."
    ),
]
TopK = Annotated[int, typer.Option(help="Sample only among the k most likely characters; 0 = all of them.")]
TopP = Annotated[
    float, typer.Option(help="Sample only among the most likely characters whose probability adds up to p.")
]
Seed = Annotated[int, typer.Option(help="Sampling seed: the same seed gives the same text.")]
PredictSeed = Annotated[
    int | None,
    typer.Option(
        help="Sampling seed: the same seed gives the same text. Without it, a random "
        "seed is drawn and printed on stderr.",
        show_default=False,
    ),
]
Alternatives = Annotated[int, typer.Option(help="Most likely characters shown per step.")]
Prefix = Annotated[
    str | None,
    typer.Argument(metavar="PREFIX", help="Text to feed, one character at a time; - reads standard input.",
                   show_default=False),
]  # fmt: skip
PrefixOption = Annotated[
    str | None, typer.Option("--prefix", "-p", help="The same as PREFIX.", show_default=False)
]
PrefixFile = Annotated[
    Path | None,
    typer.Option("--prefix-file", help="Read PREFIX from this UTF-8 file (- : standard input); its final "
                 "newlines are dropped, as $(cat FILE) drops them.", show_default=False),
]  # fmt: skip
PredictLength = Annotated[
    int | None,
    typer.Option("--length", "-n", help="Characters to generate past the prefix [default: none; a line "
                 "model with --num-samples, --text, --best-of or --stop completes its line].",
                 show_default=False),
]  # fmt: skip
NumSamples = Annotated[int, typer.Option(help="Continuations to generate.")]
GeneratedTable = Annotated[
    bool, typer.Option("--table", help="Also tabulate the generated steps (the last 60).")
]
TextOnly = Annotated[
    bool, typer.Option("--text", help="Print only the generated text (prefix and continuation) on stdout.")
]
Stop = Annotated[
    list[str] | None,
    typer.Option(help="End a continuation where it reaches this text, left out (repeatable, up to 4).",
                 show_default=False),
]  # fmt: skip
BestOf = Annotated[
    int | None,
    typer.Option(help="Draw N continuations, keep the --num-samples most likely (mean log-probability).",
                 show_default=False),
]  # fmt: skip


# -- the training options of `charnext train` ------------------------------------------------
# Each is a field of ModelConfig or TrainConfig (charnext.config), which holds its default and
# marks whether the planner chooses it; the note in its help reads both from there. Every one
# defaults to None ("not given"), so that a resumed run tells what the user typed from a default.

PLANNED_NOTE = "[default: planned for the text, the budget and this machine]"


def _train(name: str, kind: type, help: str, *flags: str, default: str | None = None, **kw):
    option = training_options()[name]
    if default is None:
        shown = getattr(option.default, "value", option.default)
        default = PLANNED_NOTE if option.metadata["planned"] else f"[default: {shown}]"
    flag = typer.Option(*flags, help=f"{help} {default}".strip(), show_default=False, **kw)
    return Annotated[kind | None, flag]


Cell = _train("cell", CellChoice, "Recurrent cell.")
HiddenSize = _train("hidden_size", int, "Units per recurrent layer.")
NumLayers = _train("num_layers", int, "Stacked recurrent layers.")
EmbeddingSize = _train("embedding_size", int, "Learned input embedding width; 0 feeds one-hot vectors.")
Dropout = _train("dropout", float, "Dropout between layers and before the head, 0..1.")
WeightDrop = _train("weight_drop", float, "DropConnect on the recurrent weights, 0..1.")
SeqLen = _train("seq_len", int, "Characters per training window (BPTT length).")
BatchSize = _train("batch_size", int, "Windows (lines with --lines) per step.")
Steps = _train("steps", int, "Optimizer steps", default="[default: sized to the text]")
Epochs = _train("epochs", float, "Passes over the text, instead of --steps.", default="")
MaxTime = _train(
    "max_time", str, "Wall-clock budget of the whole command, from its start to its end, e.g. 90s, 10m, 2h; "
    "the schedule fits it. With --resume, that much more (without, what the run has left).", default="",
)  # fmt: skip
WeightDecay = _train("weight_decay", float, "AdamW weight decay.")
Lr = _train("lr", float, "Peak learning rate.")
TrainSeed = _train("seed", int, "Random seed.")
TrainDevice = _train("device", DeviceName, "Where to train.")
TrainPrecision = _train("precision", Precision, "Forward-pass precision; auto = bf16 where fast.")
ValFraction = _train(
    "val_fraction",
    float,
    "Share of the text held out at its end",
    default="[default: 0.1, 0 for short texts]",
)
EvalEvery = _train("eval_every", int, "Steps between validations", default="[default: ~10 per run]")
Patience = _train("patience", int, "Stop after N validations without improvement.", default="")
Lines = _train("lines", bool, "Line mode: each non-empty line is a sequence.", "--lines", default="")
RandomWindows = _train(
    "random_windows",
    bool,
    "Draw windows at random instead of carrying state.",
    "--random-windows",
    default="",
)
Ema = _train(
    "ema",
    bool,
    "Validate an average (EMA) of the weights over the run's end; the best checkpoint keeps the better.",
    "--ema/--no-ema",
)
ColdStarts = _train(
    "cold_starts",
    float,
    "Share of stream windows read from the zero state instead of the carried one (measured worse "
    "than the prime a stream model reads first: docs/reference.md).",
)
SamplePrompt = _train(
    "sample_prompt", str, "Prompt of the previews after each validation",
    default="[default: the text's first line]",
)  # fmt: skip
SampleTemperature = _train(
    "sample_temperature", float, "Temperature of those previews (fixed seed; 0 = greedy)."
)

# the options of `charnext train` that are not in the configs: what it reads, how it runs, where it saves
TrainText = Annotated[
    list[str] | None,
    typer.Argument(
        help="Text to train on; - reads standard input. After --file, more files (as `--file *.txt` "
        "gives them).",
        show_default=False, metavar="TEXT",
    ),
]  # fmt: skip
TrainFile = Annotated[
    list[Path] | None,
    typer.Option(
        "--file", "-f",
        help="Train on this UTF-8 text file, or on a folder's text files; repeat it for several "
        "(each file kept apart: no window spans two).",
    ),
]  # fmt: skip
TrainData = Annotated[
    Path | None,
    typer.Option("--data", "-d", help="Train on a folder made by `charnext prepare` (memory-mapped)."),
]
# `charnext prepare`'s
PrepareFile = Annotated[
    list[Path],
    typer.Option(
        "--file", "-f",
        help="The UTF-8 text file to encode, or a folder (its text files); repeat it for several, "
        "each file kept apart.",
        show_default=False,
    ),
]  # fmt: skip
PrepareOut = Annotated[
    Path,
    typer.Option("--out", "-o", help="Folder to write tokens.bin and meta.json into.", show_default=False),
]
PrepareMore = Annotated[
    list[Path] | None,
    typer.Argument(help="More files (as `--file *.txt` gives them).", show_default=False, metavar="FILES"),
]
Resume = Annotated[Path | None, typer.Option(help="Continue the run saved in this checkpoint.")]
InitFrom = Annotated[Path | None, typer.Option(help="Start from this checkpoint's weights.")]
Threads = Annotated[
    int | None,
    typer.Option(
        help="CPU threads for torch [default: the idle cores, measured at start; OMP_NUM_THREADS if set]",
        show_default=False,
    ),
]
TrainOut = Annotated[
    str | None,  # a string, not a Path: `runs/` keeps its slash (a folder: runs/checkpoint.pt)
    typer.Option(
        "--out",
        "-o",
        help="Checkpoint to write; DIR/ or an existing folder means DIR/checkpoint.pt, and a "
        "missing folder is created. [default: checkpoint.pt; with --resume, that file]",
        show_default=False,
    ),
]
ExtendVocab = Annotated[
    bool, typer.Option("--extend-vocab", help="With --init-from: add the text's new characters.")
]
DistTimeout = Annotated[
    str, typer.Option(help="Under torchrun: how long a process waits for the others before failing.")
]


# -- charnext serve ---------------------------------------------------------------------------
ServeCheckpoints = Annotated[
    list[Path] | None,
    typer.Option("--checkpoint", "-c", help="Checkpoint to serve (repeatable) [default: checkpoint.pt]",
                 show_default=False),
]  # fmt: skip
ModelNames = Annotated[
    list[str] | None,
    typer.Option(help="Model id of each -c, in order [default: the file's stem]", show_default=False),
]
ApiKey = Annotated[
    str | None,
    typer.Option(help="Ask clients for `Authorization: Bearer KEY` [default: $CHARNEXT_API_KEY]",
                 show_default=False),
]  # fmt: skip
