"""Self-describing checkpoints: saved atomically, loaded safely (no code runs), checked.

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

import datetime as _dt
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from charnext.config import ModelConfig
from charnext.errors import CheckpointError, ConfigError
from charnext.modeling.numpy_model import parameter_shapes
from charnext.storage import tensorfile
from charnext.text.paths import shown_path
from charnext.text.vocab import Vocab
from charnext.version import __version__

if TYPE_CHECKING:  # torch is imported only where a torch model or a format-1 file needs it
    import torch

    from charnext.inference.steps import Start
    from charnext.modeling.model import CharModel

FORMAT = "charnext-checkpoint"
FORMAT_VERSION = 2
_REQUIRED = {
    "format": str,
    "format_version": int,
    "model_config": dict,
    "vocab": list,
    "state_dict": dict,
}
_ZIP, _PICKLE = b"PK\x03\x04", b"\x80"  # how torch.save's files start (zip; the legacy pickle)


@dataclass
class Checkpoint:
    """A loaded checkpoint: its model, vocabulary and everything recorded with it.

    `raw` holds the fields as loaded, tensors as numpy arrays. `model` is the torch CharModel
    (built on first use, on `device`); `runner` is what prediction and generation call, on the
    `engine` chosen at load time (numpy: no torch at all).
    """

    vocab: Vocab
    config: ModelConfig  # the model's configuration
    raw: dict = field(repr=False)  # every field, tensors as numpy arrays
    path: Path | None = None
    device: str = "cpu"  # where `model` lives
    engine: str = "torch"  # what `runner` uses: "numpy" or "torch"

    @cached_property
    def model(self) -> CharModel:
        """The torch model with the checkpoint's weights, in eval mode on `device`."""
        import torch

        from charnext.modeling.model import CharModel

        model = CharModel(self.config)
        weights = {k: torch.from_numpy(np.array(v)) for k, v in self.raw["state_dict"].items()}
        try:
            model.load_state_dict(weights)
        except RuntimeError as e:
            raise CheckpointError(f"{shown_path(self.path)} is damaged: {first_line(e)}") from None
        return model.to(self.device).eval()

    @cached_property
    def runner(self):
        """The forward pass prediction and generation use: numpy arrays in, numpy arrays out."""
        if self.engine == "numpy":
            from charnext.modeling.numpy_model import NumpyModel

            return NumpyModel(self.config, self.raw["state_dict"])
        from charnext.modeling.runner import TorchRunner

        return TorchRunner(self.model)

    @property
    def start(self) -> Start:
        """Where the model starts reading (a prime, and line mode's reset): every engine uses it."""
        from charnext.inference.steps import Start

        return Start.of(self.raw)

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
    def line_mode(self) -> bool:
        """Whether the model was trained in line mode (each line its own sequence)."""
        return bool(self.train_config.get("lines"))

    @property
    def summary(self) -> dict:
        """Final figures of the training run."""
        return self.raw.get("summary") or {}

    def parameter_table(self) -> list[tuple[str, tuple[int, ...], int]]:
        """(name, shape, count) of every weight tensor, in the model's order."""
        weights = self.raw["state_dict"]
        return [(name, shape, math.prod(shape)) for name, shape in parameter_shapes(self.config).items()
                if name in weights]  # fmt: skip

    def num_parameters(self) -> int:
        """Trainable parameter count."""
        return sum(count for _, _, count in self.parameter_table())


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# -- writing -----------------------------------------------------------------------------------

# JSON cannot hold everything a checkpoint holds, so four tagged objects stand in for what it
# lacks: {"__tensor__": name} a tensor stored in the file under that name, {"__tuple__": [...]}
# a tuple, {"__float__": "nan"} a non-finite float, {"__dict__": [[key, value], ...]} a dict
# whose keys are not all strings (the optimizer's state is keyed by parameter number).
_TAGS = ("__tensor__", "__tuple__", "__float__", "__dict__")


def _to_json(value: Any, path: list[str], tensors: dict[str, np.ndarray], bf16: set[str]) -> Any:
    """`value` as JSON-ready data; its tensors go into `tensors` under a name from `path`.

    The model's weights keep their PyTorch names (`rnn.weight_ih_l0`); any other tensor is
    named by where it sits (`optimizer.state.0.exp_avg`, `resume.rng`).
    """
    torch = sys.modules.get("torch")  # a torch tensor can only exist if torch is imported
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: store its bits, marked BF16
            ref = _store(path, t.view(torch.int16).numpy().view(np.uint16), tensors)
            bf16.add(ref["__tensor__"])
            return ref
        return _store(path, t.numpy(), tensors)
    if isinstance(value, np.ndarray):
        return _store(path, value, tensors)
    if isinstance(value, np.generic):
        return _to_json(value.item(), path, tensors, bf16)
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not any(k in _TAGS for k in value):
            return {k: _to_json(v, [*path, k], tensors, bf16) for k, v in value.items()}
        pairs = [[_to_json(k, path, tensors, bf16), _to_json(v, [*path, str(k)], tensors, bf16)]
                 for k, v in value.items()]  # fmt: skip
        return {"__dict__": pairs}
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v, [*path, str(i)], tensors, bf16) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_to_json(v, [*path, str(i)], tensors, bf16) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}  # 'nan', 'inf', '-inf'
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"a checkpoint cannot hold {type(value).__name__} (at {'.'.join(path)})")


def _tensor_name(path: list[str], tensors: dict) -> str:
    name = ".".join(path[1:] if path[0] == "state_dict" else path)
    assert name not in tensors, f"two tensors named {name}"
    return name


def _store(path: list[str], array: np.ndarray, tensors: dict[str, np.ndarray]) -> dict:
    name = _tensor_name(path, tensors)
    tensors[name] = array
    return {"__tensor__": name}


def _write(path: str | Path, raw: dict) -> Path:
    """Write the fields of `raw` as a format-2 file, atomically: a temporary file beside `path`,
    then a rename. An interrupted save leaves any earlier file intact."""
    path = Path(path)
    tensors: dict[str, np.ndarray] = {}
    bf16: set[str] = set()
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION)}
    for key, value in raw.items():
        if key not in metadata:
            data = _to_json(value, [key], tensors, bf16)
            metadata[key] = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CheckpointError(f"cannot write {shown_path(path)}: folder {shown_path(parent)} does not exist")
    if path.is_dir():
        raise CheckpointError(f"cannot write {shown_path(path)}: it is a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise CheckpointError(f"cannot write {shown_path(path)}: {e.strerror or e}") from None
    try:
        # mkstemp creates the file 0600; a checkpoint gets the mode of any new file (per umask)
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            tensorfile.write(f, tensors, metadata, bf16)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # a full disk, a folder put in the way meanwhile
            raise CheckpointError(f"cannot write {shown_path(path)}: {e.strerror or e}") from None
        raise
    return path


def save(path: str | Path, model: CharModel, vocab: Vocab, **extra: Any) -> Path:
    """Write a checkpoint atomically (format 2): a temporary file beside `path`, then a rename.

    `extra` holds the training fields of the layout above (train_config, step, optimizer,
    history, text, summary, resume) and any other field of JSON-able values and tensors.
    """
    raw = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "charnext_version": __version__,
        "created": _now(),
        "model_config": model.config.to_dict(),
        "vocab": list(vocab.chars),
        "state_dict": _unwrap(model).state_dict(),
        **extra,
    }
    return _write(path, raw)


DEFAULT_NAME = "checkpoint.pt"  # the file a run writes into a folder given as --out


def output_path(out: str | Path) -> Path:
    """Where a run given `out` writes, its folder made ready before the first step.

    `out` names the checkpoint file; `DIR/` (a trailing slash) or an existing folder means
    `DIR/checkpoint.pt`. A folder that does not exist yet is created, as `mkdir -p` would; one
    that cannot be is refused now, not after training.
    """
    text = str(out)
    path = Path(out)
    if text.endswith(("/", os.sep)) or path.is_dir():
        path = path / DEFAULT_NAME
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CheckpointError(
            f"cannot write {shown_path(path)}: {shown_path(parent)} is not a folder"
        ) from None
    except OSError as e:
        raise CheckpointError(
            f"cannot create folder {shown_path(parent)} for {path.name}: {e.strerror or e}"
        ) from None
    return path


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _umask() -> int:
    """The process's umask (read by setting it, then restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _unwrap(model: torch.nn.Module) -> CharModel:
    """The CharModel inside a DistributedDataParallel or compiled wrapper."""
    return getattr(model, "module", model)


def export(path: str | Path, out: str | Path) -> Path:
    """Write an inference-only file: the weights, the vocabulary and the model's configuration,
    where it starts reading, the characters' counts (plus, for a line-mode model, that it is one
    and its training lines' hashes). Refuses an `out` that is a folder, or the checkpoint itself
    (its training state would be lost)."""
    path, out = Path(path), Path(out)
    ckpt = load(path, engine="numpy")
    if out.is_dir():
        raise CheckpointError(
            f"--out {shown_path(out)} is a folder; give the file's name, "
            f"e.g. --out {shown_path(out / 'model.safetensors')}"
        )
    if out.exists() and os.path.samefile(out, path):
        raise CheckpointError(
            f"--out {shown_path(out)} is the checkpoint being exported; the export would replace its "
            "training state (give another --out)"
        )
    raw = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "charnext_version": __version__,
        "created": _now(),
        "model_config": ckpt.config.to_dict(),
        "vocab": list(ckpt.vocab.chars),
        "state_dict": ckpt.raw["state_dict"],
        "step": ckpt.step,
        "start": ckpt.start.to_dict(),
    }
    if isinstance(ckpt.raw.get("vocab_counts"), list):  # for evaluate's frequencies figure
        raw["vocab_counts"] = ckpt.raw["vocab_counts"]
    if ckpt.line_mode:
        raw["train_config"] = {"lines": True}  # generation stops at the end of a line
        if ckpt.raw.get("line_index") is not None:
            raw["line_index"] = ckpt.raw["line_index"]
    return _write(out, raw)


# -- reading -----------------------------------------------------------------------------------


def _from_json(value: Any, tensor: Callable[[str], Any]) -> Any:
    """Inverse of `_to_json`: tagged objects become tensors (`tensor(name)`), tuples, floats."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "__tensor__":
                return tensor(inner)
            if tag == "__tuple__":
                return tuple(_from_json(v, tensor) for v in inner)
            if tag == "__float__":
                return float(inner)
            if tag == "__dict__":
                return {_from_json(k, tensor): _from_json(v, tensor) for k, v in inner}
        return {k: _from_json(v, tensor) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v, tensor) for v in value]
    return value


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {shown_path(path)} (train one with `charnext train`)")
    if path.is_dir():
        raise CheckpointError(f"{shown_path(path)} is a directory, not a checkpoint")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {shown_path(path)}: {e.strerror or e}") from None
    if not data:
        raise CheckpointError(f"{shown_path(path)} is empty, not a charnext checkpoint")
    return data


def _read_format2(path: Path, data: bytes, convert: Callable[[np.ndarray, bool], Any]) -> dict:
    """The fields of a format-2 file, each tensor given as `convert(array, is_bf16)`."""
    try:
        file = tensorfile.read(data)
    except tensorfile.TensorFileError as e:
        raise CheckpointError(f"{shown_path(path)} is not a readable charnext checkpoint: {e}") from None

    def tensor(name: str) -> Any:
        if not isinstance(name, str) or name not in file.tensors:
            raise ValueError(f"tensor {name!r} is missing")
        return convert(file.tensors[name], name in file.bf16)

    meta = file.metadata
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{shown_path(path)} is a safetensors file, but not a charnext checkpoint")
    raw: dict[str, Any] = {"format": FORMAT}
    try:
        raw["format_version"] = int(meta.get("format_version", ""))
    except ValueError:
        raise CheckpointError(f"{shown_path(path)} is damaged: field 'format_version' is malformed") from None
    for key, text in meta.items():
        if key in raw:
            continue
        try:
            raw[key] = _from_json(json.loads(text), tensor)
        except (ValueError, TypeError, RecursionError) as e:
            raise CheckpointError(
                f"{shown_path(path)} is damaged: field '{key}' is malformed ({first_line(e)})"
            ) from None
    return raw


def _torch_load(path: Path) -> dict:
    """A format-1 file: torch.load with weights_only=True, so that no code in it can run."""
    import torch

    try:
        # weights_only=True: the unpickler accepts tensors and plain values only, so a hostile
        # file cannot run code; anything it refuses is reported as not a charnext checkpoint.
        with warnings.catch_warnings():  # torch warns about odd pickles; we report them ourselves
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - every failure here means "unusable file"
        reason = first_line(e)
        if "weights_only" in str(e) or "Unsupported global" in str(e) or "Unpickler" in str(e):
            reason = "it is corrupt, or holds objects other than tensors and plain values (never loaded)"
        raise CheckpointError(f"{shown_path(path)} is not a readable charnext checkpoint: {reason}") from None


def _check(path: Path, raw: Any) -> dict:
    """`raw` if it has the fields every checkpoint has, of the right kinds, and its optional
    fields (those inspect, evaluate and resuming read) are of their kinds where present."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{shown_path(path)} is not a charnext checkpoint")
    for key, kind in _REQUIRED.items():
        if not isinstance(raw.get(key), kind) or isinstance(raw.get(key), bool):
            raise CheckpointError(f"{shown_path(path)} is damaged: field '{key}' is missing or malformed")
    if raw["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{shown_path(path)} has checkpoint format {raw['format_version']}, newer than this charnext "
            f"{__version__} reads (format {FORMAT_VERSION}); upgrade charnext"
        )
    for key, ok in _OPTIONAL.items():
        if raw.get(key) is not None and not ok(raw[key], raw):
            raise CheckpointError(f"{shown_path(path)} is damaged: field '{key}' is malformed")
    return raw


def is_whole(v: Any) -> bool:
    """A whole number, 0 or more (not a bool)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0


def is_number(v: Any) -> bool:
    """A number (not a bool; NaN and infinities included: a loss may be one)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _file_name(v: Any) -> bool:
    """A plain file name (the metrics log's, found beside the checkpoint): no folder in it."""
    return isinstance(v, str) and v not in ("", ".", "..") and not any(c in v for c in "/\\\0")


def _history(v: Any, raw: dict) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(xs, list) and all(x is None or is_number(x) for x in xs)
        for k, xs in v.items()
    )


def _text(v: Any, raw: dict) -> bool:
    return isinstance(v, dict) and isinstance(v.get("sha256"), str) and is_whole(v.get("length"))


def _summary(v: Any, raw: dict) -> bool:
    return isinstance(v, dict) and (v.get("elapsed") is None or is_number(v["elapsed"]))


def _counts(v: Any, raw: dict) -> bool:  # its length is checked with the vocabulary (_model_of)
    return isinstance(v, list) and all(map(is_whole, v))


def _line_index(v: Any, raw: dict) -> bool:
    """Sorted 64-bit hashes of the training lines: a 1-D int64 tensor (numpy's or torch's)."""
    if isinstance(v, np.ndarray):
        return v.ndim == 1 and v.dtype == np.int64
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(v, torch.Tensor) and v.dim() == 1 and v.dtype == torch.int64


def _kind(kind: type) -> Callable[[Any, dict], bool]:
    return lambda v, raw: isinstance(v, kind)


# What the optional fields must be where present (None is always allowed): what inspect,
# evaluate and a resumed run read from them without further checks.
_OPTIONAL: dict[str, Callable[[Any, dict], bool]] = {
    "charnext_version": _kind(str),
    "created": _kind(str),
    "train_config": _kind(dict),
    "step": lambda v, raw: is_whole(v),
    "optimizer": _kind(dict),
    "history": _history,
    "text": _text,
    "summary": _summary,
    "resume": _kind(dict),
    "provenance": _kind(dict),
    "metrics_log": lambda v, raw: _file_name(v),
    "vocab_counts": _counts,
    "line_index": _line_index,
}


def _read(path: Path, convert: Callable[[np.ndarray, bool], Any]) -> dict:
    """The checked fields of a checkpoint of either format.

    A format-2 file's tensors are given as `convert(array, is_bf16)` (no torch imported); a
    format-1 file's are torch tensors. A file that is neither is refused before anything
    parses it.
    """
    data = _read_bytes(path)
    if tensorfile.looks_like(data[:9]):
        raw = _read_format2(path, data, convert)
    elif data.startswith(_ZIP) or data.startswith(_PICKLE):
        raw = _torch_load(path)
    else:
        raise CheckpointError(
            f"{shown_path(path)} is not a readable charnext checkpoint: "
            "neither a safetensors file nor a torch file"
        )
    return _check(path, raw)


def load_raw(path: str | Path) -> dict:
    """The checkpoint's fields with torch tensors (what training and resuming need), checked."""
    import torch

    def to_torch(a: np.ndarray, bf16: bool) -> torch.Tensor:
        if bf16:  # the bits of bfloat16 values
            return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
        return torch.from_numpy(a.copy())  # a writable copy, as torch.load gives

    path = Path(path)
    raw = _read(path, to_torch)
    _model_of(path, raw)  # the weights fit the configuration, as `load` checks
    return raw


def _to_numpy(obj: Any) -> Any:
    """Every torch tensor in nested dicts, lists and tuples (from a format-1 file) as a numpy
    array; bfloat16 widened to float32, which numpy lacks."""
    import torch

    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(v) for v in obj)
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    return obj


def _model_of(path: Path, raw: dict) -> tuple[Vocab, ModelConfig]:
    """The vocabulary and model configuration, checked against each other and the weights."""
    try:
        vocab = Vocab(tuple(raw["vocab"]))
        config = ModelConfig(**raw["model_config"])
        if config.vocab_size != len(vocab):
            raise ValueError("vocabulary size does not match the model")
        counts = raw.get("vocab_counts")
        if counts is not None and len(counts) != len(vocab):
            raise ValueError("field 'vocab_counts' does not match the vocabulary")
        weights = raw["state_dict"]
        if config.num_layers > len(weights):  # before listing the layers: a damaged count may be huge
            raise ValueError(f"num_layers {config.num_layers} does not match the {len(weights)} weights")
        expected = parameter_shapes(config)
        missing = [k for k in expected if k not in weights]
        unexpected = [k for k in weights if k not in expected]
        if missing or unexpected:
            raise ValueError(f"weights do not match the model (missing {missing}, unexpected {unexpected})")
        for name, shape in expected.items():
            if _float_shape(weights[name]) != shape:
                raise ValueError(f"weight {name} is not a float tensor of shape {list(shape)}")
    except (TypeError, ValueError, KeyError, ConfigError) as e:
        raise CheckpointError(f"{shown_path(path)} is damaged: {first_line(e)}") from None
    return vocab, config


def _float_shape(w: Any) -> tuple[int, ...] | None:
    """The shape of a floating-point tensor, numpy's or torch's; None for anything else."""
    if isinstance(w, np.ndarray):
        return tuple(w.shape) if w.dtype.kind == "f" else None
    torch = sys.modules.get("torch")  # a torch tensor can only exist if torch is imported
    if torch is not None and isinstance(w, torch.Tensor):
        return tuple(w.shape) if w.dtype.is_floating_point else None
    return None


def load(path: str | Path, device: str | torch.device = "cpu", engine: str = "torch") -> Checkpoint:
    """Load a checkpoint of either format, checked, its weights ready for `engine`.

    With engine "torch" the torch model is built now, in eval mode on `device`; with "numpy"
    nothing imports torch (for a format-2 file), and `.model` is still there on first use.
    """
    from charnext.modeling.runner import resolve_engine

    engine = resolve_engine(engine, str(device))
    path = Path(path)
    raw = _read(path, lambda a, bf16: tensorfile.bf16_to_float32(a) if bf16 else a)
    if raw["format_version"] < 2:
        raw = _to_numpy(raw)
    vocab, config = _model_of(path, raw)
    ckpt = Checkpoint(vocab, config, raw, path, str(device), engine)
    if engine == "torch":
        ckpt.model  # noqa: B018 - build it now, as loading always did
    return ckpt
