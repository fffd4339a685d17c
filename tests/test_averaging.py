"""The weight average (EMA): exact swaps, validated beside the live weights, kept when it wins,
recorded in the checkpoint, and resumed with the run."""

from __future__ import annotations

import torch

from charnext.config import TrainConfig
from charnext.modeling.model import CharModel, ModelConfig
from charnext.storage.checkpoint import load_raw
from charnext.training import averaging as av
from charnext.training.runs import new_run
from charnext.training.trainer import best_path

SMALL = dict(hidden_size=24, num_layers=1, embedding_size=8)


def test_the_average_follows_the_weights_and_swaps_back_exactly():
    torch.manual_seed(0)
    model = CharModel(ModelConfig(11, "lstm", 8, 1, 4))
    avg = av.WeightAverage(model)
    first = [p.detach().clone() for p in model.parameters()]
    avg.update()  # the first update is the weights themselves
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    avg.update()  # a running mean of two: half-way
    assert all(torch.allclose(s, f + 0.5) for s, f in zip(avg.shadow, first))
    live = [p.detach().clone() for p in model.parameters()]
    with avg.applied():
        assert all(torch.allclose(p, f + 0.5) for p, f in zip(model.parameters(), first))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), live))  # bit for bit
    for _ in range(200):  # later updates move only 1 - DECAY of the way
        avg.update()
    assert all(torch.allclose(s, q, atol=0.01) for s, q in zip(avg.shadow, live))


def test_the_average_is_validated_and_recorded(poem, tmp_path):
    config = TrainConfig(
        steps=80, seq_len=16, batch_size=4, val_fraction=0.1, eval_every=10, lr=0.02, ema=True
    )
    trainer = new_run(poem, None, config, tmp_path / "a.pt", **SMALL)
    list(trainer.run())
    r = trainer.result.averaging
    assert r["best_val_loss_live"] is not None and r["best_val_loss_average"] is not None
    assert trainer.result.best_val_loss == min(r["best_val_loss_live"], r["best_val_loss_average"])
    best = load_raw(best_path(tmp_path / "a.pt"))["provenance"]["averaging"]
    assert best["weights"] == best["best_weights"] == r["best_weights"] and best["decay"] == av.DECAY
    assert load_raw(tmp_path / "a.pt")["provenance"]["averaging"]["weights"] == "live"  # resumable


def test_an_average_that_wins_is_the_best_checkpoint(poem, tmp_path, monkeypatch):
    # a run whose average is always "better": the best checkpoint must hold the averaged weights
    config = TrainConfig(steps=100, seq_len=16, batch_size=4, val_fraction=0.1, eval_every=10, ema=True)
    trainer = new_run(poem, None, config, tmp_path / "w.pt", **SMALL)
    scored = trainer.evaluate_validation

    def evaluate(limit=None):
        result = scored(limit)
        if trainer.average is not None and trainer.average.shadow is not None:
            averaged = torch.equal(next(trainer.model.parameters()), trainer.average.shadow[0])
            result.loss -= trainer.step if averaged else 0.0  # and better at each validation
        return result

    monkeypatch.setattr(trainer, "evaluate_validation", evaluate)
    list(trainer.run())
    raw = load_raw(best_path(tmp_path / "w.pt"))
    assert raw["provenance"]["averaging"]["weights"] == "average"
    assert trainer.result.averaging["best_weights"] == "average"
    shadow = trainer.average.shadow
    names = [n for n, _ in trainer.model.named_parameters()]
    assert all(torch.equal(raw["state_dict"][n], s) for n, s in zip(names, shadow))


def test_no_ema_keeps_no_average(poem, tmp_path):
    assert TrainConfig().ema is False  # off by default: it did not win (docs/planning.md)
    config = TrainConfig(steps=20, seq_len=16, batch_size=4, val_fraction=0.1)
    trainer = new_run(poem, None, config, tmp_path / "n.pt", **SMALL)
    list(trainer.run())
    assert trainer.average is None and trainer.result.averaging is None
    assert load_raw(tmp_path / "n.pt")["provenance"]["averaging"] is None


def test_a_resumed_run_continues_the_same_average(poem, tmp_path):
    from charnext.events import StepEvent
    from charnext.training.runs import resume_run

    config = TrainConfig(steps=100, seq_len=16, batch_size=4, val_fraction=0.1, eval_every=10, ema=True)
    straight = new_run(poem, None, config, tmp_path / "s.pt", **SMALL)
    list(straight.run())
    first = new_run(poem, None, config, tmp_path / "r.pt", **SMALL)
    for event in first.run():
        if isinstance(event, StepEvent) and event.step == 75:  # after 7 updates of the average
            first.stop()
    second = resume_run(tmp_path / "r.pt", poem)
    list(second.run())
    assert second.average.updates == straight.average.updates
    assert all(torch.equal(a, b) for a, b in zip(second.average.shadow, straight.average.shadow))
    assert second.result.averaging == straight.result.averaging
