"""The planner: what it chooses for a text and a budget, and that the user's options win."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from charnext import api
from charnext.cli.app import app
from charnext.config import TrainConfig
from charnext.events import RowEvent
from charnext.storage.checkpoint import load_raw
from charnext.training import planner as pl
from charnext.training.runs import new_run

runner = CliRunner()
SEQ = 64


def plan_for(seconds=None, steps=None, chars=1_000_000, speed=25_000.0, given=None, held_out=True):
    """A plan for a text of `chars` characters on a machine whose 2x256 model runs at `speed`."""
    probed = []

    def probe(hidden, layers, batch):
        probed.append((hidden, layers, batch))
        return speed

    given = dict(given or {})
    if seconds is not None:
        given["max_time"] = seconds
    plan = pl.make_plan(
        given=given, train_chars=chars, vocab_size=65, seq_len=SEQ,
        steps_for=lambda batch: steps if steps is not None else 3000, probe=probe, held_out=held_out,
    )  # fmt: skip
    return plan, probed


def params(plan):
    return pl.parameters("lstm", plan.hidden_size, plan.num_layers, 65, 64)


def test_parameters_match_the_model():
    from charnext.modeling.model import CharModel, ModelConfig

    for cell in ("rnn", "gru", "lstm"):
        for hidden, layers, emb in ((5, 1, 0), (32, 2, 16), (100, 3, 64)):
            model = CharModel(ModelConfig(41, cell, hidden, layers, emb))
            assert pl.parameters(cell, hidden, layers, 41, emb) == model.num_parameters()


def test_more_time_buys_a_larger_model_with_more_dropout():
    plans = [plan_for(seconds=s)[0] for s in (90, 600, 1800, 7200)]
    sizes = [params(p) for p in plans]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    drops = [p.dropout for p in plans]
    assert drops == sorted(drops) and drops[-1] > 0
    lrs = [p.lr for p in plans]
    assert lrs == sorted(lrs, reverse=True)  # wider models learn at a lower rate
    for p in plans:  # the model the plan buys sees at least CHARS_PER_PARAM characters per parameter
        assert p.run_chars / params(p) >= pl.CHARS_PER_PARAM


def test_a_slower_machine_buys_a_model_no_larger():
    fast, _ = plan_for(seconds=600, speed=50_000)
    slow, _ = plan_for(seconds=600, speed=12_000)
    assert params(slow) <= params(fast)
    assert slow.run_chars < fast.run_chars


def test_a_small_text_caps_the_model():
    big, _ = plan_for(seconds=1800, chars=1_000_000)
    small, _ = plan_for(seconds=1800, chars=20_000)
    assert params(small) < params(big)
    assert params(small) <= pl.PARAMS_PER_CHAR * 20_000 or small.hidden_size == pl.LADDER[0]
    assert small.dropout >= big.dropout  # many more passes over the small text


def test_given_options_win_and_are_not_planned():
    given = {"hidden_size": 100, "num_layers": 3, "dropout": 0.05, "weight_decay": 0.01, "batch_size": 7}
    given["weight_drop"] = 0.2
    plan, probed = plan_for(seconds=600, given={**given, "lr": 0.123})
    assert probed == []  # nothing left that depends on this machine's speed
    chosen = (plan.hidden_size, plan.num_layers, plan.dropout, plan.weight_decay, plan.batch_size, plan.lr)
    assert chosen == (100, 3, 0.05, 0.01, 7, 0.123) and plan.weight_drop == 0.2
    assert set(plan.planned) == {"warmup_steps"}
    # the size alone given: the rest is still planned, for the speed the probe measures
    plan, probed = plan_for(seconds=600, given={"hidden_size": 100})
    assert plan.hidden_size == 100 and probed and probed[0][0] == 100
    assert {"batch_size", "dropout", "lr"} <= set(plan.planned)


def test_weight_decay_comes_with_dropout():
    short, _ = plan_for(seconds=90)
    long, _ = plan_for(seconds=3600, chars=200_000)
    assert short.dropout == 0 and short.weight_decay == 0
    assert long.dropout > 0 and long.weight_decay == pl.WEIGHT_DECAY


def test_a_batch_of_lines_doubles_with_time_and_a_batch_of_windows_does_not():
    def plan(lines, max_batch=None):
        return pl.make_plan(
            given={"max_time": 3600}, train_chars=100_000, vocab_size=65, seq_len=SEQ,
            steps_for=lambda b: 0, probe=lambda h, n, b: 1e6, max_batch=max_batch,
            base_batch=64 if lines else 16, lines=lines,
        )  # fmt: skip

    assert plan(lines=False).batch_size == 16  # 32 windows lost to 16 on two texts
    assert plan(lines=True).batch_size == 64 * 2**pl.LINE_BATCH_DOUBLINGS  # a long budget doubles it...
    assert plan(lines=True, max_batch=100).batch_size == 100  # ...but never beyond what the text holds
    assert plan(lines=False, max_batch=10).batch_size == 10


def test_step_budgets_need_no_measurement():
    plan, probed = plan_for(steps=60, chars=7, held_out=False)
    assert probed == []
    assert plan.dropout == 0.0  # nothing held out: the text is learnt by heart
    assert plan.warmup_steps <= 6  # a short run does not spend itself warming up
    assert "60 steps" in plan.why


def test_lecture_learning_rate():
    assert pl.lr_for(5) == pytest.approx(pl.LR_256 * (256 / 5) ** 0.5)
    assert pl.lr_for(5) <= pl.MAX_LR
    assert pl.lr_for(1) == pl.MAX_LR
    assert pl.lr_for(256) == pytest.approx(pl.LR_256)
    assert pl.lr_for(512) < pl.lr_for(256)


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_the_lecture_models_learn_hihello_with_no_other_flag(tmp_path, cell):
    out = tmp_path / "lecture.pt"
    args = ["train", "hihello", "--cell", cell, "--embedding-size", "0", "--hidden-size", "5",
            "--num-layers", "1", "--out", str(out), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["accuracy"] == 1.0, r
    assert "lr" in r["plan"]["planned"] and "hidden_size" not in r["plan"]["planned"]
    assert api.predict(api.load(out), "hihell").prediction == "ihello"


def test_the_default_model_learns_hihello_within_50_steps():
    reports = []
    api.train("hihello", out=None, on_event=lambda e: reports.append(e) if isinstance(e, RowEvent) else None)
    first = [e.step for e in reports if e.prediction == "ihello"]
    assert first and first[0] <= 50, [(e.step, e.prediction) for e in reports]


def test_train_header_json_and_inspect_show_the_plan(tmp_path, poem):
    text = tmp_path / "poem.txt"
    text.write_text(poem * 8)  # about 24 KB: a held-out part
    out = tmp_path / "p.pt"
    result = runner.invoke(app, ["train", "--file", str(text), "--steps", "20", "--batch-size", "4",
                                 "--out", str(out), "--precision", "fp32"])  # fmt: skip
    assert result.exit_code == 0, result.output
    header = [line for line in result.stdout.splitlines() if line.startswith("plan: ")]
    assert len(header) == 1 and "20 steps" in header[0], header
    shown = result.stdout.splitlines()[:-1]  # the next command stands whole below: a long path
    assert max(len(line) for line in shown) <= 80  # wrapped, not cut
    assert "(--batch-size as given)" in " ".join(result.stdout.split())
    plan = load_raw(out)["provenance"]["plan"]
    assert plan["batch_size"] == 4 and "batch_size" not in plan["planned"]
    assert load_raw(out)["model_config"]["hidden_size"] == plan["hidden_size"]
    shown = runner.invoke(app, ["inspect", str(out)])
    assert shown.exit_code == 0
    assert "plan" in shown.stdout and "planned: hidden-size" in " ".join(shown.stdout.split())


def test_resume_keeps_the_plan(tmp_path, poem):
    text = tmp_path / "poem.txt"
    text.write_text(poem * 8)
    out = tmp_path / "p.pt"
    first = runner.invoke(app, ["train", "--file", str(text), "--steps", "10", "--out", str(out),
                                "--precision", "fp32", "--json"])  # fmt: skip
    assert first.exit_code == 0, first.output
    before = json.loads(first.stdout)["plan"]
    again = runner.invoke(app, ["train", "--resume", str(out), "--steps", "15", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["plan"] == before
    raw = load_raw(out)
    assert raw["step"] == 15 and raw["model_config"]["hidden_size"] == before["hidden_size"]


def test_a_time_budget_replans_dropout_for_the_speed_it_meets(poem):
    text = poem * 8  # about 24 KB
    trainer = new_run(text, config=TrainConfig(max_time=600.0), out=None, given={"max_time"})
    assert "dropout" in trainer.plan.planned
    per_step = trainer.chars_per_step
    # half-way, after 100 steps in 300 s: the rest of the run will make as many again
    planned = trainer.plan.to_dict()
    trainer.step = 100
    trainer._replan_regularisation(300.0, 100)
    expected = pl.dropout_for(200 * per_step / trainer.train_chars)
    assert trainer.model.config.dropout == expected
    assert trainer.model.drop.p == expected and trainer.model.rnn.dropout == expected
    # the plan stays as chosen at the start; the change is recorded beside it
    assert trainer.plan.to_dict() == planned
    assert _current(trainer, planned)["dropout"] == expected
    # a machine 50 times faster makes many more passes: more dropout, never above the cap
    trainer._replan_regularisation(300.0, 5000)
    assert expected <= trainer.model.config.dropout <= pl.MAX_DROPOUT
    assert trainer.model.config.dropout > 0
    assert _current(trainer, planned)["dropout"] == trainer.model.config.dropout
    assert trainer.plan.to_dict() == planned
    assert all(r["step"] == 100 for r in trainer.record.replans)


def test_weight_drop_joins_dropout_only_where_a_run_makes_many_passes():
    assert pl.weight_drop_for(pl.WEIGHT_DROP_PASSES * 0.99) == 0.0
    assert pl.weight_drop_for(pl.WEIGHT_DROP_PASSES) == pl.WEIGHT_DROP > 0
    assert pl.weight_drop_for(pl.WEIGHT_DROP_MORE_PASSES * 0.99) == pl.WEIGHT_DROP
    assert pl.weight_drop_for(pl.WEIGHT_DROP_MORE_PASSES) == pl.WEIGHT_DROP_MORE > pl.WEIGHT_DROP
    assert pl.weight_drop_for(1e6) == pl.WEIGHT_DROP_MORE < 1.0
    # a 90 s run over a large text makes a few passes: no weight drop, as before
    few, _ = plan_for(seconds=90)
    assert few.passes < pl.WEIGHT_DROP_PASSES and few.weight_drop == 0.0
    # ten minutes over a small text make many: weight drop beside dropout at its cap
    many, _ = plan_for(seconds=600, chars=200_000, speed=80_000.0)
    assert many.passes >= pl.WEIGHT_DROP_PASSES
    assert many.weight_drop == pl.WEIGHT_DROP and many.dropout == pl.MAX_DROPOUT
    assert f"weight drop {pl.WEIGHT_DROP:g}" in many.why and "weight_drop" in many.planned
    # given, it is kept (none is not replaced); nothing held out, nothing dropped
    kept, _ = plan_for(seconds=600, chars=200_000, speed=80_000.0, given={"weight_drop": 0.0})
    assert kept.weight_drop == 0.0 and "weight_drop" not in kept.planned and "weight drop" not in kept.why
    lecture, _ = plan_for(seconds=600, chars=200_000, speed=80_000.0, held_out=False)
    assert lecture.weight_drop == 0.0


def test_the_planned_weight_drop_reaches_the_model_and_follows_the_passes(poem):
    text = poem * 8  # about 24 KB
    trainer = new_run(text, config=TrainConfig(max_time=600.0), out=None, given={"max_time"})
    assert trainer.model.config.weight_drop == trainer.plan.weight_drop
    planned = trainer.plan.to_dict()
    trainer.step = 100
    trainer._replan_regularisation(300.0, 1)  # a very slow machine: few passes, no weight drop
    assert trainer.model.config.weight_drop == 0.0 == _current(trainer, planned)["weight_drop"]
    trainer._replan_regularisation(300.0, 5000)  # a fast one: many
    now = _current(trainer, planned)
    assert trainer.model.config.weight_drop == now["weight_drop"] == pl.weight_drop_for(now["passes"]) > 0
    assert trainer.plan.to_dict() == planned
    given = new_run(text, config=TrainConfig(max_time=600.0), out=None, given={"max_time", "weight_drop"})
    given.step = 100
    given._replan_regularisation(300.0, 5000)
    assert given.model.config.weight_drop == 0.0  # the user's value is never replanned


def _current(trainer, planned: dict) -> dict:
    """The regularisation in force: the latest change recorded beside the plan, or the plan."""
    return trainer.record.replans[-1] if trainer.record.replans else planned


def noisy_clock(step_seconds: float, rng, outliers: float = 0.25):
    """A fake clock and a step that advances it: each step takes `step_seconds` times a
    lognormal jitter (15%), and `outliers` of them 2-4x longer (another process woke up)."""
    now = [0.0]

    def step():
        slow = rng.uniform(2.0, 4.0) if rng.random() < outliers else 1.0
        now[0] += step_seconds * rng.lognormvariate(0.0, 0.15) * slow

    return (lambda: now[0]), step


def test_a_noisy_probe_plans_the_same_width_run_after_run():
    import random

    chars = 32 * SEQ  # a probe step: PROBE_BATCH windows

    def plan_at(speed):
        return plan_for(seconds=90, speed=speed)[0].hidden_size

    # a machine whose speed is well inside one width's range (15% either way plans the same)
    speed = 80_000.0
    assert plan_at(speed * 0.85) == plan_at(speed) == plan_at(speed * 1.15)
    widths, spent = set(), []
    for seed in range(200):
        rng = random.Random(seed)
        clock, step = noisy_clock(chars / speed, rng)
        measured = pl.timed_speed(step, chars, 90.0, clock)
        assert 0.0 <= measured.noise <= pl.MAX_PROBE_NOISE
        widths.add(plan_at(measured))
        spent.append(clock())
    assert widths == {plan_at(speed)}
    assert max(spent) < 0.04 * 90  # bursts slow the probe as they slow the run
    clock, step = noisy_clock(chars / speed, random.Random(0), outliers=0.0)
    pl.timed_speed(step, chars, 90.0, clock)
    assert clock() < 0.02 * 90  # without them the probe costs under 2% of the budget
    # the earlier probe (the median of three steps) flips on the same noise
    flips = set()
    for seed in range(200):
        rng = random.Random(seed)
        clock, step = noisy_clock(chars / speed, rng)
        times = []
        for _ in range(3):
            t = clock()
            step()
            times.append(clock() - t)
        flips.add(plan_at(chars / sorted(times)[1]))
    assert len(flips) > 1


def test_the_plan_does_not_act_on_a_speed_within_the_probes_noise():
    """A probe a little faster than the speed that buys the next width, but by less than its own
    noise, plans the width that the slower reading buys; a steady probe at that speed buys it."""
    boundary = next(
        s for s in range(20_000, 200_000, 500) if plan_for(seconds=90, speed=s)[0].hidden_size > 192
    )
    wider = plan_for(seconds=90, speed=pl.ProbeSpeed(boundary * 1.05, 0.0))[0]
    unsure = plan_for(seconds=90, speed=pl.ProbeSpeed(boundary * 1.05, 0.10))[0]
    sure = plan_for(seconds=90, speed=pl.ProbeSpeed(boundary * 1.2, 0.10))[0]
    assert wider.hidden_size == sure.hidden_size > unsure.hidden_size
    assert unsure.probe_noise == 0.10 and wider.probe_noise == 0.0
    # the noise makes the choices cautious; the run's expected speed is still the one measured
    cost = lambda h: pl.parameters("lstm", h, 2, 65, 64) + pl.FIXED_COST_PARAMS  # noqa: E731
    doublings = round(math.log2(unsure.batch_size / pl.PROBE_BATCH))
    expected = boundary * 1.05 * cost(256) / cost(unsure.hidden_size) * pl.BATCH_SPEED[doublings]
    assert unsure.chars_per_sec == pytest.approx(expected)


def test_a_steady_probe_reports_little_noise():
    chars = 32 * SEQ
    now = [0.0]

    def step():
        now[0] += 0.01

    measured = pl.timed_speed(step, chars, 90.0, lambda: now[0])
    assert measured.noise == pytest.approx(0.0, abs=1e-9)
    assert float(measured) == pytest.approx(chars / 0.01)
