"""Typed configuration and choices, free of torch so that `charnext --help` starts fast.

Each dataclass belongs to the module that uses it and is re-exported there:
`ModelConfig` (charnext.model), `TrainConfig` (charnext.trainer), `SampleConfig`
(charnext.inference).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from enum import Enum

from charnext.errors import ConfigError


class DeviceName(str, Enum):
    """Where to run."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(str, Enum):
    """Numeric precision of the forward pass."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class Engine(str, Enum):
    """What runs the model for prediction and generation (see charnext.inference.resolve_engine)."""

    auto = "auto"
    numpy = "numpy"
    torch = "torch"


class Cell(str, Enum):
    """The recurrent cell."""

    rnn = "rnn"
    gru = "gru"
    lstm = "lstm"


@dataclass
class ModelConfig:
    """Shape of a character model."""

    vocab_size: int  # number of distinct characters
    cell: Cell = Cell.lstm  # recurrent cell: rnn (tanh), gru or lstm
    hidden_size: int = 256  # units in each recurrent layer
    num_layers: int = 2  # stacked recurrent layers
    embedding_size: int = 64  # learned input embedding width; 0 feeds one-hot vectors
    dropout: float = 0.0  # dropout between recurrent layers and before the head, 0..1
    weight_drop: float = 0.0  # DropConnect on the recurrent (hidden-to-hidden) weights in training, 0..1

    def __post_init__(self) -> None:
        try:
            self.cell = Cell(self.cell)
        except ValueError:
            raise ConfigError(f"unknown cell {self.cell!r}; choose rnn, gru or lstm") from None
        for name in ("vocab_size", "hidden_size", "num_layers"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.embedding_size < 0:
            raise ConfigError(f"embedding-size must be 0 (one-hot) or more, not {self.embedding_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), not {self.dropout}")
        if not 0.0 <= self.weight_drop < 1.0:
            raise ConfigError(f"weight-drop must be in [0, 1), not {self.weight_drop}")

    def to_dict(self) -> dict:
        """Plain values, for checkpoints and JSON."""
        d = asdict(self)
        d["cell"] = self.cell.value
        return d


@dataclass
class TrainConfig:
    """How to train."""

    seq_len: int = 64  # characters per window: how far gradients flow back in time
    batch_size: int | None = None  # windows (lines) per step, all processes; None = 16 (64 lines)
    steps: int | None = None  # optimizer steps; None with no epochs/max_time = sized to the text
    epochs: float | None = None  # passes over the training text, instead of steps
    max_time: float | None = None  # wall-clock budget in seconds (or "90s", "10m"); the lr schedule fits it
    lr: float = 8e-3  # peak learning rate (AdamW)
    min_lr_ratio: float = 0.1  # final learning rate as a fraction of the peak (cosine decay)
    warmup_steps: int = 50  # steps of linear learning-rate warm-up
    grad_clip: float = 1.0  # maximum gradient norm; 0 turns clipping off
    weight_decay: float = 0.0  # AdamW weight decay
    seed: int = 0  # random seed: weights, dropout, batch order
    device: str = "auto"  # auto, cpu, cuda or mps
    precision: str = "auto"  # auto, fp32 or bf16 (autocast of the forward pass)
    val_fraction: float | None = None  # share of the text held out at its end; None = auto
    eval_every: int | None = None  # steps between validations; None = about 10 per run
    patience: int | None = None  # stop after this many validations without improvement
    lines: bool = False  # line mode: each non-empty line is its own sequence
    random_windows: bool = False  # draw windows at random (state not carried) instead of streams
    cold_starts: float = 0.0  # share of stream windows read from the zero state, not the carried one
    sample_prompt: str | None = None  # prompt of the previews after each validation; None = auto
    sample_temperature: float = 0.8  # temperature of those previews (fixed seed); 0 = greedy

    def __post_init__(self) -> None:
        if isinstance(self.max_time, str):  # the command line's spelling: 90s, 10m, 1h30m
            self.max_time = parse_duration(self.max_time)
        positive = ("seq_len", "batch_size", "steps", "epochs", "max_time", "lr", "eval_every")
        for name in positive:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name.replace('_', '-')} must be positive, not {value}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be at least 1, not {self.patience}")
        if not 0.0 <= self.cold_starts <= 1.0:
            raise ConfigError(f"cold-starts must be in [0, 1], not {self.cold_starts}")
        if self.val_fraction is not None and not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val-fraction must be in [0, 1), not {self.val_fraction}")
        if self.grad_clip < 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ConfigError("grad-clip, weight-decay and warmup-steps cannot be negative")
        if self.sample_temperature < 0:
            raise ConfigError(f"sample-temperature must be 0 (greedy) or more, not {self.sample_temperature}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"min-lr-ratio must be in [0, 1], not {self.min_lr_ratio}")

    def to_dict(self) -> dict:
        """Plain values, for checkpoints and JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of to_dict, ignoring unknown keys (from other versions)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class SampleConfig:
    """How the next character is chosen during generation."""

    temperature: float = 0.0  # 0 = greedy (always the most likely character); higher = wilder
    top_k: int = 0  # sample among the k most likely characters only; 0 = all
    top_p: float = 1.0  # sample among the most likely characters whose mass reaches p; 1 = all
    seed: int | None = None  # random seed for sampling; None = not reproducible

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ConfigError(f"temperature must be 0 (greedy) or more, not {self.temperature}")
        if self.top_k < 0:
            raise ConfigError(f"top-k must be 0 (off) or more, not {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top-p must be in (0, 1], not {self.top_p}")


def parse_duration(value: str) -> float:
    """`90s`, `10m`, `2h`, `1h30m` or plain seconds -> seconds."""
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|m|s)", text)
        if not parts or "".join(a + b for a, b in parts) != text.replace(" ", ""):
            raise ConfigError(f"cannot read duration {value!r}: use e.g. 90s, 10m, 2h or 1h30m")
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"duration must be positive, not {value!r}")
    return seconds
