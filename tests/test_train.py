"""Behaviour: models learn, runs resume bitwise, line mode, validation, init-from."""

from __future__ import annotations

import pytest
import torch

from charnext import api
from charnext.config import SampleConfig, TrainConfig
from charnext.errors import ConfigError, TextError, UnknownCharactersError
from charnext.events import StepEvent
from charnext.storage import checkpoint as ckpt
from charnext.text.data import LineBatches
from charnext.training.runs import new_run, resume_run
from charnext.training.schedule import lr_at
from charnext.training.trainer import best_path

SMALL = dict(hidden_size=32, num_layers=1, embedding_size=8)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_each_cell_learns_hihello(cell, tmp_path):
    result = api.train("hihello", tmp_path / "m.pt", cell=cell, hidden_size=32, steps=150, lr=1e-2)
    assert result.accuracy == 1.0
    model = api.load(tmp_path / "m.pt")
    assert api.predict(model, "hihell").prediction == "ihello"


def test_default_one_hot_lecture_model_learns(tmp_path):
    api.train(
        "hihello", tmp_path / "m.pt", embedding_size=0, hidden_size=16, num_layers=1, steps=200, lr=1e-2
    )
    assert api.predict(api.load(tmp_path / "m.pt"), "hihell").prediction == "ihello"


def test_korean(tmp_path):
    api.train("안녕하세요안녕", tmp_path / "k.pt", steps=150, lr=1e-2, **SMALL)
    assert api.predict(api.load(tmp_path / "k.pt"), "안녕하세요안").prediction == "녕하세요안녕"


def test_same_seed_same_weights(tmp_path):
    a = api.train("hihello", tmp_path / "a.pt", steps=20, seed=3, **SMALL)
    b = api.train("hihello", tmp_path / "b.pt", steps=20, seed=3, **SMALL)
    assert a.loss == b.loss
    sa, sb = ckpt.load(tmp_path / "a.pt").model.state_dict(), ckpt.load(tmp_path / "b.pt").model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_too_short_text():
    with pytest.raises(TextError, match="at least 2"):
        api.train("x", None)
    with pytest.raises(TextError):
        api.train("", None)


@pytest.mark.parametrize("bad", [dict(steps=0), dict(seq_len=-1), dict(lr=0), dict(val_fraction=1.5)])
def test_nonsense_options(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def test_schedule_warms_up_then_decays():
    c = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(c, 0, 0.0) < lr_at(c, 9, 0.0) < 1.0
    assert lr_at(c, 10, 0.0) == pytest.approx(1.0)
    assert lr_at(c, 500, 0.5) == pytest.approx(0.55)
    assert lr_at(c, 1000, 1.0) == pytest.approx(0.1)


def test_validation_split_and_best_checkpoint(poem, tmp_path):
    out = tmp_path / "p.pt"
    config = TrainConfig(steps=30, seq_len=32, batch_size=8, val_fraction=0.2, eval_every=10)
    trainer = new_run(poem, None, config, out, **SMALL)
    events = list(trainer.run())
    evals = [e for e in events if type(e).__name__ == "EvalEvent"]
    assert [e.step for e in evals] == [10, 20, 30]
    assert trainer.val_chars == int(len(poem) * 0.2)
    assert trainer.train_chars + trainer.val_chars == len(poem)
    assert best_path(out).exists()
    raw = ckpt.load_raw(out)
    assert raw["history"]["val_step"] == [10, 20, 30]
    assert raw["summary"]["best_val_loss"] == min(raw["history"]["val_loss"])


def _weights(path):
    return ckpt.load(path).model.state_dict()


@pytest.mark.parametrize("random_windows", [False, True])
def test_resume_is_bitwise_identical(poem, tmp_path, random_windows):
    config = TrainConfig(
        steps=24, seq_len=16, batch_size=4, val_fraction=0.1, eval_every=5, random_windows=random_windows
    )
    opts = dict(hidden_size=24, num_layers=2, embedding_size=8, dropout=0.1)
    straight = new_run(poem, None, config, tmp_path / "straight.pt", **opts)
    list(straight.run())

    first = new_run(poem, None, config, tmp_path / "split.pt", **opts)
    for event in first.run():
        if isinstance(event, StepEvent) and event.step == 11:
            first.stop()
    assert first.result.reason == "interrupted" and first.result.steps == 11
    second = resume_run(tmp_path / "split.pt", poem)
    list(second.run())
    assert second.result.steps == 24
    a, b = _weights(tmp_path / "straight.pt"), _weights(tmp_path / "split.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_step_events_time_each_step(poem):
    """Each StepEvent's `seconds` is its optimizer step alone: together, the result's train_time."""
    steps = []
    result = api.train(poem, None, steps=5, seq_len=16, batch_size=4, val_fraction=0.0, on_event=lambda e: (
        steps.append(e) if isinstance(e, StepEvent) else None), **SMALL)  # fmt: skip
    assert [e.step for e in steps] == [1, 2, 3, 4, 5] and all(e.seconds > 0 for e in steps)
    assert sum(e.seconds for e in steps) == pytest.approx(result.train_time)
    assert all(e.seconds <= e.elapsed for e in steps)


def test_resume_refuses_another_text(poem, tmp_path):
    api.train(poem, tmp_path / "p.pt", steps=2, **SMALL)
    with pytest.raises(TextError, match="init-from"):
        resume_run(tmp_path / "p.pt", poem + "more")


def test_line_mode_learns_names(names, tmp_path):
    result = api.train(names, tmp_path / "n.pt", lines=True, steps=150, lr=1e-2, batch_size=16, **SMALL)
    assert result.val_loss is not None  # 120 lines: 10% held out
    model = api.load(tmp_path / "n.pt")
    samples = api.generate(model, "", 30, SampleConfig(temperature=0.5, seed=0), num_samples=5)
    assert all("\n" not in s and s for s in samples)
    known = set(names.split())  # each of the 10 names occurs 12 times, so all are trained on
    for s in samples + ["emma", "zzyzx"]:
        assert api.seen_in_training(model, s) == (s in known)
    assert api.predict(model, "isabell").prediction.endswith("a")


def test_line_mode_holds_out_a_seeded_random_tenth():
    lines = [f"line{i:03d}" for i in range(200)]  # sorted, like many line files
    config = TrainConfig(lines=True, steps=1, seed=5)
    a = new_run("\n".join(lines), None, config, None, **SMALL)
    b = new_run("\n".join(lines), None, config, None, **SMALL)
    val = {a.vocab.decode(x) for x in a.corpus.val_lines}
    assert len(val) == 20 and val == {b.vocab.decode(x) for x in b.corpus.val_lines}
    assert val != set(lines[-20:])  # not simply the last (for a sorted file: the rarest) lines
    assert len(a.corpus.train_lines) == 180 and not val & {a.vocab.decode(x) for x in a.corpus.train_lines}


def _lines_of_many_lengths(n: int = 1000) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.full((int(k),), 1 + i % 7) for i, k in enumerate(torch.randint(1, 16, (n,), generator=g))]


def test_line_batches_read_every_line_once_an_epoch_in_batches_of_alike_lengths():
    lines = _lines_of_many_lengths()
    batches = LineBatches(lines, 0, 64, seed=3)
    per = batches.windows_per_epoch()
    for epoch in (0, 1):
        picks = torch.cat([batches.epoch_batches(epoch)[k] for k in range(per)])
        assert len(picks.unique()) == len(picks) == per * 64  # no line twice in an epoch
        got = [batches.batch(epoch * per + k) for k in range(per)]
        real = sum(float(b.weights.sum()) for b in got)
        assert real == sum(len(lines[i]) + 1 for i in picks.tolist())  # padding weighs nothing
        assert real / sum(b.weights.numel() for b in got) > 0.9  # random batches of 64: about 0.55
    assert not torch.equal(batches.epoch_batches(0), batches.epoch_batches(1))  # each epoch shuffled anew


def test_line_batches_depend_only_on_the_step_and_split_across_processes():
    """A resumed run (a new LineBatches) meets the batches the first one would have; the
    processes of a run each take their rows of the same global batch."""
    lines = _lines_of_many_lengths()
    first = LineBatches(lines, 0, 32, seed=1)
    for step in (0, 40, 31, 95):  # out of order, across epochs (31 steps an epoch)
        again = LineBatches(lines, 0, 32, seed=1).batch(step)
        assert torch.equal(first.batch(step).x, again.x)
        parts = [LineBatches(lines, 0, 32, seed=1, rank=r, world=2).batch(step) for r in (0, 1)]
        lengths = torch.cat([p.weights.sum(1) for p in parts])  # each row's line + newline
        assert torch.equal(lengths, first.batch(step).weights.sum(1))


def test_line_mode_counts_the_characters_it_trains_on_not_the_padding():
    """chars/s, the passes the plan and its checks read, and the default steps count a line's
    characters and its newline, as the plan does, not the batch's padding to its longest line."""
    text = "\n".join(["ab", "abcdefghijklmnopqrstuvwxyzabcd"] * 60)
    trainer = new_run(text, None, TrainConfig(lines=True, steps=1, batch_size=8), None, **SMALL)
    corpus = trainer.corpus
    per_line = sum(len(x) + 1 for x in corpus.train_lines) / len(corpus.train_lines)
    assert trainer.chars_per_step == pytest.approx(8 * per_line)
    assert trainer.chars_per_step < 8 * corpus.seq_len / 1.8  # the longest line + 1 is 31


def test_init_from_and_extend_vocab(tmp_path):
    api.train("hihello", tmp_path / "a.pt", steps=5, **SMALL)
    with pytest.raises(UnknownCharactersError, match="extend-vocab"):
        new_run("hello world", init_from=tmp_path / "a.pt", out=None)
    trainer = new_run("hello world", init_from=tmp_path / "a.pt", extend_vocab=True, out=tmp_path / "b.pt")
    assert trainer.vocab.chars[:5] == ("h", "i", "e", "l", "o")
    assert set(trainer.vocab.chars[5:]) == {" ", "w", "r", "d"}
    old = ckpt.load(tmp_path / "a.pt").model.state_dict()
    new = trainer.model.state_dict()
    assert torch.equal(new["embedding.weight"][:5], old["embedding.weight"])
    assert torch.equal(new["head.weight"][:5], old["head.weight"])


def test_max_time_stops_on_budget(poem):
    """--max-time bounds the whole call: training stops early enough to leave what follows it
    (the last validation, the save, leaving) inside the budget."""
    config = TrainConfig(max_time=1.0, seq_len=16, batch_size=4)
    trainer = new_run(poem, None, config, None, **SMALL)
    list(trainer.run())
    assert trainer.result.reason == "max-time" and trainer.result.steps > 0
    assert trainer.schedule.max_time < 1.0  # the run's clock ends before the call's budget does
    assert trainer.history["val_step"].count(trainer.result.steps) <= 1  # the last step validated once
