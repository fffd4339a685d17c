"""One model, two engines: numpy and torch agree on probabilities, greedy text and seeded samples.

Every cell, both input kinds (embedding and one-hot), stream and line mode. The numpy engine
never imports torch: a subprocess checks sys.modules after load, predict and generate.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from charnext import api
from charnext.config import ModelConfig, SampleConfig
from charnext.modeling.model import CharModel
from charnext.modeling.numpy_model import NumpyModel, parameter_shapes
from charnext.storage import checkpoint
from charnext.text.vocab import Vocab

TEXT = "Tyger Tyger, burning bright,\nIn the forests of the night;\n"
KINDS = [(cell, emb) for cell in ("rnn", "gru", "lstm") for emb in (0, 8)]
TOLERANCE = 1e-5  # largest difference allowed between the engines' probabilities


def _model(cell: str, embedding_size: int, vocab: Vocab, seed: int = 0) -> CharModel:
    """A random 2-layer model, its weights spread wider than at initialisation so that its
    predictions are confident and varied, as a trained model's are."""
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=len(vocab), cell=cell, hidden_size=24, num_layers=2,
                         embedding_size=embedding_size)  # fmt: skip
    model = CharModel(config)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model.eval()


@pytest.fixture(scope="module", params=[f"{c}-{'emb' if e else 'onehot'}" for c, e in KINDS])
def saved(request, tmp_path_factory):
    """A checkpoint per cell and input kind, in stream mode and in line mode."""
    cell, kind = request.param.split("-")
    vocab = Vocab.from_text(TEXT)
    model = _model(cell, 8 if kind == "emb" else 0, vocab)
    folder = tmp_path_factory.mktemp(request.param)
    stream = checkpoint.save(folder / "stream.pt", model, vocab, train_config={"lines": False})
    lines = checkpoint.save(folder / "lines.pt", model, vocab, train_config={"lines": True})
    return model, vocab, stream, lines


def test_parameter_shapes_match_the_torch_model():
    vocab = Vocab.from_text(TEXT)
    for cell, emb in KINDS:
        model = _model(cell, emb, vocab)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert parameter_shapes(model.config) == expected
        assert list(parameter_shapes(model.config)) == list(expected)  # the same order


def _max_prob_difference(model: CharModel, vocab: Vocab) -> float:
    """Largest difference of next-character probabilities over a batch of texts, read in
    several calls with the state carried: two windows, then one character at a time (the
    numpy engine's separate path for a single step)."""
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(vocab), size=(4, 43))
    numpy_model = NumpyModel(model.config, {k: v.numpy() for k, v in model.state_dict().items()})
    worst = 0.0
    t_state = n_state = None
    for part in (idx[:, :25], idx[:, 25:40], idx[:, 40:41], idx[:, 41:42], idx[:, 42:]):
        with torch.no_grad():
            t_logits, t_state = model(torch.from_numpy(part), t_state)
        n_logits, n_state = numpy_model.forward(part, n_state)
        p_torch = torch.softmax(t_logits.double(), -1).numpy()
        p_numpy = torch.softmax(torch.from_numpy(n_logits).double(), -1).numpy()
        worst = max(worst, float(np.abs(p_torch - p_numpy).max()))
        # the carried state has the same layout and values: either engine could continue it
        assert n_state.shape == tuple(t_state.shape)
        assert np.abs(n_state - t_state.numpy()).max() < TOLERANCE
    return worst


@pytest.mark.parametrize(("cell", "embedding_size"), KINDS)
def test_probabilities_match_within_tolerance(cell, embedding_size):
    vocab = Vocab.from_text(TEXT)
    for seed in range(3):
        model = _model(cell, embedding_size, vocab, seed)
        assert _max_prob_difference(model, vocab) < TOLERANCE


def test_replacing_a_numpy_models_weights_replaces_what_it_computes():
    # the forward pass keeps each layer's weights prepared for its products; assigning a weight
    # (as the page's rounded copy of a model does) must drop them, the head's too
    vocab = Vocab.from_text(TEXT)
    a, b = (_model("lstm", 0, vocab, seed) for seed in (0, 1))
    first, second = (NumpyModel(m.config, {k: v.numpy() for k, v in m.state_dict().items()}) for m in (a, b))
    idx = np.random.default_rng(0).integers(0, len(vocab), size=(64, 3))
    before, _ = first.forward(idx)
    for mine, theirs in zip(first.layers, second.layers):
        for name in mine.FOLDED:
            if getattr(theirs, name, None) is not None:
                setattr(mine, name, getattr(theirs, name))
    changed, _ = first.forward(idx)
    assert not np.array_equal(changed, before)  # the layers now, the head not yet
    first.head_w, first.head_b = second.head_w, second.head_b
    assert np.array_equal(first.forward(idx)[0], second.forward(idx)[0])


def test_predict_matches(saved):
    _, _, stream, _ = saved
    a = api.predict(api.load(stream, engine="numpy"), "Tyger Tyger, burning")
    b = api.predict(api.load(stream, engine="torch"), "Tyger Tyger, burning")
    assert a.prediction == b.prediction
    for s, t in zip(a.steps, b.steps):
        assert [c for c, _ in s.top] == [c for c, _ in t.top]
        assert max(abs(p - q) for (_, p), (_, q) in zip(s.top, t.top)) < TOLERANCE


@pytest.mark.parametrize("mode", ["stream", "lines"])
def test_greedy_generation_is_identical(saved, mode):
    path = saved[2] if mode == "stream" else saved[3]
    texts = {
        engine: api.generate(api.load(path, engine=engine), "In the", length=150, num_samples=2)
        for engine in ("numpy", "torch")
    }
    assert texts["numpy"] == texts["torch"]
    assert texts["numpy"][0] == texts["numpy"][1]  # greedy: every sample alike
    if mode == "lines":
        assert all("\n" not in t for t in texts["numpy"])


@pytest.mark.parametrize("mode", ["stream", "lines"])
@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_seeded_sampling_is_reproducible(saved, mode, engine):
    path = saved[2] if mode == "stream" else saved[3]
    ckpt = api.load(path, engine=engine)

    def sample(seed):
        options = SampleConfig(temperature=1.0, top_k=8, top_p=0.95, seed=seed)
        return api.generate(ckpt, "" if mode == "lines" else "T", length=80, sample=options, num_samples=4)

    first = sample(5)
    assert sample(5) == first
    assert sample(6) != first
    assert len(set(first)) > 1  # the samples of one batch differ from each other


def test_same_seed_gives_the_same_text_on_both_engines(saved):
    """The draw is numpy code shared by both engines; their probabilities differ by ~1e-7, far
    too little to move a draw in these 4 x 100 characters."""
    options = SampleConfig(temperature=0.9, seed=3)
    texts = [api.generate(api.load(saved[2], engine=e), "T", 100, options, 4) for e in ("numpy", "torch")]
    assert texts[0] == texts[1]


def test_numpy_engine_never_imports_torch(saved):
    _, _, stream, lines = saved
    code = (
        "import sys, charnext\n"
        f"ckpt = charnext.load({str(stream)!r})\n"
        "assert charnext.predict(ckpt, 'Tyger').prediction\n"
        "s = charnext.SampleConfig(temperature=1.0, top_k=5, top_p=0.9, seed=1)\n"
        "assert len(charnext.generate(ckpt, 'In', 50, s, num_samples=3)) == 3\n"
        f"line = charnext.load({str(lines)!r})\n"
        "charnext.generate(line, '', 30, s, num_samples=2)\n"
        "from charnext.api import seen_in_training\n"
        "seen_in_training(line, 'x')\n"
        "assert ckpt.engine == 'numpy', ckpt.engine\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_engine_choice(saved):
    stream = saved[2]
    assert api.load(stream).engine == "numpy"  # auto on the CPU
    assert api.load(stream, engine="torch").engine == "torch"
    from charnext.errors import ConfigError
    from charnext.modeling.runner import resolve_engine

    assert resolve_engine("auto", "cuda") == "torch"
    with pytest.raises(ConfigError, match="CPU only"):
        resolve_engine("numpy", "cuda")
    with pytest.raises(ConfigError, match="unknown engine"):
        resolve_engine("jax")


def test_numpy_model_is_the_torch_model_on_a_format_1_checkpoint(saved, tmp_path):
    """A checkpoint written by charnext 0.1 (a torch pickle) runs on both engines alike."""
    model, vocab, _, _ = saved
    old = tmp_path / "old.pt"
    torch.save(
        {"format": "charnext-checkpoint", "format_version": 1, "model_config": model.config.to_dict(),
         "vocab": list(vocab.chars), "state_dict": model.state_dict(), "step": 7},
        old,
    )  # fmt: skip
    a = api.generate(api.load(old, engine="numpy"), "Tyger", 60)
    b = api.generate(api.load(old, engine="torch"), "Tyger", 60)
    assert a == b
