"""Independent streams drawn together: a row's arithmetic never depends on its neighbours, so a
seeded stream draws the same characters alone, in any batch, joining or leaving at any step, and
as `generate` (and `charnext predict --seed`) draws them; stop strings and finish reasons."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import POEM

from charnext import api
from charnext.config import ModelConfig, SampleConfig
from charnext.inference.streams import StreamBatch, StreamSpec, _longest_stop_prefix
from charnext.modeling.numpy_model import NumpyModel, parameter_shapes
from charnext.modeling.products import Matrix


def _random_model(cell: str, hidden: int, layers: int, vocab: int, seed: int = 0) -> NumpyModel:
    config = ModelConfig(
        vocab_size=vocab, cell=cell, hidden_size=hidden, num_layers=layers, embedding_size=16
    )
    rng = np.random.default_rng(seed)
    weights = {name: (rng.standard_normal(shape) * 0.3).astype(np.float32)
               for name, shape in parameter_shapes(config).items()}  # fmt: skip
    return NumpyModel(config, weights)


@pytest.mark.parametrize(("cell", "hidden", "vocab"), [("lstm", 256, 65), ("gru", 64, 97), ("rnn", 32, 5)])
def test_a_rows_logits_do_not_depend_on_its_neighbours(cell, hidden, vocab):
    model = _random_model(cell, hidden, 2, vocab)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, vocab, size=(70, 6))
    full, state = model.forward(idx)
    for size in (1, 2, 3, 5, 17, 33, 64):
        for first in (0, 6):
            part, part_state = model.forward(idx[first : first + size])
            assert np.array_equal(part, full[first : first + size]), (size, first)
            assert np.array_equal(part_state, state[:, first : first + size])
    # one step on from a joined state, as a batch of streams takes it
    step, _ = model.forward(idx[:40, :1], state[:, :40])
    alone, _ = model.forward(idx[7:8, :1], state[:, 7:8])
    assert np.array_equal(step[7], alone[0])


def test_a_state_in_either_layout_gives_the_same_step():
    # the model returns its states gate-major in memory; one laid out as the torch engine lays
    # them (C order), or joined and cut as a batch of streams does, steps to the same bits
    model = _random_model("lstm", 40, 2, 25)
    idx = np.random.default_rng(5).integers(0, 25, size=(9, 4))
    _, state = model.forward(idx)
    assert not state.flags.c_contiguous
    for other in (np.ascontiguousarray(state), state.copy(order="C"), np.array(state.tolist(), np.float32)):
        a, sa = model.forward(idx[:, :1], state)
        b, sb = model.forward(idx[:, :1], other)
        assert np.array_equal(a, b) and np.array_equal(sa, sb)
    # the page's rounded copy of the weights takes effect (the gate-major copies are made anew)
    model.head_b = model.head_b + 1.0
    assert np.allclose(model.forward(idx[:, :1], state)[0], a + 1.0, atol=1e-5)


@pytest.mark.parametrize("shape", [(256, 65), (256, 1024), (40, 120)])
def test_the_product_probe_finds_sizes_that_agree(shape):
    w = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    product = Matrix(w)  # probed: the row-major call alone, or with the gate-major one for many
    x = np.random.default_rng(3).standard_normal((shape[0], 300)).astype(np.float32)  # a sample a column
    whole = product(x)
    assert np.allclose(whole, (x.T @ w).T, atol=1e-4)
    for m in (1, 2, 3, 4, 40, 129):
        assert np.array_equal(product(x[:, 5 : 5 + m]), whole[:, 5 : 5 + m]), m


@pytest.fixture(scope="module")
def poem_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("streams") / "poem.pt"
    api.train(POEM * 75, out=path, hidden_size=48, num_layers=2, steps=60, lr=0.02, precision="fp32",
              device="cpu", seq_len=32, batch_size=8)  # fmt: skip
    return api.load(path, engine="numpy")


def _draw_all(batch: StreamBatch) -> None:
    while len(batch):
        batch.step()


def _as_generate_draws(ckpt, prompt: str, length: int, seed: int, n: int) -> list:
    """n seeded streams of `prompt` drawn together, checked against api.generate's n samples."""
    sample = SampleConfig(temperature=1.0, seed=seed)
    expected = api.generate(ckpt, prompt, length, sample, num_samples=n)
    drawn = api.streams(ckpt).run([StreamSpec(prompt, length, sample, stream=i) for i in range(n)])
    assert [s.text for s in drawn] == expected
    return drawn


def test_a_seeded_stream_draws_what_generate_draws(poem_model):
    mine = _as_generate_draws(poem_model, "Tyger", 80, 11, 3)
    assert all(s.finish_reason == "length" for s in mine)


def test_a_stream_draws_the_same_in_any_company(poem_model):
    sample = SampleConfig(temperature=0.9, top_k=5, seed=4)
    alone = api.streams(poem_model)
    solo = alone.add(StreamSpec("burning bright", 60, sample))
    _draw_all(alone)

    crowd = api.streams(poem_model)
    others = [crowd.add(StreamSpec(p, 30 + 7 * i, SampleConfig(temperature=1.2, top_p=0.9, seed=i)))
              for i, p in enumerate(["In the", "What immortal", "", "Tyger Tyger"])]  # fmt: skip
    for _ in range(9):  # the crowd is under way when the stream joins
        crowd.step()
    joined = crowd.add(StreamSpec("burning bright", 60, sample))
    for step in range(200):
        if step == 5:
            crowd.add(StreamSpec("In the", 40, SampleConfig(temperature=1.0, seed=99)))
        if step == 12:
            crowd.drop(others[1])  # a client gone
        if not crowd.step():
            break
    assert joined.text == solo.text and len(joined.text) == 60
    assert others[1].finish_reason is None and others[1] not in crowd.streams


def test_greedy_streams_match_predict(poem_model):
    expected = api.generate(poem_model, "Tyger Tyger", 40)[0]
    batch = api.streams(poem_model)
    stream = batch.add(StreamSpec("Tyger Tyger", 40))
    batch.add(StreamSpec("In", 10, SampleConfig(temperature=1.0, seed=1)))
    _draw_all(batch)
    assert stream.text == expected


def test_a_prompt_read_for_one_request_serves_the_next(poem_model, monkeypatch):
    # a batch keeps the prompts it read last: a later stream of the same prompt reads nothing,
    # and draws what a batch that read it afresh draws
    import charnext.inference.streams as streams

    reads = []
    real = streams.read
    monkeypatch.setattr(streams, "read", lambda *a: reads.append(a[1]) or real(*a))
    batch = api.streams(poem_model)
    spec = StreamSpec("Tyger", 40, SampleConfig(temperature=1.0, seed=1))
    first = batch.run([spec])[0].text
    again = batch.run([spec])[0].text
    other = batch.run([StreamSpec("Tyger, ", 40, SampleConfig(temperature=1.0, seed=1))])[0].text
    assert reads == ["Tyger", "Tyger, "]
    assert again == first == api.streams(poem_model).run([spec])[0].text
    assert other != first


def test_stop_strings_end_a_stream_and_are_not_kept(poem_model):
    sample = SampleConfig(temperature=1.0, seed=3)
    free = api.streams(poem_model)
    whole = free.add(StreamSpec("Tyger", 200, sample))
    _draw_all(free)
    text = whole.text
    stop = text[30:33]  # a string the stream will meet, three characters long
    cut = text.find(stop)
    batch = api.streams(poem_model)
    stopped = batch.add(StreamSpec("Tyger", 200, sample, stop=("\x00never", stop)))
    seen = []
    while len(batch):
        if stopped in batch.step():
            seen.append(stopped.text)
    assert stopped.finish_reason == "stop" and stopped.text == text[:cut]
    assert all(stop not in s for s in seen)  # nothing of the stop was ever released
    assert seen == sorted(seen, key=len)


def test_line_models_complete_one_line(tmp_path, names):
    path = tmp_path / "names.pt"
    api.train(names, out=path, lines=True, hidden_size=32, num_layers=1, steps=40, device="cpu",
              precision="fp32")  # fmt: skip
    got = _as_generate_draws(api.load(path, engine="numpy"), "em", 30, 5, 4)
    assert all("\n" not in s.text for s in got)
    assert {s.finish_reason for s in got} <= {"stop", "length"}


def test_logprobs_are_the_models(poem_model):
    batch = api.streams(poem_model)
    stream = batch.add(StreamSpec("Tyger", 5, SampleConfig(temperature=1.0, seed=2), logprobs=3), echo=True)
    _draw_all(batch)
    steps = api.predict(poem_model, "Tyger" + stream.text, alternatives=len(poem_model.vocab)).steps
    for t, token in enumerate(stream.tokens):
        probs = dict(steps[4 + t].top)  # the prediction after the prompt and what came before
        assert math.isclose(math.exp(token.logprob), probs[token.char], rel_tol=1e-5)
        assert len(token.top) == 3 and token.top[0][1] >= token.top[-1][1]
    assert stream.prompt_logprobs[0] is None and len(stream.prompt_logprobs) == 5
    second = stream.prompt_logprobs[1]
    assert second.char == "y" and math.isclose(
        math.exp(second.logprob), dict(steps[0].top)["y"], rel_tol=1e-5
    )


def test_nothing_to_draw_ends_at_once(poem_model):
    batch = api.streams(poem_model)
    stream = batch.add(StreamSpec("Tyger", 0))
    assert stream.finish_reason == "length" and len(batch) == 0 and batch.step() == []


def test_held_back_characters():
    assert _longest_stop_prefix("the end", ("end.",)) == 3
    assert _longest_stop_prefix("the en", ("end.", "n")) == 2
    assert _longest_stop_prefix("abc", ("x",)) == 0


def test_predict_stop_and_best_of(poem_model):
    import json

    from typer.testing import CliRunner

    from charnext.cli.app import app

    path = str(poem_model.path)

    def predict(*args):
        result = CliRunner().invoke(app, ["predict", "Tyger", "-c", path, "--seed", "8", "--temperature", "1",
                                          "-n", "120", "--json", *args])  # fmt: skip
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["samples"]

    free = predict()[0]
    stop = free[20:22]
    assert predict("--stop", stop, "--stop", "\x00")[0] == free[: free.find(stop)]
    best = predict("--best-of", "5", "--num-samples", "2")
    batch = api.streams(poem_model)
    drawn = batch.run([StreamSpec("Tyger", 120, SampleConfig(temperature=1.0, seed=8), i) for i in range(5)])
    ranked = sorted(drawn, key=lambda s: -s.mean_logprob)
    assert best == [s.text for s in ranked[:2]]
    assert predict()[0] == drawn[0].text  # stream 0 is the sample of the seed alone


def test_rows_split_across_threads_are_the_same_rows():
    model = _random_model("lstm", 64, 2, 30)
    idx = np.random.default_rng(4).integers(0, 30, size=(48, 5))
    alone, alone_state = model.forward(idx)
    split = _random_model("lstm", 64, 2, 30)
    split.use_threads(2)
    logits, state = split.forward(idx)
    assert np.array_equal(logits, alone) and np.array_equal(state, alone_state)
    step, _ = split.forward(idx[:, :1], state)
    assert np.array_equal(step, model.forward(idx[:, :1], alone_state)[0])


def test_a_broken_step_ends_every_job_with_its_error(poem_model):
    import threading

    from charnext.inference.scheduler import Job, Scheduler

    batch = api.streams(poem_model)
    scheduler = Scheduler(batch).start()
    got, done = [], threading.Event()

    def deliver(items):
        got.extend(items)
        if any(i < 0 or f for i, _, f in items):
            done.set()

    def broken():
        raise RuntimeError("the step broke")

    batch.step = broken
    job = scheduler.submit(Job([StreamSpec("Tyger", 50, SampleConfig(temperature=1.0, seed=1))], deliver))
    assert done.wait(10)
    assert got[-1][0] == -1 and isinstance(job.error, RuntimeError)
    assert scheduler.active == 0 and len(batch) == 0
    scheduler.stop()
