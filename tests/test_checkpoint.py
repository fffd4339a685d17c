"""Checkpoints: round trip, atomic writes, and every kind of bad file rejected safely."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import pytest
import torch

from charnext import checkpoint as ckpt
from charnext.config import ModelConfig
from charnext.errors import CheckpointError
from charnext.model import CharModel
from charnext.vocab import Vocab


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    vocab = Vocab.from_text("hihello")
    model = CharModel(ModelConfig(vocab_size=len(vocab), cell="gru", hidden_size=8, num_layers=2))
    path = ckpt.save(tmp_path / "model.pt", model, vocab, step=3, history={"loss": [1.0, 0.5]})
    return path, model, vocab


def test_round_trip_gives_identical_logits(saved):
    path, model, vocab = saved
    loaded = ckpt.load(path)
    assert loaded.vocab == vocab
    assert loaded.config == model.config
    idx = vocab.encode("hihell").long()[None]
    model.eval()
    assert torch.equal(loaded.model(idx)[0], model(idx)[0])
    assert loaded.step == 3


def test_loads_with_plain_torch_weights_only(saved):
    raw = torch.load(saved[0], weights_only=True, map_location="cpu")
    assert raw["format"] == "charnext-checkpoint"
    assert raw["vocab"] == ["h", "i", "e", "l", "o"]
    assert isinstance(raw["state_dict"]["head.weight"], torch.Tensor)


def test_interrupted_save_keeps_the_old_file(saved, monkeypatch):
    path, model, vocab = saved
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(path, model, vocab)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        ckpt.load(tmp_path / "nope.pt")


def test_not_a_charnext_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a charnext checkpoint"):
        ckpt.load(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="not a readable charnext checkpoint"):
        ckpt.load(path)


def test_truncated_file(saved):
    path = saved[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        ckpt.load(path)


def test_newer_format_version(saved):
    path = saved[0]
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = ckpt.FORMAT_VERSION + 1
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="newer than this charnext"):
        ckpt.load(path)


def test_damaged_fields(saved):
    path = saved[0]
    raw = torch.load(path, weights_only=True)
    raw["vocab"] = ["h", "i"]  # no longer matches the model
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="damaged"):
        ckpt.load(path)


class _Hostile:
    """Unpickling this would create a file."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_hostile_pickle_in_torch_zip_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "charnext-checkpoint", "payload": _Hostile(marker)}, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="never loaded"):
        ckpt.load(path)
    assert not marker.exists()


def test_hostile_plain_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    buf = io.BytesIO()
    pickle.dump(_Hostile(marker), buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError):
        ckpt.load(path)
    assert not marker.exists()
    # the same bytes really would run code under an unrestricted unpickler
    pickle.loads(buf.getvalue()).close()
    assert marker.exists()
