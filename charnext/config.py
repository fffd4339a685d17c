"""Typed configuration and choices, free of torch so that `charnext --help` starts fast.

Each dataclass belongs to the module that uses it and is re-exported there:
`ModelConfig` (charnext.modeling.model), `TrainConfig` (charnext.training.trainer), `SampleConfig`
(charnext.inference.sampling).
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import Field, asdict, dataclass, field, fields
from enum import Enum

from charnext.errors import ConfigError, InvalidValue


def _whole(obj, names: tuple[str, ...], optional: bool = False) -> None:
    """Each of `names` on `obj` is a whole number (None too, if `optional`): an int, or what
    acts as one (numpy's), never a bool, a float or a string (as a damaged checkpoint may hold)."""
    for name in names:
        value = getattr(obj, name)
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InvalidValue(name, f"must be a whole number, not {value!r}")
        setattr(obj, name, int(value))


def _real(obj, names: tuple[str, ...], optional: bool = False) -> None:
    """Each of `names` on `obj` is a finite number (None too, if `optional`)."""
    for name in names:
        value = getattr(obj, name)
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise InvalidValue(name, f"must be a finite number, not {value!r}")


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
    """What runs the model for prediction and generation (see charnext.modeling.runner.resolve_engine)."""

    auto = "auto"
    numpy = "numpy"
    torch = "torch"


class PageWeights(str, Enum):
    """How `charnext page` stores the weights (see charnext.inside.page)."""

    auto = "auto"  # float16 where the loss moves by under 0.001 nats/char, else float32
    float16 = "float16"
    float32 = "float32"


def _option(default, *, resumable: bool = False, planned: bool = False):
    """A training option's field: its default, whether a resumed run may change it (the rest fix
    the model, the data order or the split), and whether the planner chooses it when not given.
    RESUMABLE and PLANNED below, and so runs, the planner, the run's header and the README's
    resume table, read these marks."""
    return field(default=default, metadata={"resumable": resumable, "planned": planned})


class Cell(str, Enum):
    """The recurrent cell."""

    rnn = "rnn"
    gru = "gru"
    lstm = "lstm"


@dataclass
class ModelConfig:
    """Shape of a character model."""

    vocab_size: int | None = None  # distinct characters; None until a run has read the text
    cell: Cell = _option(Cell.lstm)  # recurrent cell: rnn (tanh), gru or lstm
    hidden_size: int = _option(256, planned=True)  # units in each recurrent layer
    num_layers: int = _option(2, planned=True)  # stacked recurrent layers
    embedding_size: int = _option(64)  # learned input embedding width; 0 feeds one-hot vectors
    dropout: float = _option(0.0, planned=True)  # dropout between layers and before the head, 0..1
    weight_drop: float = _option(0.0, planned=True)  # DropConnect on the recurrent weights in training

    def __post_init__(self) -> None:
        try:
            self.cell = Cell(self.cell)
        except (ValueError, TypeError):
            raise InvalidValue("cell", f"must be rnn, gru or lstm, not {self.cell!r}") from None
        _whole(self, ("vocab_size", "hidden_size", "num_layers"), optional=True)  # None: not known yet
        _whole(self, ("embedding_size",))
        _real(self, ("dropout", "weight_drop"))
        for name in ("vocab_size", "hidden_size", "num_layers"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise InvalidValue(name, f"must be at least 1, not {getattr(self, name)}")
        if self.embedding_size < 0:
            raise InvalidValue("embedding_size", f"must be 0 (one-hot) or more, not {self.embedding_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidValue("dropout", f"must be in [0, 1), not {self.dropout}")
        if not 0.0 <= self.weight_drop < 1.0:
            raise InvalidValue("weight_drop", f"must be in [0, 1), not {self.weight_drop}")

    def to_dict(self) -> dict:
        """Plain values, for checkpoints and JSON."""
        d = asdict(self)
        d["cell"] = self.cell.value
        return d


@dataclass
class TrainConfig:
    """How to train."""

    seq_len: int = _option(64)  # characters per window: how far gradients flow back in time
    batch_size: int | None = _option(None, planned=True)  # windows (lines) per step, all processes
    steps: int | None = _option(None, resumable=True)  # optimizer steps; None = sized to the text
    epochs: float | None = _option(None, resumable=True)  # passes over the training text, instead of steps
    max_time: float | None = _option(None, resumable=True)  # budget, seconds (or "90s"); the schedule fits it
    lr: float = _option(8e-3, resumable=True, planned=True)  # peak learning rate (AdamW)
    # final learning rate as a fraction of the peak (cosine decay); to zero: on tinyshakespeare
    # in 90 s (2x256, Intel Xeon) 1.427 and 1.435 against 1.437 and 1.444 with a floor of 0.1
    min_lr_ratio: float = _option(0.0)
    warmup_steps: int = _option(50, planned=True)  # steps of linear learning-rate warm-up
    grad_clip: float = _option(1.0)  # maximum gradient norm; 0 turns clipping off
    weight_decay: float = _option(0.0, planned=True)  # AdamW weight decay
    seed: int = _option(0)  # random seed: weights, dropout, batch order
    device: str = _option("auto", resumable=True)  # auto, cpu, cuda or mps
    precision: str = _option("auto", resumable=True)  # auto, fp32 or bf16 (autocast of the forward)
    val_fraction: float | None = _option(None)  # share of the text held out at its end; None = auto
    eval_every: int | None = _option(None, resumable=True)  # steps between validations; None = ~10 a run
    patience: int | None = _option(None, resumable=True)  # stop after N validations without a new best
    lines: bool = _option(False)  # line mode: each non-empty line is its own sequence
    random_windows: bool = _option(False)  # windows drawn at random (no state carried), not streamed
    ema: bool = _option(False)  # validate an average of the weights over the run's end beside them
    cold_starts: float = _option(0.0)  # share of stream windows read from the zero state, not carried
    sample_prompt: str | None = _option(None, resumable=True)  # the previews' prompt; None = the text's
    sample_temperature: float = _option(0.8, resumable=True)  # the previews' temperature; 0 = greedy

    def __post_init__(self) -> None:
        if isinstance(self.max_time, str):  # the command line's spelling: 90s, 10m, 1h30m
            self.max_time = parse_duration(self.max_time, "max_time")
        _whole(self, ("seq_len", "warmup_steps", "seed"))
        _whole(self, ("batch_size", "steps", "eval_every", "patience"), optional=True)
        _real(self, ("lr", "min_lr_ratio", "grad_clip", "weight_decay", "sample_temperature"))
        _real(self, ("epochs", "max_time", "val_fraction"), optional=True)
        for name, choices in (("device", DeviceName), ("precision", Precision)):
            try:
                setattr(self, name, choices(getattr(self, name)).value)
            except (ValueError, TypeError):
                known = ", ".join(c.value for c in choices)
                raise InvalidValue(name, f"must be one of {known}, not {getattr(self, name)!r}") from None
        for name in ("lines", "random_windows"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise InvalidValue(name, f"must be true or false, not {value!r}")
        if self.sample_prompt is not None and not isinstance(self.sample_prompt, str):
            raise InvalidValue("sample_prompt", f"must be a text, not {self.sample_prompt!r}")
        positive = ("seq_len", "batch_size", "steps", "epochs", "max_time", "lr", "eval_every")
        for name in positive:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InvalidValue(name, f"must be positive, not {value}")
        if self.patience is not None and self.patience < 1:
            raise InvalidValue("patience", f"must be at least 1, not {self.patience}")
        if not 0.0 <= self.cold_starts <= 1.0:
            raise InvalidValue("cold_starts", f"must be in [0, 1], not {self.cold_starts}")
        if self.val_fraction is not None and not 0.0 <= self.val_fraction < 1.0:
            raise InvalidValue("val_fraction", f"must be in [0, 1), not {self.val_fraction}")
        for name in ("grad_clip", "weight_decay", "warmup_steps", "seed"):
            if getattr(self, name) < 0:
                raise InvalidValue(name, f"must be 0 or more, not {getattr(self, name)}")
        if self.sample_temperature < 0:
            raise InvalidValue(
                "sample_temperature", f"must be 0 (greedy) or more, not {self.sample_temperature}"
            )
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise InvalidValue("min_lr_ratio", f"must be in [0, 1], not {self.min_lr_ratio}")

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
        _real(self, ("temperature", "top_p"))
        _whole(self, ("top_k",))
        _whole(self, ("seed",), optional=True)
        if self.temperature < 0:
            raise InvalidValue("temperature", f"must be 0 (greedy) or more, not {self.temperature}")
        if self.top_k < 0:
            raise InvalidValue("top_k", f"must be 0 (off) or more, not {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidValue("top_p", f"must be in (0, 1], not {self.top_p}")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            raise InvalidValue("seed", f"must be 0 or more (below 2**64), not {self.seed}")


def _marked(mark: str) -> tuple[str, ...]:
    return tuple(f.name for cls in (ModelConfig, TrainConfig) for f in fields(cls) if f.metadata.get(mark))


def training_options() -> dict[str, Field]:
    """Every training option (the fields of ModelConfig, but the vocabulary's size, and of
    TrainConfig), by name, in declaration order."""
    return {f.name: f for cls in (ModelConfig, TrainConfig) for f in fields(cls) if f.name != "vocab_size"}


RESUMABLE = _marked("resumable")  # the options a resumed run may change
PLANNED = _marked("planned")  # the options the planner chooses when they are not given


def check_options(options: dict) -> None:
    """Check training options' values in their configs (ModelConfig's and TrainConfig's own
    checks), before anything loads: an unknown name is a ConfigError, a bad value an InvalidValue."""
    model, train = split_options(options)
    ModelConfig(**model)
    TrainConfig(**train)


def split_options(options: dict) -> tuple[dict, dict]:
    """Training options -> (ModelConfig fields, TrainConfig fields); an unknown name is a
    ConfigError. The API and the command line split them here alike."""
    model_names = {f.name for f in fields(ModelConfig)} - {"vocab_size"}
    train_names = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options) - model_names - train_names)
    if unknown:  # one line: the name, the nearest option, and every option there is
        import difflib

        known = sorted(model_names | train_names)
        near = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        raise ConfigError(f"unknown option {unknown[0]!r}; {hint}the options are {', '.join(known)}")
    model = {k: v for k, v in options.items() if k in model_names}
    return model, {k: v for k, v in options.items() if k in train_names}


# -- durations: read from options, shown in tables and in the plan --------------------------


def parse_duration(value: str, param: str = "duration") -> float:
    """`90s`, `10m`, `2h`, `1h30m` or plain seconds -> seconds; anything else, or a duration that
    is not positive, is an InvalidValue naming `param` (the API's name for the value)."""
    text = value.strip().lower()
    if text.startswith("-") or re.fullmatch(r"0+(\.0*)?\s*[hms]?", text):
        raise InvalidValue(param, f"must be positive, not {value!r}")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|m|s)", text)
        if not parts or "".join(a + b for a, b in parts) != text.replace(" ", ""):
            raise InvalidValue(param, f"must be a duration such as 90s, 10m, 2h or 1h30m, not {value!r}")
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise InvalidValue(param, f"must be positive, not {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """12.3s, 4m05s, 1h02m."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def format_budget(seconds: float) -> str:
    """600 -> '10m', 90 -> '90s', 5400 -> '1h30m'."""
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes}m" + (f"{seconds % 60:02d}s" if seconds % 60 else "")
    return f"{minutes // 60}h" + (f"{minutes % 60:02d}m" if minutes % 60 else "")
