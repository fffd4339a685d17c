"""What more time would buy: the cases read from validation curves, and the line shown
by the summary, inspect and --json."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from charnext.cli.app import app
from charnext.storage.checkpoint import load_raw
from charnext.training import outlook as ol

runner = CliRunner()
STEPS = [100, 200, 300, 400, 500, 600, 700, 800]


def test_a_curve_still_falling_at_the_end_is_improving():
    losses = [2.0, 1.8, 1.7, 1.65, 1.62, 1.60, 1.57, 1.54]  # -0.06 over the last quarter
    o = ol.read_outlook(STEPS, losses)
    assert o.kind == "improving" and o.best_step == 800
    assert o.change < -ol.LEVEL_CHANGE
    assert "still improving" in o.line and "more time" in o.line


def test_a_curve_that_rises_after_its_best_is_overfit():
    losses = [2.0, 1.8, 1.7, 1.62, 1.60, 1.63, 1.66, 1.70]
    o = ol.read_outlook(STEPS, losses, "run.best.pt")
    assert o.kind == "overfit" and o.best_step == 500 and o.steps == 800
    assert "step 500 of 800" in o.line and "run.best.pt holds step 500" in o.line


def test_a_flat_end_is_level():
    losses = [2.0, 1.8, 1.7, 1.62, 1.60, 1.600, 1.598, 1.603]  # within LEVEL_CHANGE, no clear rise
    o = ol.read_outlook(STEPS, losses)
    assert o.kind == "level" and abs(o.change) <= ol.LEVEL_CHANGE
    assert o.line.startswith("level")


def test_a_small_rise_within_the_noise_is_not_called_overfit():
    losses = [2.0, 1.8, 1.7, 1.62, 1.60, 1.59, 1.595, 1.596]  # best at 600, the end 0.006 above it
    assert ol.read_outlook(STEPS, losses).kind == "level"


def test_a_run_that_turned_says_more_time_would_not_help():
    losses = [2.0, 1.8, 1.7, 1.62, 1.66, 1.70, 1.61, 1.58]  # turned at 600, back to 400, annealed
    turn = {"step": 600, "back_to": 400, "at": 60.0, "until": 70.0, "lr": 0.004}
    o = ol.read_outlook(STEPS, losses, "run.best.pt", turn)
    assert o.kind == "turned" and o.best_step == 800 and o.last_val_loss == 1.58
    assert "turned up at step 600" in o.line and "went back to step 400" in o.line
    assert "would not help" in o.line
    assert "went back" not in ol.read_outlook(STEPS, losses, turn={**turn, "back_to": None}).line


def test_too_few_validations_say_nothing():
    assert ol.read_outlook([100, 200], [2.0, 1.9]) is None
    assert ol.read_outlook([100, 200, 300], [2.0, float("nan"), 1.9]) is None


def test_the_outlook_ends_the_summary_and_is_in_json_and_inspect(tmp_path, poem):
    text = tmp_path / "poem.txt"
    text.write_text(poem * 8)  # about 24 KB: a held-out part
    out = tmp_path / "o.pt"
    args = ["train", "--file", str(text), "--steps", "40", "--hidden-size", "16", "--eval-every", "5",
            "--out", str(out), "--precision", "fp32"]  # fmt: skip
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    summary = shown.stdout[shown.stdout.index("training done") : shown.stdout.index("\nnext:")]
    labels = [line.split()[0] for line in summary.splitlines()[1:] if line[:4].strip()]
    assert labels[-1] == "outlook", summary  # the summary's last row (its wrapped tail is indented)
    as_json = runner.invoke(app, [*args, "--json"])
    r = json.loads(as_json.stdout)
    assert r["outlook"]["kind"] in ("improving", "overfit", "level", "turned")
    assert r["outlook"]["steps"] == 40 and r["outlook"]["line"] in " ".join(shown.stdout.split())
    recorded = load_raw(out)["provenance"]["outlook"]
    assert recorded == r["outlook"]
    inspected = runner.invoke(app, ["inspect", str(out)])
    assert "outlook" in inspected.stdout and r["outlook"]["line"] in " ".join(inspected.stdout.split())
    info = json.loads(runner.invoke(app, ["inspect", str(out), "--json"]).stdout)
    assert info["provenance"]["outlook"] == r["outlook"]
