"""The turn: a run under a time budget whose validation turns up anneals its learning rate to
zero and ends, instead of learning its training text by heart until the budget is spent."""

from __future__ import annotations

import pytest
import torch

from charnext.config import TrainConfig
from charnext.events import EvalEvent, StopReason
from charnext.storage import checkpoint as ckpt
from charnext.training.runs import new_run
from charnext.training.schedule import ANNEAL_PASSES, ANNEAL_SHARE, Schedule
from charnext.training.state import RunState

TINY = dict(hidden_size=8, num_layers=1, embedding_size=4)
CHECKED = dict(seq_len=16, batch_size=4, val_fraction=0.1, precision="fp32", device="cpu")
# under a time budget, windows long enough that checks come at a tenth of it (with short ones
# a check's expected cost, against so little training per second, spaces them wider)
TIMED = dict(CHECKED, seq_len=64, batch_size=16)


def test_after_a_turn_the_learning_rate_falls_to_zero_and_the_run_ends_there():
    timed = Schedule.for_run(TrainConfig(max_time=100.0, lr=0.01), 10, 10_000, 100)
    turn = timed.turn(500, 40.0, 0.006, val_loss=1.5, best=1.4)
    assert turn["until"] == pytest.approx(40.0 + ANNEAL_SHARE * 100.0)
    span = turn["until"] - turn["at"]
    lrs = [timed.lr(500 + i, 40.0 + span * i / 20, turn) for i in range(0, 21)]
    assert lrs[0] == pytest.approx(0.006) and lrs[10] == pytest.approx(0.003) and lrs[-1] == 0.0
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert not timed.done(600, turn["until"] - 0.1, turn) and timed.done(600, turn["until"], turn)
    assert not timed.done(600, turn["until"])  # without the turn, the budget still runs
    assert timed.reason(turn) == "annealed" and timed.reason() == "max-time"
    assert timed.fraction(500, turn["until"] / 2, turn) == pytest.approx(0.5)  # of the run as it now ends
    # near the end the anneal takes what is left; at the end there is nothing to anneal
    assert timed.turn(900, 95.0, 0.001, 1.5, 1.4)["until"] == 100.0
    assert timed.turn(900, 100.0, 0.001, 1.5, 1.4) is None
    # a resumed session with less time than the anneal had left ends with its budget
    short = Schedule.for_run(TrainConfig(max_time=turn["until"] - 5.0, lr=0.01), 10, 10_000, 100)
    assert short.done(600, turn["until"] - 5.0, turn) and short.reason(turn) == "max-time"
    assert short.fraction(600, (turn["until"] - 5.0) / 2, turn) == pytest.approx(0.5)
    # on a fast machine, at most ANNEAL_PASSES passes over the text
    quick = timed.turn(500, 40.0, 0.006, 1.5, 1.4, pass_seconds=0.5)
    assert quick["until"] == pytest.approx(40.0 + min(ANNEAL_SHARE * 100.0, ANNEAL_PASSES * 0.5))
    assert quick["until"] < turn["until"]
    # a run of so many steps makes them all
    assert Schedule.for_run(TrainConfig(steps=100), 10, 10_000, 100).turn(50, 5.0, 0.01, 1.5, 1.4) is None


def scripted(trainer, losses: list[float], se: float) -> list[int]:
    """Give the trainer's checks these losses (the last one again once they run out), each with
    this standard error; the steps of the checks made."""
    scored, steps = trainer.evaluate_validation, []

    def evaluate(sample=None):
        result = scored(sample)
        result.loss, result.se = losses[min(len(steps), len(losses) - 1)], se
        steps.append(trainer.step)
        return result

    trainer.evaluate_validation = evaluate
    return steps


def test_a_timed_run_whose_validation_turns_up_anneals_and_ends(poem, tmp_path):
    out = tmp_path / "t.pt"
    trainer = new_run(poem * 40, None, TrainConfig(**TIMED, max_time=5.0), out, **TINY)
    # better, better, better, worse within the error, then twice worse beyond it: the turn
    checked = scripted(trainer, [2.5, 2.0, 1.5, 1.6, 1.8, 1.9, 2.4], se=0.2)
    events, at_turn = [], None
    for event in trainer.run():
        events.append(event)
        if isinstance(event, EvalEvent) and len(checked) == 6:  # X.pt as saved at the turn
            at_turn = at_turn or ckpt.load_raw(out)
    r = trainer.result
    assert r.reason == StopReason.annealed == "annealed"
    assert r.turn["step"] == checked[5] and r.turn["val_loss"] == 1.9 and r.turn["best_val_loss"] == 1.5
    assert r.best_step == checked[2]
    # it went back to the best check's state: the weights saved at the turn are the best's
    assert r.turn["back_to"] == checked[2] and at_turn["step"] == checked[5]
    best = ckpt.load_raw(tmp_path / "t.best.pt")
    assert all(torch.equal(at_turn["state_dict"][k], v) for k, v in best["state_dict"].items())
    # and annealed from the learning rate it had there
    h = trainer.history
    assert r.turn["lr"] == h["lr"][h["step"].index(checked[2])]
    after = [lr for step, lr in zip(h["step"], h["lr"]) if step > r.turn["step"]]
    assert after and all(a >= b for a, b in zip(after, after[1:]))
    assert after[0] <= r.turn["lr"] and after[-1] < 0.2 * r.turn["lr"]  # close to zero at the end
    assert r.elapsed < 5.0  # it ended before its budget
    assert [e.step for e in events if isinstance(e, EvalEvent)][:6] == checked[:6]
    # the turn is saved with the run (a resume goes on annealing), the best checkpoint kept
    assert ckpt.load_raw(out)["resume"]["turn"]["step"] == r.turn["step"]
    assert ckpt.load_raw(tmp_path / "t.best.pt")["step"] == checked[2]


def test_a_run_that_writes_no_checkpoint_anneals_where_it_turned(poem):
    trainer = new_run(poem * 40, None, TrainConfig(**TIMED, max_time=5.0), None, **TINY)
    checked = scripted(trainer, [2.5, 2.0, 1.5, 1.6, 1.8, 1.9, 2.4], se=0.2)
    list(trainer.run())
    r, h = trainer.result, trainer.history
    assert r.reason == "annealed" and r.turn["back_to"] is None
    assert r.turn["lr"] == h["lr"][h["step"].index(checked[5])]  # the rate where it turned


def test_a_bump_or_a_rise_within_the_standard_error_is_not_a_turn(poem, tmp_path):
    trainer = new_run(poem * 40, None, TrainConfig(**TIMED, max_time=3.0), tmp_path / "w.pt", **TINY)
    # one check beyond the error and the next back below it, then rises within the error
    checked = scripted(trainer, [2.5, 2.0, 1.5, 1.8, 1.45, 1.6, 1.55, 1.64], se=0.2)
    list(trainer.run())
    assert len(checked) >= 6  # the bump and the check after it were made
    assert trainer.result.reason == "max-time" and trainer.result.turn is None


def test_a_run_of_so_many_steps_never_turns(poem, tmp_path):
    trainer = new_run(
        poem * 40, None, TrainConfig(**CHECKED, steps=40, eval_every=5), tmp_path / "s.pt", **TINY
    )
    scripted(trainer, [2.0, 1.5, 2.5, 2.6], se=0.01)
    list(trainer.run())
    assert trainer.result.reason == "steps" and trainer.result.steps == 40 and trainer.result.turn is None


@pytest.mark.parametrize(
    "saved, kept",
    [
        ({"step": 10, "at": 4.0, "until": 6.0, "lr": 0.01, "val_loss": 1.8, "best_val_loss": 1.5}, True),
        ({"step": "10", "at": 4.0, "until": 6.0, "lr": 0.01}, False),
        ({"step": 10, "at": 4.0, "until": float("nan"), "lr": 0.01}, False),
        ({"step": 10, "at": 4.0, "lr": 0.01}, False),
        ("annealed", False),
    ],
)
def test_a_saved_turn_is_read_only_when_whole(saved, kept):
    state = RunState.from_checkpoint({"step": 10, "resume": {"turn": saved}})
    assert (state.turn == saved) if kept else state.turn is None


def test_a_curve_coming_back_down_is_recovering_not_turning(poem, tmp_path):
    trainer = new_run(poem * 40, None, TrainConfig(**TIMED, max_time=5.0), tmp_path / "r.pt", **TINY)
    # the best, a jump far above it, a check still above it but well below the jump (recovering:
    # no turn), then one that is no lower than that within the error: the turn
    checked = scripted(trainer, [2.5, 2.0, 1.5, 2.4, 1.8, 1.78, 1.9], se=0.05)
    list(trainer.run())
    r = trainer.result
    assert r.reason == "annealed" and r.turn["step"] == checked[5] and r.turn["val_loss"] == 1.78
