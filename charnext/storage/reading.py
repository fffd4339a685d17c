"""Reading checkpoints safely: format 2 without pickle or torch, format 1 through
torch.load(weights_only=True)."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from charnext.config import ModelConfig
from charnext.errors import CheckpointError, ConfigError
from charnext.modeling.numpy_model import parameter_shapes
from charnext.storage import tensorfile
from charnext.text.paths import shown_path
from charnext.text.vocab import Vocab

if TYPE_CHECKING:  # torch is imported only where a torch model or a format-1 file needs it
    import torch

from charnext.storage.handle import Checkpoint, first_line
from charnext.storage.validation import FORMAT, PICKLE, ZIP, check


def _from_json(value: Any, tensor: Callable[[str], Any]) -> Any:
    """Inverse of `to_json`: tagged objects become tensors (`tensor(name)`), tuples, floats."""
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


def _read(path: Path, convert: Callable[[np.ndarray, bool], Any]) -> dict:
    """The checked fields of a checkpoint of either format.

    A format-2 file's tensors are given as `convert(array, is_bf16)` (no torch imported); a
    format-1 file's are torch tensors. A file that is neither is refused before anything
    parses it.
    """
    data = _read_bytes(path)
    if tensorfile.looks_like(data[:9]):
        raw = _read_format2(path, data, convert)
    elif data.startswith(ZIP) or data.startswith(PICKLE):
        raw = _torch_load(path)
    else:
        raise CheckpointError(
            f"{shown_path(path)} is not a readable charnext checkpoint: "
            "neither a safetensors file nor a torch file"
        )
    return check(path, raw)


def load_raw(path: str | Path) -> dict:
    """The checkpoint's fields with torch tensors (what training and resuming need), checked."""
    import torch

    def to_torch(a: np.ndarray, bf16: bool) -> torch.Tensor:
        if bf16:  # the bits of bfloat16 values
            return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
        return torch.from_numpy(a.copy())  # a writable copy, as torch.load gives

    path = Path(path)
    raw = _read(path, to_torch)
    model_of(path, raw)  # the weights fit the configuration, as `load` checks
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


def model_of(path: Path, raw: dict) -> tuple[Vocab, ModelConfig]:
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
    vocab, config = model_of(path, raw)
    ckpt = Checkpoint(vocab, config, raw, path, str(device), engine)
    if engine == "torch":
        ckpt.model  # noqa: B018 - build it now, as loading always did
    return ckpt
