"""Writing checkpoints: format 2 (safetensors), atomically, and the inference-only export."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from charnext.errors import CheckpointError
from charnext.storage import tensorfile
from charnext.text.paths import shown_path
from charnext.text.vocab import Vocab
from charnext.version import __version__

if TYPE_CHECKING:  # torch is imported only where a torch model or a format-1 file needs it
    import torch

    from charnext.modeling.model import CharModel
from charnext.storage.reading import load
from charnext.storage.replacing import EXPORT, check_replaceable, umask
from charnext.storage.validation import FORMAT, FORMAT_VERSION

# JSON cannot hold everything a checkpoint holds, so four tagged objects stand in for what it
# lacks: {"__tensor__": name} a tensor stored in the file under that name, {"__tuple__": [...]}
# a tuple, {"__float__": "nan"} a non-finite float, {"__dict__": [[key, value], ...]} a dict
# whose keys are not all strings (the optimizer's state is keyed by parameter number).
_TAGS = ("__tensor__", "__tuple__", "__float__", "__dict__")


def to_json(value: Any, path: list[str], tensors: dict[str, np.ndarray], bf16: set[str]) -> Any:
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
        return to_json(value.item(), path, tensors, bf16)
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not any(k in _TAGS for k in value):
            return {k: to_json(v, [*path, k], tensors, bf16) for k, v in value.items()}
        pairs = [[to_json(k, path, tensors, bf16), to_json(v, [*path, str(k)], tensors, bf16)]
                 for k, v in value.items()]  # fmt: skip
        return {"__dict__": pairs}
    if isinstance(value, tuple):
        return {"__tuple__": [to_json(v, [*path, str(i)], tensors, bf16) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [to_json(v, [*path, str(i)], tensors, bf16) for i, v in enumerate(value)]
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
            data = to_json(value, [key], tensors, bf16)
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
        os.chmod(tmp, 0o666 & ~umask())
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
    return _write(path, record(model, vocab, **extra))


def record(model: CharModel, vocab: Vocab, **extra: Any) -> dict:
    """The fields `save` writes, as they stand now (the tensors are the model's own, not copies)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "charnext_version": __version__,
        "created": _now(),
        "model_config": model.config.to_dict(),
        "vocab": list(vocab.chars),
        "state_dict": _unwrap(model).state_dict(),
        **extra,
    }


def write_record(path: str | Path, raw: dict) -> Path:
    """Write fields `record` gave (kept for later, e.g. the best state of a run), as `save` does."""
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


def _unwrap(model: torch.nn.Module) -> CharModel:
    """The CharModel inside a DistributedDataParallel or compiled wrapper."""
    return getattr(model, "module", model)


def export(path: str | Path, out: str | Path, force: bool = False) -> Path:
    """Write an inference-only file: the weights, the vocabulary and the model's configuration,
    where it starts reading, the characters' counts (plus, for a line-mode model, that it is one
    and its training lines' hashes). Refuses an `out` that is a folder, or the checkpoint itself
    (its training state would be lost), and any file but an earlier export unless `force`."""
    path, out = Path(path), Path(out)
    ckpt = load(path, engine="numpy")
    if out.is_dir():
        raise CheckpointError(
            f"out (--out) {shown_path(out)} is a folder; give the file's name, "
            f"e.g. --out {shown_path(out / 'model.safetensors')}"
        )
    if out.exists() and os.path.samefile(out, path):
        raise CheckpointError(
            f"out (--out) {shown_path(out)} is the checkpoint being exported; the export would replace its "
            "training state (give another --out)"
        )
    check_replaceable(out, EXPORT, force)
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
