"""Checkpoints: round trip, both formats, atomic writes, export, and every kind of bad file
refused in one line, safely (no code in a file ever runs)."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import random
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

from charnext import api
from charnext.config import ModelConfig
from charnext.errors import CheckpointError
from charnext.modeling.model import CharModel
from charnext.storage import checkpoint as ckpt
from charnext.storage import tensorfile
from charnext.text.vocab import Vocab


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    vocab = Vocab.from_text("hihello")
    model = CharModel(ModelConfig(vocab_size=len(vocab), cell="gru", hidden_size=8, num_layers=2))
    path = ckpt.save(tmp_path / "model.pt", model, vocab, step=3, history={"loss": [1.0, 0.5]})
    return path, model, vocab


def _format1(path, model, vocab, **extra):
    """A checkpoint as charnext 0.1 wrote it: a torch.save dict."""
    raw = {"format": "charnext-checkpoint", "format_version": 1, "charnext_version": "0.1.0",
           "model_config": model.config.to_dict(), "vocab": list(vocab.chars),
           "state_dict": model.state_dict(), **extra}  # fmt: skip
    torch.save(raw, path)
    return path


def test_round_trip_gives_identical_logits(saved):
    path, model, vocab = saved
    loaded = ckpt.load(path)
    assert loaded.vocab == vocab
    assert loaded.config == model.config
    idx = vocab.encode("hihell").long()[None]
    model.eval()
    assert torch.equal(loaded.model(idx)[0], model(idx)[0])
    assert loaded.step == 3


def test_is_a_safetensors_file_any_reader_can_use(saved):
    """The official safetensors package reads the weights and the JSON metadata."""
    path, model, vocab = saved
    weights = safetensors.numpy.load_file(path)
    for name, tensor in model.state_dict().items():
        assert np.array_equal(weights[name], tensor.numpy())
    with safetensors.safe_open(path, "np") as f:
        meta = f.metadata()
    assert meta["format"] == "charnext-checkpoint" and meta["format_version"] == "2"
    assert json.loads(meta["vocab"]) == ["h", "i", "e", "l", "o"]
    assert json.loads(meta["model_config"])["cell"] == "gru"
    assert json.loads(meta["state_dict"])["head.bias"] == {"__tensor__": "head.bias"}
    assert b"torch" not in path.read_bytes()[:8]  # no pickle anywhere


def test_extra_fields_round_trip_exactly(tmp_path):
    """Any JSON-able field (and tensors inside it) comes back equal, types included."""
    vocab = Vocab.from_text("ab")
    model = CharModel(ModelConfig(vocab_size=2, cell="rnn", hidden_size=4, num_layers=1))
    extra = {
        "source": "/data/text.txt",
        "provenance": {"argv": ["charnext", "train"], "versions": {"python": "3.11"}, "world": 2},
        "history": {"loss": [1.5, float("nan"), float("inf")], "val_loss": []},
        "keyed": {0: {"step": torch.tensor(5.0), "exp_avg": torch.ones(3)}, 1: None},
        "pair": (0.9, 0.999),
        "tags": {"__tensor__": "not a tensor"},  # a key that looks like a tag stays data
        "bf16": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3),
        "none": None,
        "flag": True,
        "big": 2**62 + 1,
        "tiny": 5e-324,
    }
    path = ckpt.save(tmp_path / "x.pt", model, vocab, **extra)
    raw = ckpt.load_raw(path)
    assert raw["source"] == extra["source"] and raw["provenance"] == extra["provenance"]
    assert raw["history"]["loss"][0] == 1.5 and math.isnan(raw["history"]["loss"][1])
    assert raw["history"]["loss"][2] == math.inf
    assert set(raw["keyed"]) == {0, 1} and torch.equal(raw["keyed"][0]["exp_avg"], torch.ones(3))
    assert raw["keyed"][0]["step"].shape == () and raw["keyed"][0]["step"].item() == 5.0
    assert raw["pair"] == (0.9, 0.999) and isinstance(raw["pair"], tuple)
    assert raw["tags"] == {"__tensor__": "not a tensor"}
    assert raw["bf16"].dtype == torch.bfloat16 and torch.equal(raw["bf16"], extra["bf16"])
    assert raw["none"] is None and raw["flag"] is True and raw["big"] == 2**62 + 1 and raw["tiny"] == 5e-324
    # the numpy side widens bfloat16 to float32, exactly
    assert np.array_equal(ckpt.load(path, engine="numpy").raw["bf16"], extra["bf16"].float().numpy())


def test_optimizer_state_round_trips_bitwise(tmp_path):
    vocab = Vocab.from_text("hihello")
    model = CharModel(ModelConfig(vocab_size=5, cell="lstm", hidden_size=8, num_layers=1))
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, fused=True)
    model(torch.zeros(1, 3, dtype=torch.long))[0].sum().backward()
    opt.step()
    rng = torch.get_rng_state()
    path = ckpt.save(tmp_path / "o.pt", model, vocab, optimizer=opt.state_dict(), resume={"rng": rng})
    raw = ckpt.load_raw(path)
    again = torch.optim.AdamW(model.parameters(), lr=0.5, fused=True)
    again.load_state_dict(raw["optimizer"])
    a, b = opt.state_dict(), again.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i, state in a["state"].items():
        for k, v in state.items():
            assert torch.equal(v, b["state"][i][k]) and v.dtype == b["state"][i][k].dtype
    assert torch.equal(raw["resume"]["rng"], rng) and raw["resume"]["rng"].dtype == torch.uint8


def test_format_1_checkpoints_still_load(tmp_path):
    torch.manual_seed(1)
    vocab = Vocab.from_text("hihello")
    model = CharModel(ModelConfig(vocab_size=5, cell="lstm", hidden_size=8, num_layers=2)).eval()
    path = _format1(
        tmp_path / "old.pt", model, vocab, step=9, line_index=torch.tensor([1, 5], dtype=torch.int64)
    )
    loaded = ckpt.load(path)
    idx = vocab.encode("hihell").long()[None]
    assert torch.equal(loaded.model(idx)[0], model(idx)[0]) and loaded.step == 9
    assert isinstance(ckpt.load_raw(path)["state_dict"]["head.weight"], torch.Tensor)
    assert isinstance(loaded.raw["line_index"], np.ndarray)  # numpy, whatever the format
    assert (
        api.predict(api.load(path), "hihell").prediction
        == api.predict(api.load(path, engine="torch"), "hihell").prediction
    )


def test_tensorfile_agrees_with_the_official_package_both_ways(tmp_path):
    arrays = {
        "f32": np.arange(12, dtype=np.float32).reshape(3, 4),
        "f64": np.array([1.5, -2.25]),
        "f16": np.array([0.5, 1.0], dtype=np.float16),
        "i64": np.array([-(2**40), 7], dtype=np.int64),
        "i32": np.array([[1], [2]], dtype=np.int32),
        "i16": np.array([3], dtype=np.int16),
        "u8": np.array([255, 0, 1], dtype=np.uint8),
        "bool": np.array([True, False]),
        "scalar": np.array(4.0, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    ours = tmp_path / "ours.safetensors"
    with open(ours, "wb") as f:
        tensorfile.write(f, arrays, {"k": "v"})
    theirs = safetensors.numpy.load_file(ours)
    assert set(theirs) == set(arrays)
    for k, a in arrays.items():
        assert theirs[k].dtype == a.dtype and np.array_equal(theirs[k], a), k
    official = tmp_path / "theirs.safetensors"
    safetensors.numpy.save_file(arrays, official, metadata={"a": "b"})
    back = tensorfile.read(official.read_bytes())
    assert back.metadata == {"a": "b"}
    for k, a in arrays.items():
        assert back.tensors[k].dtype == a.dtype and np.array_equal(back.tensors[k], a), k
    # bfloat16, which numpy lacks: the official torch writer, our bits reader
    bf = torch.tensor([1.0, -2.5, 3.0e38], dtype=torch.bfloat16)
    safetensors.torch.save_file({"bf": bf}, tmp_path / "bf.safetensors")
    got = tensorfile.read((tmp_path / "bf.safetensors").read_bytes())
    assert "bf" in got.bf16 and np.array_equal(
        tensorfile.bf16_to_float32(got.tensors["bf"]), bf.float().numpy()
    )


def test_interrupted_save_keeps_the_old_file(saved, monkeypatch):
    path, model, vocab = saved
    before = path.read_bytes()

    def broken_write(f, *a, **k):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(tensorfile, "write", broken_write)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(path, model, vocab)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left


def test_export_keeps_only_what_inference_needs(tmp_path, hihello):
    out = ckpt.export(hihello, tmp_path / "model.safetensors")
    assert out.stat().st_size < hihello.stat().st_size / 2
    with safetensors.safe_open(out, "np") as f:
        assert set(f.metadata()) == {"format", "format_version", "charnext_version", "created",
                                     "model_config", "vocab", "state_dict", "step", "start",
                                     "vocab_counts"}  # fmt: skip
        assert not any(k.startswith(("optimizer", "resume")) for k in f.keys())
    a, b = api.load(hihello), api.load(out)
    assert api.predict(b, "hihell").to_dict() == api.predict(a, "hihell").to_dict()
    assert api.generate(b, "hi", 20) == api.generate(a, "hi", 20)
    with pytest.raises(Exception, match="no resumable"):
        from charnext.training.runs import resume_run

        resume_run(out, "hihello")


def test_export_converts_a_format_1_checkpoint(tmp_path):
    torch.manual_seed(2)
    vocab = Vocab.from_text("hihello")
    model = CharModel(ModelConfig(vocab_size=5, cell="rnn", hidden_size=8, num_layers=2, embedding_size=0))
    old = _format1(tmp_path / "old.pt", model, vocab, step=4, optimizer={"state": {}, "param_groups": []})
    out = ckpt.export(old, tmp_path / "new.safetensors")
    assert ckpt.load(out, engine="numpy").raw["format_version"] == 2
    assert api.generate(api.load(out), "hi", 30) == api.generate(api.load(old, engine="torch"), "hi", 30)


def test_the_documented_reader_gets_the_weights(saved):
    """docs/checkpoint-format.md's example: the official package, the metadata, the weights."""
    path, model, vocab = saved
    with safetensors.safe_open(path, "np") as f:
        meta = f.metadata()
        config = json.loads(meta["model_config"])
        weights = {name: f.get_tensor(name) for name in json.loads(meta["state_dict"])}
    assert config["hidden_size"] == 8 and json.loads(meta["vocab"]) == list(vocab.chars)
    loaded = CharModel(ModelConfig(**config))
    loaded.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    again = CharModel(ModelConfig(**config))
    again.load_state_dict(safetensors.torch.load_file(path), strict=False)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
        assert torch.equal(again.state_dict()[name], tensor)


def test_export_of_a_line_mode_model_stays_in_line_mode(tmp_path, names):
    path = tmp_path / "names.pt"
    api.train(
        names, out=path, steps=5, lines=True, hidden_size=8, num_layers=1, precision="fp32", device="cpu"
    )
    out = ckpt.export(path, tmp_path / "names.safetensors")
    exported = api.load(out)
    assert exported.line_mode and api.seen_in_training(exported, "emma") is True


# -- bad files: each refused with one line, nothing in them run ------------------------------


def _refused(path, match: str | None = None) -> str:
    with pytest.raises(CheckpointError) as info:
        ckpt.load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    if match:
        assert match in message, message
    return message


def test_missing_file(tmp_path):
    _refused(tmp_path / "nope.pt", "no such checkpoint")


def test_directory(tmp_path):
    _refused(tmp_path, "is a directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    _refused(path, "is empty")


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "noise.pt"
    path.write_bytes(rng.bytes(4096))
    _refused(path, "not a readable charnext checkpoint")


def test_random_bytes_after_a_plausible_header(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(struct.pack("<Q", 40) + b"{" + os.urandom(200))
    _refused(path, "not a readable charnext checkpoint")


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.99])
def test_truncated_format_2(saved, fraction):
    path = saved[0]
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    _refused(path)


def test_truncated_format_1(tmp_path, saved):
    _, model, vocab = saved
    path = _format1(tmp_path / "old.pt", model, vocab)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _refused(path)


def test_not_a_charnext_checkpoint(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    _refused(other, "not a charnext checkpoint")
    hf = tmp_path / "model.safetensors"
    safetensors.numpy.save_file({"w": np.zeros(2, dtype=np.float32)}, hf)
    _refused(hf, "not a charnext checkpoint")


def _rewrite_metadata(path, **changes):
    """Rewrite a format-2 file with some metadata entries replaced (None: removed)."""
    file = tensorfile.read(path.read_bytes())
    meta = {**file.metadata, **changes}
    meta = {k: v for k, v in meta.items() if v is not None}
    with open(path, "wb") as f:
        tensorfile.write(f, file.tensors, meta, file.bf16)


def test_newer_format_version(saved, tmp_path):
    path, model, vocab = saved
    _rewrite_metadata(path, format_version="3")
    _refused(path, "newer than this charnext")
    old = tmp_path / "old.pt"
    torch.save({"format": "charnext-checkpoint", "format_version": 99, "model_config": {}, "vocab": [],
                "state_dict": {}}, old)  # fmt: skip
    _refused(old, "newer than this charnext")


@pytest.mark.parametrize(
    "change",
    [
        {"vocab": '["h", "i"]'},  # no longer matches the model
        {"vocab": None},
        {"model_config": '{"vocab_size": 5, "cell": "transformer"}'},
        {"model_config": "{not json"},
        {"state_dict": '{"head.weight": {"__tensor__": "missing"}}'},
        {"state_dict": '{"head.weight": {"__tensor__": "head.weight"}}'},  # the other weights gone
        {"state_dict": '{"rnn.weight_ih_l0": {"__tensor__": "head.weight"}}'},
        {"format_version": "two"},
    ],
)
def test_damaged_format_2(saved, change):
    path = saved[0]
    _rewrite_metadata(path, **change)
    _refused(path, "damaged")


def test_damaged_format_1(tmp_path, saved):
    _, model, vocab = saved
    path = _format1(tmp_path / "old.pt", model, vocab)
    raw = torch.load(path, weights_only=True)
    raw["vocab"] = ["h", "i"]
    torch.save(raw, path)
    _refused(path, "damaged")
    raw["vocab"] = list(vocab.chars)
    raw["state_dict"]["head.weight"] = torch.zeros(3, 3)
    torch.save(raw, path)
    _refused(path, "damaged")


@pytest.mark.parametrize("where", ["length", "header", "offsets", "dtype", "data-size"])
def test_damaged_safetensors_structure(saved, where):
    path = saved[0]
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + n].decode()
    if where == "length":
        data[:8] = struct.pack("<Q", len(data) * 2)
    elif where == "header":
        data[8 + n // 2] = ord("\x01")
    elif where == "offsets":
        data[8 : 8 + n] = header.replace('"data_offsets":[0,', '"data_offsets":[4,', 1).encode()
    elif where == "dtype":
        data[8 : 8 + n] = header.replace('"F32"', '"F31"', 1).encode()
    else:
        data += b"\x00" * 16
    path.write_bytes(bytes(data))
    _refused(path, "not a readable charnext checkpoint")


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
    _refused(path, "never loaded")
    assert not marker.exists()


def test_hostile_plain_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    buf = io.BytesIO()
    pickle.dump(_Hostile(marker), buf)
    path.write_bytes(buf.getvalue())
    _refused(path)
    assert not marker.exists()
    # the same bytes really would run code under an unrestricted unpickler
    pickle.loads(buf.getvalue()).close()
    assert marker.exists()


def test_hostile_pickle_inside_format_2_metadata_is_just_text(saved, tmp_path):
    """A format-2 file is JSON and raw numbers: a pickle placed in it is never unpickled."""
    path = saved[0]
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Hostile(marker)).hex()
    _rewrite_metadata(path, payload=json.dumps({"__tensor__": payload}))
    _refused(path, "damaged")
    _rewrite_metadata(path, payload=json.dumps(payload))
    assert ckpt.load(path).raw["payload"] == payload and not marker.exists()


def test_bad_files_through_the_cli_give_one_line_and_no_torch(tmp_path):
    """`charnext predict` and `inspect` on each kind of bad file: exit 1, one line on stderr,
    no traceback; and a bad format-2 or unknown file is refused without importing torch."""
    # noise that does not begin as torch's files do (zip, or the legacy pickle's 0x80): os.urandom
    # began with 0x80 one time in 256, and such a file is rightly handed to torch.load
    noise = b"\x00" + random.Random(7).randbytes(999)
    cases = {"empty.pt": b"", "noise.pt": noise, "header.pt": struct.pack("<Q", 10**6) + b"{}"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        for args in (["predict", "-p", "hi", "-c", str(tmp_path / name)], ["inspect", str(tmp_path / name)]):
            proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "charnext", *args],
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
            lines = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
            assert proc.returncode == 1 and len(lines) == 1 and "error:" in lines[0], (
                name,
                proc.stderr[-500:],
            )
            assert "Traceback" not in proc.stderr
            assert " torch" not in {line.split("|")[-1].rstrip() for line in proc.stderr.splitlines()}
