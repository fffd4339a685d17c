"""Predictions start where training started: every view of a model reads a prefix the same way.

A line-mode model reads each line after a newline, from the zero state; `predict`, generation,
`evaluate` (and its --show view), `play`, the report and training's own view must all agree on
the probabilities it gives, for every cell.
"""

from __future__ import annotations

import json
import math
import re

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


@pytest.fixture(scope="module")
def started_models(tmp_path_factory):
    """A line model and a stream model whose start is a prime (its text has blank lines), each
    with the training run that made it (to draw its previews)."""
    from charnext.training.trainer import PREVIEW_SEED

    folder = tmp_path_factory.mktemp("starts")
    names = "\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"] * 10) + "\n"
    prose = "the cat sat.\n\nthe dog ran.\nthe hen ate.\n\n" * 30
    models = {}
    for kind, text, lines in (("line", names, True), ("stream", prose, False)):
        path = folder / f"{kind}.pt"
        request = api.TrainRequest.of(
            out=path, steps=30, lines=lines, hidden_size=24, num_layers=1, precision="fp32", device="cpu",
            seed=2, val_fraction=0.0, sample_temperature=1.0,
        )  # fmt: skip
        run = api.start_run(api.Source.literal(text), request)
        run.run()
        models[kind] = (path, run)
    assert PREVIEW_SEED is not None
    return models


@pytest.mark.parametrize("kind", ["line", "stream"])
def test_every_caller_starts_where_training_started(started_models, kind):
    """predict, generation, the report, play, the page, training's previews and the server's
    streams all draw a model's first character from where training started: after the prime
    (a line model's newline, read from the zero state). Each caller's seeded first characters
    are the draws, with the same PCG32 streams, from the distribution after the prime."""
    from charnext.config import SampleConfig
    from charnext.inference.sampling import choose, stream_rng
    from charnext.inference.steps import softmax
    from charnext.inference.streams import StreamSpec
    from charnext.inside.page import CHECK_LINES, check_text
    from charnext.training.trainer import PREVIEW_SEED

    path, run = started_models[kind]
    ckpt = api.load(path, engine="numpy")
    assert ckpt.start.prime == ("\n" if kind == "line" else "\n\n") and ckpt.start.lines == (kind == "line")
    after_prime, _ = read(ckpt, "")  # (1, 1, V): where training starts predicting
    assert after_prime is not None

    def firsts(seed: int, n: int, temperature: float = 1.0) -> list[str]:
        sample = SampleConfig(temperature=temperature, seed=seed)
        rows = np.repeat(after_prime[:, -1], n, axis=0)
        chars = [ckpt.vocab.chars[i] for i in choose(rows, sample, [stream_rng(seed, i) for i in range(n)])]
        return ["" if kind == "line" and c == "\n" else c for c in chars]  # a line drawn empty

    sample = SampleConfig(temperature=1.0, seed=5)
    # generation and predict
    drawn = api.generate(ckpt, "", 12, sample, 6)
    assert [s[:1] for s in drawn] == firsts(5, 6)
    completion = api.complete(ckpt, prefix="", length=12, sample=sample, num_samples=6)
    assert [s[:1] for s in completion.samples] == firsts(5, 6)
    # the server's streams
    batch = api.streams(ckpt)
    streams = batch.add_many([StreamSpec("", 3, sample, i) for i in range(6)])
    batch.step()
    assert [s.text[:1] for s in streams] == firsts(5, 6)
    # the report's own sample: a line model's lines, a stream model's text
    data = collect(ckpt, sample=sample, chars=40)
    text = "".join(c["char"] for c in data.surprise)
    if kind == "line":
        lines = text.split("\n")
        assert [line[:1] for line in lines[:3]] == firsts(5, 3)
    else:
        assert text[:1] == firsts(5, 1)[0]
    # play: before anything is typed, the next character is the prediction after the prime
    session = api.play_session(ckpt, SampleConfig(temperature=1.0, seed=5))
    probs = softmax(after_prime[0, -1])
    top = session.top(3)
    assert len(top) == 3
    for c, p in top:
        assert abs(p - probs[ckpt.vocab.chars.index(c)]) < TOL
    # the page's float16 check, when it has no text, samples from the start
    scored, _ = check_text(ckpt, None)
    page_first = [line[:1] for line in scored.split("\n")] if kind == "line" else [scored[:1]]
    expected = firsts(0, CHECK_LINES) if kind == "line" else firsts(0, 1)
    if kind == "line":  # the page keeps the lines that are not blank
        assert page_first == [c for c in expected if c][: len(page_first)]
    else:
        assert page_first == expected
    # training's previews (on the model as trained, torch): the same first character as the checkpoint's
    preview = run._trainer._sample("", 10)
    torch_ckpt = api.load(path, engine="torch")
    assert preview[:1] == firsts(PREVIEW_SEED, 1)[0]
    again = api.generate(torch_ckpt, "", 10, SampleConfig(temperature=1.0, seed=PREVIEW_SEED))[0]
    assert (preview.rstrip("\n") if kind == "line" else preview) == again  # (a line's newline left out)


def test_a_line_models_report_samples_whole_lines(started_models):
    """Without a text, the report of a line model reads whole lines, each from the start, as
    `predict --num-samples` writes them: the model finds them as likely as predict's (within
    10%), where a sample carried across lines read as a third empty lines."""
    from charnext.config import SampleConfig

    path, _ = started_models["line"]
    ckpt = api.load(path, engine="numpy")
    sample = SampleConfig(temperature=0.8, seed=0)  # the report's own
    data = collect(ckpt, sample=sample, chars=600)
    report_probs = [c["prob"] for c in data.surprise if c["prob"] is not None]
    completion = api.complete(
        ckpt, prefix="", length=40, sample=SampleConfig(temperature=0.8, seed=9), num_samples=64
    )
    lines = "\n".join(completion.samples)
    predict_probs = [c.prob for c in api.surprisal(ckpt, lines, length=600).chars if c.prob is not None]
    mean_report, mean_predict = np.mean(report_probs), np.mean(predict_probs)
    assert abs(mean_report - mean_predict) <= 0.1 * mean_predict, (mean_report, mean_predict)
    shown = "".join(c["char"] for c in data.surprise).split("\n")
    assert sum(not line for line in shown) <= len(shown) // 10  # hardly an empty line


def test_a_line_models_report_table_starts_with_its_start(started_models):
    """The report's per-step table of a line model starts, as predict's does, with step 0: the
    prediction after the newline a line is read after, its target the prefix's first character."""
    from charnext.inside.report_html import to_html

    path, _ = started_models["line"]
    ckpt = api.load(path, engine="numpy")
    data = collect(ckpt, text="emma\nava\n", prefix="em", chars=9)
    start = api.predict(ckpt, "em", alternatives=5).start  # the report shows 5
    assert data.start_step == {"input": "\n", "top": start.top, "target": "e"}
    html = to_html(data)
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td class="ch">([^<]*)</td>', html)
    assert rows == [("0", "↵"), ("1", "e"), ("2", "m")]
    stream, _ = started_models["stream"]
    assert collect(api.load(stream, engine="numpy"), text="the cat", prefix="th", chars=5).start_step is None
