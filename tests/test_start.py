"""Predictions start where training started: every view of a model reads a prefix the same way.

A line-mode model reads each line after a newline, from the zero state; `predict`, generation,
`evaluate` (and its --show view), `play`, the report and training's own view must all agree on
the probabilities it gives, for every cell.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from charnext import api
from charnext.cli.app import app
from charnext.inference.steps import Reader, Start, read
from charnext.inside.report import collect
from charnext.text.data import pad_lines

PREFIX = "emma"
TOL = 1e-5


@pytest.fixture(scope="module", params=["rnn", "gru", "lstm"])
def line_model(request, tmp_path_factory):
    """A small line-mode model of each cell, trained briefly on names."""
    base = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail"]
    text = "\n".join(base * 12) + "\n"
    path = tmp_path_factory.mktemp(request.param) / "names.pt"
    api.train(
        text, out=path, steps=40, lines=True, cell=request.param, hidden_size=24, num_layers=2,
        precision="fp32", device="cpu", seed=1,
    )  # fmt: skip
    return path


def _training_view(ckpt, line: str) -> np.ndarray:
    """Probabilities (T, V) as training computes them: the padded batch `newline + line`."""
    vocab = ckpt.vocab
    batch = pad_lines([vocab.encode(line)], vocab.chars.index("\n"))
    with torch.no_grad():
        logits, _ = ckpt.model(batch.x.long())
    return torch.softmax(logits[0].double(), dim=-1).numpy()  # (T, V): after "\n", e, m, m, a


def test_every_view_agrees_with_training(line_model):
    ckpt = api.load(line_model, engine="numpy")
    torch_ckpt = api.load(line_model, engine="torch")
    chars = ckpt.vocab.chars
    truth = _training_view(ckpt, PREFIX)  # row t+1: after reading PREFIX[t]

    def check(top, t, what):
        for c, p in top:
            assert abs(p - truth[t + 1, chars.index(c)]) < TOL, (what, t, c)

    # predict, on both engines, and through the CLI's JSON
    for c in (ckpt, torch_ckpt):
        for t, s in enumerate(api.predict(c, PREFIX, alternatives=5).steps):
            check(s.top, t, c.engine)
    out = CliRunner().invoke(app, ["predict", PREFIX, "-c", str(line_model), "--json", "--alternatives", "5"])
    assert out.exit_code == 0, out.output
    for t, s in enumerate(json.loads(out.stdout)["steps"]):
        check([(x["char"], x["probability"]) for x in s["top"]], t, "cli")
    # a prefix that begins with the newline the line starts with reads the same
    for t, s in enumerate(api.predict(ckpt, "\n" + PREFIX, alternatives=5).steps[1:]):
        check(s.top, t, "newline first")

    # evaluate --show: the probability of each character of the line, and evaluate's loss
    view = api.surprisal(ckpt, PREFIX + "\n", alternatives=5)
    for t, c in enumerate(view.chars):
        assert abs(c.prob - truth[t, chars.index(c.char)]) < TOL, ("surprisal", t)
    targets = [chars.index(c) for c in PREFIX + "\n"]
    loss = -np.mean([math.log(truth[t, i]) for t, i in enumerate(targets)])
    assert abs(api.evaluate(ckpt, PREFIX + "\n").loss - loss) < TOL

    # play: typing the prefix one character at a time
    session = api.play_session(torch_ckpt)
    check(session.top(5), -1, "play start")
    for t, ch in enumerate(PREFIX):
        session.type(ch)
        check(session.top(5), t, "play")

    # the report's per-step table
    data = collect(torch_ckpt, text=PREFIX + "\n" + PREFIX + "\n", prefix=PREFIX, units=0, chars=10)
    for t, s in enumerate(data.prefix_steps):
        check(s["top"], t, "report")

    # generation: greedy continues with the most likely character after the prefix
    (greedy,) = api.generate(ckpt, PREFIX, length=1, sample=api.SampleConfig(temperature=0))
    expected = chars[int(np.argmax(truth[len(PREFIX)]))]
    assert greedy == expected.rstrip("\n")  # a line-mode sample drops its final newline


def test_line_mode_reads_each_line_from_zero(line_model):
    """A newline inside a line-mode prefix starts the next line afresh, as training does."""
    ckpt = api.load(line_model, engine="numpy")
    alone = api.predict(ckpt, "ava").steps
    after = api.predict(ckpt, "emma\nava").steps[-3:]
    for a, b in zip(alone, after):
        assert [c for c, _ in a.top] == [c for c, _ in b.top]
        assert np.allclose([p for _, p in a.top], [p for _, p in b.top], atol=TOL)


def test_start_of_old_checkpoints():
    """Files without the `start` field start as they were trained."""
    assert Start.of({"train_config": {"lines": True}}) == Start("\n", True)
    assert Start.of({"train_config": {"lines": False}}) == Start("", False)
    assert Start.of({}) == Start("", False)
    assert Start.of({"start": {"prime": "\n\n"}, "train_config": {}}) == Start("\n\n", False)


def test_prime_is_read_first(hihello):
    """A prime is read from the zero state before the text, on both engines alike."""
    for engine in ("numpy", "torch"):
        ckpt = api.load(hihello, engine=engine)
        primed, _ = read(Reader(ckpt.runner, ckpt.vocab, Start("hih")), "ell")
        whole, _ = read(Reader(ckpt.runner, ckpt.vocab, Start()), "hihell")
        assert np.allclose(primed[0], whole[0, 3:], atol=TOL)
        alone, _ = read(Reader(ckpt.runner, ckpt.vocab, Start("hih")), "")
        assert np.allclose(alone[0, 0], whole[0, 2], atol=TOL)
