"""Validation that watches the whole run, like for like: periodic checks on one fixed sample of
the held-out part (live and averaged weights, before and after a resume), the final check and the
best on all of it."""

from __future__ import annotations

from charnext.config import TrainConfig
from charnext.training import validation
from charnext.training.runs import new_run, resume_run
from charnext.training.schedule import EVALS_PER_RUN, Schedule

SMALL = {"hidden_size": 16, "num_layers": 1}


def _recording(trainer) -> list:
    """Record the `limit` of every scoring of the held-out part, with the weights scored."""
    calls, score = [], trainer.evaluate_validation

    def evaluate(limit=None):
        averaged = (
            trainer.average is not None
            and trainer.average.shadow is not None
            and all((p == s).all() for p, s in zip(trainer.model.parameters(), trainer.average.shadow))
        )
        calls.append((trainer.step, limit, "average" if averaged else "live"))
        return score(limit)

    trainer.evaluate_validation = evaluate
    return calls


def test_every_comparison_scores_the_same_characters(poem, tmp_path):
    text = poem * 60  # long enough that the sample is a part of the held-out text
    config = TrainConfig(steps=120, seq_len=16, batch_size=4, val_fraction=0.3, ema=True, lr=0.02)
    trainer = new_run(text, None, config, tmp_path / "v.pt", **SMALL)
    assert trainer.val_chars > validation.MIN_SAMPLE_CHARS
    calls = _recording(trainer)
    list(trainer.run())
    periodic = [c for c in calls if c[1] is not None]
    assert {limit for _, limit, _ in periodic} == {validation.MIN_SAMPLE_CHARS}  # one sample, each time
    assert any(w == "average" for _, _, w in periodic)  # the average scored on that same sample
    assert [limit for _, limit, _ in calls[len(periodic) :]] == [None] * (len(calls) - len(periodic))
    record = trainer.provenance()["validation"]
    assert record["sample_chars"] == validation.MIN_SAMPLE_CHARS and record["sample_stderr"] > 0
    # the summary's final and best figures both come from all of the held-out text
    assert trainer.result.val_loss == trainer.evaluate_validation(None).loss

    again = resume_run(tmp_path / "v.pt", text, steps=140)
    calls = _recording(again)
    list(again.run())
    assert {limit for _, limit, _ in calls if limit is not None} == {validation.MIN_SAMPLE_CHARS}


def test_checks_spread_over_the_whole_run():
    steps = Schedule.for_run(TrainConfig(steps=1000), 10, 10_000, 100)
    due = [s for s in range(1, 1001) if steps.eval_due(s, 1e9, last_eval_step=(s - 1) // 100 * 100)]
    assert len(due) >= 8 and due[0] <= 100  # the first within the first tenth
    timed = Schedule.for_run(TrainConfig(max_time=60.0), 10, 10_000, 100)
    assert timed.eval_due(1, since_eval=60.0 / EVALS_PER_RUN, end=60.0)
    assert not timed.eval_due(1, since_eval=60.0 / EVALS_PER_RUN - 0.1, end=60.0)


def test_the_sample_costs_about_half_a_percent_of_the_run():
    run_chars = 3_000_000  # a 60 s run at 50k chars/s
    size = validation.sample_chars(run_chars, val_chars=10**7)
    assert size * validation.FORWARD_COST / run_chars == __import__("pytest").approx(validation.CHECK_SHARE)
    assert validation.sample_chars(100, val_chars=10**7) == validation.MIN_SAMPLE_CHARS
    assert validation.sample_chars(10**9, val_chars=5_000) == 5_000


def test_a_curve_that_overfits_early_ends_the_run_after_annealing(poem):
    from charnext.training import budget

    trainer = new_run(poem * 10, None, TrainConfig(max_time=600.0, val_fraction=0.2), None, **SMALL)
    rec = trainer.record
    rec.budget, rec.elapsed, rec.val_sample_stderr = 600.0, 100.0, 0.004
    rec.history["val_loss"] = [2.0, 1.80, 1.82, 1.83]
    rec.best_val_loss, rec.evals_since_best = 1.80, 2
    budget.read_curve(trainer)  # rose by 0.03 over two checks, more than twice the noise
    assert rec.cut_short == rec.budget == 100.0 + budget.CUT_ANNEAL * 600.0
    level = new_run(poem * 10, None, TrainConfig(max_time=600.0, val_fraction=0.2), None, **SMALL)
    rec = level.record
    rec.budget, rec.elapsed, rec.val_sample_stderr = 600.0, 100.0, 0.02
    rec.history["val_loss"] = [2.0, 1.80, 1.82, 1.83]
    rec.best_val_loss, rec.evals_since_best = 1.80, 2
    budget.read_curve(level)  # within the noise (2 x 0.02): the run goes on
    assert rec.cut_short is None and rec.budget == 600.0
