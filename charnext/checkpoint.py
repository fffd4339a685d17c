"""Self-describing checkpoints: saved atomically, loaded safely (no code runs), checked.

Layout (a plain dict of tensors and plain Python values; see the README):

    format            "charnext-checkpoint"
    format_version    1
    charnext_version  version that wrote it
    created           ISO 8601 time (UTC)
    model_config      ModelConfig as a dict
    vocab             list of characters in index order
    state_dict        model weights (CPU tensors)
    train_config      TrainConfig as a dict (or None)
    step              optimizer steps taken
    optimizer         optimizer state_dict (or None)
    history           per-step and per-evaluation metrics (lists)
    text              {"length", "sha256"} of the training text
    summary           final figures: loss, accuracy, best_val_loss, elapsed, device, precision
    resume            what a resumed run needs: random state, carried state, best loss, ...
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from charnext import __version__
from charnext.errors import CheckpointError, ConfigError
from charnext.model import CharModel, ModelConfig
from charnext.vocab import Vocab

FORMAT = "charnext-checkpoint"
FORMAT_VERSION = 1
_REQUIRED = {
    "format": str,
    "format_version": int,
    "model_config": dict,
    "vocab": list,
    "state_dict": dict,
}


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model ready to use, and everything recorded with it."""

    model: CharModel
    vocab: Vocab
    raw: dict = field(repr=False)  # the whole dict as loaded
    path: Path | None = None

    @property
    def config(self) -> ModelConfig:
        """The model's configuration."""
        return self.model.config

    @property
    def step(self) -> int:
        """Optimizer steps the model was trained for."""
        return int(self.raw.get("step") or 0)

    @property
    def history(self) -> dict:
        """Metric lists recorded during training."""
        return self.raw.get("history") or {}

    @property
    def train_config(self) -> dict:
        """The training configuration as recorded (plain dict)."""
        return self.raw.get("train_config") or {}

    @property
    def summary(self) -> dict:
        """Final figures of the training run."""
        return self.raw.get("summary") or {}


def _cpu(obj: Any) -> Any:
    """Move every tensor inside nested dicts/lists/tuples to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def save(path: str | Path, model: CharModel, vocab: Vocab, **extra: Any) -> Path:
    """Write a checkpoint atomically: a temporary file beside `path`, then a rename.

    `extra` holds the training fields of the layout above (train_config, step, optimizer,
    history, text, summary, resume). An interrupted save leaves any earlier file intact.
    """
    path = Path(path)
    raw = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "charnext_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_config": model.config.to_dict(),
        "vocab": list(vocab.chars),
        "state_dict": _cpu(_unwrap(model).state_dict()),
        **_cpu(extra),
    }
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CheckpointError(f"cannot write {path}: folder {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        # mkstemp creates the file 0600; a checkpoint gets the mode of any new file (per umask)
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            torch.save(raw, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process's umask (read by setting it, then restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _unwrap(model: torch.nn.Module) -> CharModel:
    """The CharModel inside a DistributedDataParallel or compiled wrapper."""
    return getattr(model, "module", model)


def load_raw(path: str | Path) -> dict:
    """The checkpoint dict, loaded without running any code, and checked for shape."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {path} (train one with `charnext train`)")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint")
    try:
        # weights_only=True: the unpickler accepts tensors and plain values only, so a hostile
        # file cannot run code; anything it refuses is reported as not a charnext checkpoint.
        with warnings.catch_warnings():  # torch warns about odd pickles; we report them ourselves
            warnings.simplefilter("ignore")
            raw = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - every failure here means "unusable file"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e) or "Unpickler" in str(e):
            reason = "it is corrupt, or holds objects other than tensors and plain values (never loaded)"
        raise CheckpointError(f"{path} is not a readable charnext checkpoint: {reason}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a charnext checkpoint")
    for key, kind in _REQUIRED.items():
        if not isinstance(raw.get(key), kind):
            raise CheckpointError(f"{path} is damaged: field '{key}' is missing or malformed")
    if raw["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {raw['format_version']}, newer than this charnext "
            f"{__version__} reads (format {FORMAT_VERSION}); upgrade charnext"
        )
    return raw


def load(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint into a ready model (eval mode) on `device`."""
    raw = load_raw(path)
    try:
        vocab = Vocab(tuple(raw["vocab"]))
        config = ModelConfig(**raw["model_config"])
        if config.vocab_size != len(vocab):
            raise ValueError("vocabulary size does not match the model")
        model = CharModel(config)
        model.load_state_dict(raw["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError, ConfigError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is damaged: {first}") from None
    model.to(device).eval()
    return Checkpoint(model=model, vocab=vocab, raw=raw, path=Path(path))
