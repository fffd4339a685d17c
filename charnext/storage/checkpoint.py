"""Self-describing checkpoints: saved atomically, loaded safely (no code runs), checked.

The format's front door: `save`, `load`, `load_raw` and `export` live in the modules beside this
one (handle.py: the loaded `Checkpoint`; writing.py; reading.py; validation.py: the checks of every
field), and are named here, where callers find them.

Format 2 (what `save` writes; docs/checkpoint-format.md describes it byte by byte) is a
safetensors file: every tensor (weights, optimizer moments, random state, carried state, line
index) in its raw bytes, and everything else as JSON in the header's `__metadata__`, one entry
per field of the layout below. Reading it needs neither pickle nor torch. Format 1 (a
`torch.save` dict of the same fields) still loads, through `torch.load(weights_only=True)`.

Layout (the fields; tensors wherever they occur):

    format            "charnext-checkpoint"
    format_version    2
    charnext_version  version that wrote it
    created           ISO 8601 time (UTC)
    model_config      ModelConfig as a dict
    vocab             list of characters in index order
    state_dict        model weights
    train_config      TrainConfig as a dict (or None)
    step              optimizer steps taken
    optimizer         optimizer state_dict (or None)
    history           per-step and per-evaluation metrics (lists)
    text              {"length", "sha256"} of the training text
    summary           final figures: loss, accuracy, best_val_loss, elapsed, device, precision
    resume            what a resumed run needs: random state, carried state, best loss, ...
    start             {"prime": str}: read from the zero state before any text (absent in files
                      before charnext 0.2: then "\n" for a line-mode model, "" for a stream)

and any further JSON-able fields passed to `save(**extra)`.
"""

from __future__ import annotations

from charnext.storage.handle import Checkpoint, first_line
from charnext.storage.reading import load, load_raw
from charnext.storage.validation import FORMAT, FORMAT_VERSION, is_number, is_whole
from charnext.storage.writing import DEFAULT_NAME, export, output_path, record, save, write_record

__all__ = [
    "DEFAULT_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "export",
    "first_line",
    "is_number",
    "is_whole",
    "load",
    "load_raw",
    "output_path",
    "record",
    "save",
    "write_record",
]
