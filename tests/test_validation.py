"""The checks of the held-out part: one fixed sample for the whole run (every check, live and
averaged weights, before and after a resume), its standard error, at least eight checks, the
final figure and what it scored, and the best checkpoint written once, at the end."""

from __future__ import annotations

import math
import shutil

import bitwise_runs as br
import pytest
import torch

from charnext.config import TrainConfig
from charnext.events import EvalEvent, StepEvent
from charnext.inference.scoring import Sums, score_rows
from charnext.modeling.model import CharModel, ModelConfig
from charnext.storage import checkpoint as ckpt
from charnext.storage.writing import _write
from charnext.text.vocab import Vocab
from charnext.training import checks as checks_module
from charnext.training.corpus import make_corpus
from charnext.training.runs import new_run, resume_run
from charnext.training.trainer import best_path
from charnext.training.validation import MIN_READ, Sample, sample_rows

TINY = dict(hidden_size=8, num_layers=1, embedding_size=4)
CHECKED = dict(seq_len=16, batch_size=4, val_fraction=0.1, precision="fp32", device="cpu")


def verse(words: int = 30_000) -> str:
    """About 150,000 characters of made-up verse: lines that differ, as a real text's do."""
    return br.stream_text(seed=3, words=words)


def watched(trainer) -> list[tuple[Sample | None, bool]]:
    """Every sample the trainer scores from now on, and whether the average was applied."""
    seen = []
    scored = trainer.evaluate_validation

    def evaluate(sample=None):
        averaged = (
            trainer.average is not None
            and trainer.average.shadow is not None
            and torch.equal(next(trainer.model.parameters()), trainer.average.shadow[0])
        )
        seen.append((sample, averaged))
        return scored(sample)

    trainer.evaluate_validation = evaluate
    return seen


# -- the sample ------------------------------------------------------------------------------


def test_a_sample_spreads_its_windows_over_all_of_the_held_out_part():
    sample = Sample(8, 128, 64, 0)
    rows = sample_rows([(0, 80_001)], sample)
    assert [s for _, s, _ in rows] == [i * 10_000 for i in range(8)]  # one at each eighth
    assert all(e - s == 128 for _, s, e in rows) and rows[0][0] == 0  # the first: the prime only
    assert all(s - lo == 64 for lo, s, _ in rows[1:])
    # documents: windows in proportion to their held-out characters, none across two
    rows = sample_rows([(0, 30_001), (50_000, 10_001)], sample)
    assert [s for _, s, _ in rows] == [0, 5_000, 10_000, 15_000, 20_000, 25_000, 50_000, 55_000]


def test_lines_sample_every_nth_held_out_line():
    text = "".join(f"{'x' * (i % 7 + 1)}\n" for i in range(4000))
    corpus = make_corpus(text, Vocab.from_text(text), TrainConfig(lines=True, val_fraction=0.5))
    sample = corpus.sample(MIN_READ)
    assert not sample.whole and sample.windows == 1024  # a power of two under the budget
    assert corpus.sample(math.inf).whole and corpus.sample(math.inf).chars == corpus.val_chars


# -- the standard error ----------------------------------------------------------------------


def test_the_standard_error_is_that_of_the_window_means():
    sums = Sums()
    sums.add(torch.tensor([2.0, 4.0, 6.0, 12.0]), torch.zeros(4), torch.tensor([2.0, 2.0, 2.0, 2.0]))
    score = sums.score()
    means = torch.tensor([1.0, 2.0, 3.0, 6.0])
    assert score.loss == pytest.approx(3.0) and score.windows == 4
    assert score.se == pytest.approx(float(means.std() / 2))  # std (n - 1) over sqrt(4)
    halves = Sums(), Sums()  # two processes' shares add up to the same
    halves[0].add(torch.tensor([2.0, 4.0]), torch.zeros(2), torch.tensor([2.0, 2.0]))
    halves[1].add(torch.tensor([6.0, 12.0]), torch.zeros(2), torch.tensor([2.0, 2.0]))
    merged = Sums.from_tensor(halves[0].to_tensor() + halves[1].to_tensor()).score()
    assert merged.se == pytest.approx(score.se) and merged.loss == pytest.approx(score.loss)


def test_a_model_s_standard_error_matches_its_windows_and_shrinks_with_more():
    text = verse()
    vocab = Vocab.from_text(text)
    corpus = make_corpus(text, vocab, TrainConfig(**CHECKED))
    torch.manual_seed(0)
    model = CharModel(ModelConfig(vocab_size=len(vocab), **TINY))
    sample = Sample(16, 128, 64, 0)
    rows = sample_rows(corpus.spans, sample)
    score = corpus.evaluate(model, torch.device("cpu"), "fp32", sample, (0, 1)).score()
    # by hand: each window alone, its mean loss; their standard deviation over sqrt(16)
    prime = vocab.encode(corpus.start.prime)
    means = torch.tensor([score_rows(model, corpus.held_out, [r], prime=prime).score().loss for r in rows])
    assert score.characters == 16 * 128 and score.se > 0
    assert score.loss == pytest.approx(float(means.mean()), rel=1e-5)
    assert score.se == pytest.approx(float(means.std() / 4), rel=1e-4)
    larger = corpus.evaluate(model, torch.device("cpu"), "fp32", Sample(256, 128, 64, 0), (0, 1)).score()
    assert 0 < larger.se < score.se / 2
    # several processes: their shares add up to the one figure
    shares = [corpus.evaluate(model, torch.device("cpu"), "fp32", sample, (r, 3)) for r in range(3)]
    merged = Sums.from_tensor(sum(s.to_tensor() for s in shares)).score()
    assert merged.loss == pytest.approx(score.loss, rel=1e-6) and merged.se == pytest.approx(
        score.se, rel=1e-6
    )


# -- the checks ------------------------------------------------------------------------------


def test_a_default_step_budget_checks_eight_times_or_more_the_first_in_its_first_quarter(poem):
    trainer = new_run(poem * 2, None, TrainConfig(**CHECKED), None, **TINY)  # steps sized to the text
    seen = watched(trainer)
    events = list(trainer.run())
    total = trainer.schedule.total
    steps = [e.step for e in events if isinstance(e, EvalEvent)]
    assert len(steps) >= 8 and steps[0] <= total / 4 and steps[-1] == total
    assert steps == trainer.history["val_step"] and trainer.result.checks == len(steps)
    recorded = Sample.from_dict(trainer.record.val_sample)
    assert {s for s, _ in seen} == {recorded}  # every check: the same characters
    assert all(e.val_se is not None and e.val_se > 0 and e.val_chars == recorded.chars for e in events
               if isinstance(e, EvalEvent))  # fmt: skip


def test_live_and_averaged_weights_are_scored_on_the_same_characters(poem):
    config = TrainConfig(**CHECKED, steps=120, eval_every=10, ema=True)
    trainer = new_run(poem * 40, None, config, None, **TINY)
    seen = watched(trainer)
    list(trainer.run())
    averaged = [s for s, a in seen if a]
    assert averaged and len(averaged) < len(seen)  # the average is checked over the second half
    assert {s for s, _ in seen} == {Sample.from_dict(trainer.record.val_sample)}
    assert not next(iter(averaged)).whole  # a sample, not all of the held-out part


def test_a_resumed_run_checks_the_sample_it_recorded(poem, tmp_path, monkeypatch):
    """Split at step 10 and resumed: the same characters before and after, and the losses the
    run unsplit records; even where a run starting now would choose another sample."""
    config = TrainConfig(**CHECKED, steps=20, eval_every=2)
    straight = new_run(poem * 40, None, config, tmp_path / "a.pt", **TINY)
    list(straight.run())
    first = new_run(poem * 40, None, config, tmp_path / "b.pt", **TINY)
    for event in first.run():
        if isinstance(event, StepEvent) and event.step == 10:
            first.stop()
    recorded = ckpt.load_raw(tmp_path / "b.pt")["resume"]["val_sample"]
    shutil.copy(tmp_path / "b.pt", tmp_path / "c.pt")
    assert recorded == straight.record.val_sample and not Sample.from_dict(recorded).whole
    resumed = resume_run(tmp_path / "b.pt", poem * 40)
    seen = watched(resumed)
    list(resumed.run())
    assert {s for s, _ in seen} == {Sample.from_dict(recorded)}
    assert resumed.history["val_loss"] == straight.history["val_loss"]
    assert resumed.history["val_se"] == straight.history["val_se"]
    monkeypatch.setattr(checks_module, "sample_read", lambda *_: 1e9)  # a run now: all of the part
    fresh = new_run(poem * 40, None, config, None, **TINY)
    list(fresh.run())
    assert Sample.from_dict(fresh.record.val_sample).whole
    again = resume_run(tmp_path / "c.pt", poem * 40)
    seen = watched(again)
    list(again.run())
    assert {s for s, _ in seen} == {Sample.from_dict(recorded)}


def test_the_final_figure_scores_more_and_says_what(poem, tmp_path):
    """A run that can afford it ends on all of the held-out part; its checks, the best one
    among them, stay on the sample."""
    config = TrainConfig(**{**CHECKED, "batch_size": 16, "seq_len": 64}, steps=400)
    trainer = new_run(poem * 40, None, config, tmp_path / "f.pt", **TINY)
    list(trainer.run())
    r, raw = trainer.result, ckpt.load_raw(tmp_path / "f.pt")
    sample = Sample.from_dict(trainer.record.val_sample)
    assert not sample.whole and r.sample_chars == sample.chars < r.val_scored
    assert r.val_all and r.val_scored == trainer.val_chars - 1 and r.val_se is not None
    assert raw["summary"]["val_scored"] == r.val_scored and raw["summary"]["val_all"] is True
    assert raw["summary"]["val_loss"] == r.val_loss != trainer.history["val_loss"][-1]
    assert r.best_val_loss == min(trainer.history["val_loss"]) and r.best_step in trainer.history["val_step"]


# -- the best checkpoint ---------------------------------------------------------------------


def test_the_best_checkpoint_is_written_once_and_holds_the_best_weights(poem, tmp_path, monkeypatch):
    writes = []

    def write(path, raw):
        if path == best_path(out):
            writes.append(path)
        return _write(path, raw)

    monkeypatch.setattr(checks_module.ckpt, "write_record", write)
    out = tmp_path / "b.pt"
    trainer = new_run(poem * 40, None, TrainConfig(**CHECKED, steps=60, eval_every=10, lr=0.02), out, **TINY)
    flags = [e.best for e in trainer.run() if isinstance(e, EvalEvent)]
    # written only when a check that did not improve followed one that did, and at the end
    held, expected = False, 0
    for best in flags:
        expected += held and not best
        held = best
    expected += held
    assert len(writes) == expected < sum(flags)
    best = ckpt.load(best_path(out))
    assert best.raw["step"] == trainer.result.best_step
    sample = Sample.from_dict(trainer.record.val_sample)
    again = trainer.corpus.evaluate(best.model, torch.device("cpu"), "fp32", sample, (0, 1)).score()
    assert again.loss == pytest.approx(trainer.result.best_val_loss, rel=1e-6)


def test_the_best_is_written_before_the_only_file_holding_it_is_overwritten(poem, tmp_path, monkeypatch):
    out = tmp_path / "w.pt"
    trainer = new_run(poem * 40, None, TrainConfig(**CHECKED, steps=50, eval_every=10), out, **TINY)
    scored = trainer.evaluate_validation
    made = {10: 2.0, 20: 1.0, 30: 1.5, 40: 0.5, 50: 0.7}  # better, better, worse, better, worse

    def evaluate(sample=None):
        result = scored(sample)
        result.loss = made[trainer.step]
        return result

    monkeypatch.setattr(trainer, "evaluate_validation", evaluate)
    steps = []
    for event in trainer.run():
        if isinstance(event, EvalEvent):
            steps.append(ckpt.load_raw(best_path(out))["step"] if best_path(out).exists() else None)
    # before X.pt was saved at step 30, the best (20) was written: X.pt was the only file with it
    assert steps == [None, None, 20, 20, 20]
    assert ckpt.load_raw(best_path(out))["step"] == 40 == trainer.result.best_step


def test_a_run_resumed_where_its_best_is_its_last_step_keeps_it(poem, tmp_path):
    """Killed after a check that improved (the best only in X.pt), resumed: a worse check later
    does not lose it."""
    out = tmp_path / "k.pt"
    config = TrainConfig(**CHECKED, steps=20, eval_every=10)
    first = new_run(poem * 40, None, config, out, **TINY)
    for event in first.run():
        if isinstance(event, EvalEvent) and event.step == 10:
            break  # as if killed: no end, no best checkpoint written
    assert not best_path(out).exists() and ckpt.load_raw(out)["resume"]["best_step"] == 10
    weights = ckpt.load_raw(out)["state_dict"]
    resumed = resume_run(out, poem * 40)
    scored = resumed.evaluate_validation

    def worse(sample=None):
        result = scored(sample)
        result.loss = max(result.loss, resumed.record.best_val_loss + 0.001)
        return result

    resumed.evaluate_validation = worse
    list(resumed.run())
    best = ckpt.load_raw(best_path(out))
    assert best["step"] == 10 and all(torch.equal(best["state_dict"][k], weights[k]) for k in weights)


def test_a_checkpoint_without_the_new_record_resumes(poem, tmp_path):
    """Written before the checks had a fixed sample: no val_sample, best_step, best_val_se in its
    record, no val_se in its history, no new summary fields."""
    out = tmp_path / "o.pt"
    config = TrainConfig(**CHECKED, steps=20, eval_every=5)
    first = new_run(poem * 40, None, config, out, **TINY)
    for event in first.run():
        if isinstance(event, StepEvent) and event.step == 10:
            first.stop()
    raw = ckpt.load_raw(out)
    for key in ("val_sample", "best_step", "best_val_se"):
        raw["resume"].pop(key)
    raw["history"].pop("val_se")
    for key in ("val_se", "val_scored", "val_all", "best_val_se", "best_step"):
        raw["summary"].pop(key)
    _write(out, raw)
    resumed = resume_run(out, poem * 40)
    assert resumed.history["val_se"] == [None, None]  # the old checks: no standard error known
    list(resumed.run())
    assert resumed.result.steps == 20 and resumed.history["val_step"] == [5, 10, 15, 20]
    assert resumed.history["val_se"][:2] == [None, None] and all(
        se > 0 for se in resumed.history["val_se"][2:]
    )
    assert resumed.record.val_sample is not None  # chosen at its first check
