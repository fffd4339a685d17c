"""The options several commands share, each declared once: its flag, its type and its help.

A command names one of these in its signature with its own default, e.g.
`checkpoint: options.Checkpoint = Path("checkpoint.pt")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charnext.config import DeviceName, Engine

ENGINE_HELP = (
    "What runs the model: numpy (no torch imported; the CPU only) or torch. auto picks numpy on "
    "the CPU and torch on a GPU: measured, numpy starts without torch's ~1.3 s import and "
    "generates faster on a CPU."
)

Checkpoint = Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint to use.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
Device = Annotated[DeviceName, typer.Option(help="Where to run.")]
EngineChoice = Annotated[Engine, typer.Option(help=ENGINE_HELP)]
SkipUnknown = Annotated[bool, typer.Option("--skip-unknown", help="Drop characters the vocabulary lacks.")]
File = Annotated[
    Path | None,
    typer.Option(
        "--file", "-f", help="Read this UTF-8 text file; - reads standard input.", show_default=False
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
Alternatives = Annotated[int, typer.Option(help="Most likely characters shown per step.")]
